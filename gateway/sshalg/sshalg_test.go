package sshalg

import (
	"strings"
	"testing"
)

func TestCheckCiphers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []string
		wantErr string
	}{
		{"ok/default", DefaultCiphers, ""},
		{"ok/with-chacha", []string{"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"}, ""},
		{"fail/empty", nil, "at least one cipher"},
		{"fail/unknown", []string{"aes128-gcm@openssh.com", "rot13"}, `"rot13" not supported`},
		{"fail/insecure-cbc", []string{"aes128-cbc"}, `"aes128-cbc" not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCiphers(tc.in)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("CheckCiphers(%v) = %v, want nil", tc.in, err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("CheckCiphers(%v) = %v, want error containing %q", tc.in, err, tc.wantErr)
			}
		})
	}
}

func TestTargetCiphersKeepsConfiguredFirst(t *testing.T) {
	got := TargetCiphers([]string{"aes256-gcm@openssh.com"})
	if got[0] != "aes256-gcm@openssh.com" {
		t.Fatalf("first target cipher %q, want the configured one", got[0])
	}
	seen := map[string]bool{}
	for _, c := range got {
		if seen[c] {
			t.Fatalf("cipher %q listed twice in %v", c, got)
		}
		seen[c] = true
	}
	if !seen["chacha20-poly1305@openssh.com"] {
		t.Fatalf("target ciphers %v lack x/crypto's defaults", got)
	}
}
