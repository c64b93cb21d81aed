package ca

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKEK returns a KEK whose 32 raw bytes are all seed.
func testKEK(t *testing.T, seed byte) *KEK {
	t.Helper()
	k, err := NewKEK(bytes.Repeat([]byte{seed}, KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	kek, other := testKEK(t, 1), testKEK(t, 2)
	secret := []byte("-----BEGIN PRIVATE KEY----- not really")
	sealed, err := kek.Seal(secret, "tls-ca")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	cases := []struct {
		name    string
		kek     *KEK
		blob    []byte
		purpose string
		want    error
	}{
		{name: "ok/round-trip", kek: kek, blob: sealed, purpose: "tls-ca"},
		{name: "fail/wrong-kek", kek: other, blob: sealed, purpose: "tls-ca", want: ErrWrongKEK},
		{name: "fail/wrong-purpose", kek: kek, blob: sealed, purpose: "ca/project-a", want: ErrSealCorrupt},
		{name: "fail/tampered-ciphertext", kek: kek, blob: flip(len(sealed) - 20), purpose: "tls-ca", want: ErrSealCorrupt},
		{name: "fail/tampered-tag", kek: kek, blob: flip(len(sealed) - 1), purpose: "tls-ca", want: ErrSealCorrupt},
		{name: "fail/tampered-nonce", kek: kek, blob: flip(1 + kekIDLen), purpose: "tls-ca", want: ErrSealCorrupt},
		{name: "fail/tampered-kek-id", kek: kek, blob: flip(1), purpose: "tls-ca", want: ErrWrongKEK},
		{name: "fail/unknown-version", kek: kek, blob: append([]byte{sealVersion + 1}, sealed[1:]...), purpose: "tls-ca", want: ErrSealCorrupt},
		{name: "fail/truncated", kek: kek, blob: sealed[:1+kekIDLen+4], purpose: "tls-ca", want: ErrSealCorrupt},
		{name: "fail/empty", kek: kek, blob: nil, purpose: "tls-ca", want: ErrSealCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.kek.Open(tc.blob, tc.purpose)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(got, secret) {
				t.Fatalf("Open = %q, want %q", got, secret)
			}
			if tc.want != nil && got != nil {
				t.Fatalf("Open returned %d bytes with its error", len(got))
			}
		})
	}
	t.Run("ok/fresh-nonce-each-seal", func(t *testing.T) {
		again, err := kek.Seal(secret, "tls-ca")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(again, sealed) {
			t.Fatal("sealing twice gave the same blob")
		}
		if bytes.Contains(sealed, secret) {
			t.Fatal("the sealed blob holds the plaintext")
		}
	})
}

func TestParseKEK(t *testing.T) {
	raw := bytes.Repeat([]byte{0xfb}, KEKSize) // 0xfb makes '+'/'/' vs '-'/'_' differ
	want := testKEK(t, 0xfb)
	cases := []struct {
		name string
		text string
		ok   bool
	}{
		{name: "ok/std-padded", text: base64.StdEncoding.EncodeToString(raw), ok: true},
		{name: "ok/std-raw", text: base64.RawStdEncoding.EncodeToString(raw), ok: true},
		{name: "ok/url-padded", text: base64.URLEncoding.EncodeToString(raw), ok: true},
		{name: "ok/url-raw", text: base64.RawURLEncoding.EncodeToString(raw), ok: true},
		{name: "ok/surrounding-whitespace", text: "  " + base64.StdEncoding.EncodeToString(raw) + "\n", ok: true},
		{name: "fail/not-base64", text: "this is not a key!"},
		{name: "fail/too-short", text: base64.StdEncoding.EncodeToString(raw[:16])},
		{name: "fail/too-long", text: base64.StdEncoding.EncodeToString(append(raw, 0))},
		{name: "fail/empty", text: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKEK(tc.text)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseKEK = %v, want ok %v", err, tc.ok)
			}
			if tc.ok && k.id != want.id {
				t.Fatal("parsed a different key")
			}
		})
	}
}

func TestLoadKEKFile(t *testing.T) {
	dir := t.TempDir()
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KEKSize)) + "\n"
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is filtered by the umask; set it exactly.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name     string
		path     string
		wantText string
	}{
		{name: "ok/mode-0600", path: write("ok600", good, 0o600)},
		{name: "ok/mode-0400", path: write("ok400", good, 0o400)},
		{name: "fail/mode-0644", path: write("world", good, 0o644), wantText: "readable by others"},
		{name: "fail/mode-0640", path: write("group", good, 0o640), wantText: "readable by others"},
		{name: "fail/not-base64", path: write("garbage", "not a key at all\n", 0o600), wantText: "not base64"},
		{name: "fail/missing", path: filepath.Join(dir, "absent"), wantText: "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadKEKFile(tc.path)
			if tc.wantText == "" {
				if err != nil || k.id != testKEK(t, 7).id {
					t.Fatalf("LoadKEKFile = %v, want the key", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("LoadKEKFile = %v, want an error saying %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(good)) {
				t.Fatal("the error shows the key")
			}
		})
	}
}

func TestGenerateKEKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kek")
	k, err := GenerateKEKFile(path, bytes.NewReader(bytes.Repeat([]byte{9}, KEKSize)))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o, want 600", fi.Mode().Perm())
	}
	loaded, err := LoadKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal([]byte("x"), "p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loaded.Open(sealed, "p"); err != nil {
		t.Fatalf("the loaded key does not open what the generated one sealed: %v", err)
	}
	before, _ := os.ReadFile(path)

	cases := []struct {
		name string
		path string
		rnd  []byte
	}{
		{name: "fail/existing-file", path: path, rnd: bytes.Repeat([]byte{10}, KEKSize)},
		{name: "fail/short-randomness", path: filepath.Join(dir, "short"), rnd: []byte{1, 2, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := GenerateKEKFile(tc.path, bytes.NewReader(tc.rnd)); err == nil {
				t.Fatal("GenerateKEKFile succeeded")
			}
		})
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the existing key file was changed")
	}
	if _, err := os.Stat(filepath.Join(dir, "short")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file was left without a key: %v", err)
	}
}

func TestNewKEKSize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := NewKEK(make([]byte, n)); err == nil {
			t.Fatalf("NewKEK accepted %d bytes", n)
		}
	}
}
