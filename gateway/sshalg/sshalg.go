// Package sshalg holds the SSH algorithm choices shared by the front door,
// the jump's inner server and its connections to targets.
package sshalg

import (
	"fmt"
	"slices"
	"strings"

	gossh "golang.org/x/crypto/ssh"
)

// DefaultCiphers is what nodes offer unless configured otherwise: AES-GCM
// only. OpenSSH clients put chacha20-poly1305 first, and x/crypto's chacha20
// has no assembly on amd64, so offering it halves the jump's throughput (the
// node runs the cipher twice per byte: outer leg and inner leg). AES-GCM runs
// on the CPU's AES instructions and every OpenSSH since 6.2 offers it.
var DefaultCiphers = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}

// CheckCiphers reports names x/crypto does not support or considers
// insecure, and an empty list.
func CheckCiphers(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("at least one cipher is required (default %s)", strings.Join(DefaultCiphers, ", "))
	}
	supported := gossh.SupportedAlgorithms().Ciphers
	var bad []string
	for _, n := range names {
		if !slices.Contains(supported, n) {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s not supported; choose from %s", strings.Join(bad, ", "), strings.Join(supported, ", "))
	}
	return nil
}

// TargetCiphers is the order the jump offers targets: the configured
// ciphers first (they decide, as the jump is the client there), then the
// rest of x/crypto's defaults so that a target with an unusual cipher list
// still connects.
func TargetCiphers(configured []string) []string {
	out := slices.Clone(configured)
	for _, c := range gossh.SupportedAlgorithms().Ciphers {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}
