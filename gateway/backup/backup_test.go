package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const snapshot = `{"rampart_snapshot":1,"tables":["users"]}
{"t":"users","r":{"Name":"alice"}}
{"end":true,"rows":1}
`

// key and otherKey stand for the backup keys of two clusters (two KEKs).
var (
	key      = bytes.Repeat([]byte{0x5a}, 32)
	otherKey = bytes.Repeat([]byte{0xa5}, 32)
)

func write(t *testing.T) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	hdr := Header{ClusterID: "c-1", Node: "n2", Index: 42, Term: 3, CreatedAt: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), Version: "test", Size: int64(len(snapshot))}
	sum, err := Write(&buf, hdr, key, strings.NewReader(snapshot))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), sum
}

func TestRoundTrip(t *testing.T) {
	b, sum := write(t)
	if want, err := Sum(Header{ClusterID: "c-1", Node: "n2", Index: 42, Term: 3, CreatedAt: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC), Version: "test", Size: int64(len(snapshot))}, key, strings.NewReader(snapshot)); err != nil || want != sum {
		t.Fatalf("Sum = %q, %v; Write's checksum %q", want, err, sum)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if !strings.HasPrefix(lines[0], `{"rampart_backup":1,`) || !strings.HasPrefix(lines[len(lines)-1], `{"sha256":"`+sum+`","hmac_sha256":"`) {
		t.Fatalf("backup's first and last lines: %q … %q", lines[0], lines[len(lines)-1])
	}
	path := filepath.Join(t.TempDir(), "backup")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Header.Index != 42 || f.Header.Term != 3 || f.Header.ClusterID != "c-1" || f.SHA256 != sum {
		t.Fatalf("header %+v, sum %s", f.Header, f.SHA256)
	}
	r, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || string(got) != snapshot {
		t.Fatalf("snapshot = %q, %v", got, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	good, sum := write(t)
	hdrEnd := bytes.IndexByte(good, '\n') + 1
	trailerStart := bytes.LastIndexByte(good[:len(good)-1], '\n') + 1
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x01
		return b
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"fail/empty", nil, ErrNotBackup},
		{"fail/not-a-backup", []byte("hello\nworld\n"), ErrNotBackup},
		{"fail/snapshot-not-backup", []byte(snapshot), ErrNotBackup},
		{"fail/cut-in-header", good[:hdrEnd-5], ErrNotBackup},
		{"fail/cut-after-header", good[:hdrEnd], ErrTruncated},
		{"fail/cut-in-snapshot", good[:hdrEnd+10], ErrTruncated},
		{"fail/cut-before-trailer", good[:trailerStart], ErrTruncated},
		{"fail/cut-in-trailer", good[:len(good)-3], ErrTruncated},
		{"fail/snapshot-byte-changed", flip(hdrEnd + 20), ErrChecksum},
		{"fail/header-byte-changed", flip(strings.Index(string(good), `"index":42`) + 9), ErrChecksum},
		{"fail/checksum-changed", flip(trailerStart + 15), ErrChecksum},
		{"fail/data-after-trailer", append(bytes.Clone(good), "x"...), ErrChecksum},
		{"fail/future-format", bytes.Replace(good, []byte(`"rampart_backup":1`), []byte(`"rampart_backup":9`), 1), ErrFutureFormat},
		// Changed by someone who can write backup storage, with the SHA-256
		// recomputed: only the HMAC tells.
		{"fail/row-changed-sha256-recomputed", tamper(t, good, false, func(snap []byte) []byte {
			return bytes.Replace(snap, []byte(`"alice"`), []byte(`"mallory"`), 1)
		}), ErrUnauthentic},
		{"fail/row-added-sha256-recomputed", tamper(t, good, false, func(snap []byte) []byte {
			return bytes.Replace(snap, []byte(`{"end"`), []byte(`{"t":"users","r":{"Name":"mallory"}}`+"\n"+`{"end"`), 1)
		}), ErrUnauthentic},
		{"fail/hmac-dropped", tamper(t, good, true, func(snap []byte) []byte { return snap }), ErrUnauthentic},
		{"fail/hmac-changed", flip(len(good) - 4), ErrUnauthentic},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := Verify(bytes.NewReader(tc.in), key)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("fail/other-key", func(t *testing.T) {
		if _, _, _, err := Verify(bytes.NewReader(good), otherKey); !errors.Is(err, ErrUnauthentic) {
			t.Fatalf("Verify under another key = %v, want ErrUnauthentic", err)
		}
	})
	t.Run("fail/no-key", func(t *testing.T) {
		if _, _, _, err := Verify(bytes.NewReader(good), nil); err == nil {
			t.Fatal("Verify without a key accepted the backup")
		}
		if _, err := Write(io.Discard, Header{Index: 1}, nil, strings.NewReader("")); err == nil {
			t.Fatal("Write without a key wrote a backup")
		}
	})
	t.Run("ok/intact", func(t *testing.T) {
		if _, got, _, err := Verify(bytes.NewReader(good), key); err != nil || got != sum {
			t.Fatalf("Verify = %q, %v", got, err)
		}
	})
	t.Run("fail/open-truncated-file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "backup")
		if err := os.WriteFile(path, good[:hdrEnd+10], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, key); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Open = %v, want ErrTruncated", err)
		}
	})
}

// tamper changes the snapshot in backup b with edit and writes the file
// again as someone without the backup key would: the header's
// snapshot_bytes fixed, the SHA-256 recomputed, the HMAC kept (or dropped).
func tamper(t *testing.T, b []byte, dropHMAC bool, edit func([]byte) []byte) []byte {
	t.Helper()
	hdrEnd := bytes.IndexByte(b, '\n') + 1
	at := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
	var hdr Header
	var tl trailer
	if err := errors.Join(json.Unmarshal(b[:hdrEnd], &hdr), json.Unmarshal(b[at:], &tl)); err != nil {
		t.Fatal(err)
	}
	snap := edit(bytes.Clone(b[hdrEnd:at]))
	hdr.Size = int64(len(snap))
	line, _ := json.Marshal(hdr)
	out := append(append(line, '\n'), snap...)
	sum := sha256.Sum256(out)
	tl.SHA256 = hex.EncodeToString(sum[:])
	if dropHMAC {
		tl.HMAC = ""
	}
	tline, _ := json.Marshal(tl)
	return append(out, append(tline, '\n')...)
}
