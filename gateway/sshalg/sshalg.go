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
// first, then AES-CTR for clients without AES-GCM (paramiko, which Ansible
// uses). chacha20-poly1305 is left out: OpenSSH clients put it first, and
// x/crypto's chacha20 has no assembly on amd64, so offering it halves the
// jump's throughput (the node runs the cipher twice per byte: outer leg and
// inner leg). AES-GCM runs on the CPU's AES instructions.
//
// The client's order decides among the ciphers both sides have, and OpenSSH
// before 10.0 puts AES-CTR before AES-GCM: CTR with HMAC-SHA2 runs at about
// 0.7x of AES-GCM in x/crypto. So OpenSSH clients are offered AES-GCM alone
// when the list has it (see ForClient); the others get the whole list.
var DefaultCiphers = []string{
	gossh.CipherAES128GCM, gossh.CipherAES256GCM,
	gossh.CipherAES128CTR, gossh.CipherAES192CTR, gossh.CipherAES256CTR,
}

// KeyExchanges are the key exchanges every Rampart SSH server accepts:
// x/crypto's secure ones that OpenSSH 8.x-10.x, PuTTY, paramiko, node ssh2
// and x/crypto clients offer. diffie-hellman-group14-sha1 (x/crypto's
// server default) and group exchange are left out: every client here has a
// SHA-2 exchange.
var KeyExchanges = []string{
	gossh.KeyExchangeMLKEM768X25519,
	gossh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org",
	gossh.KeyExchangeECDHP256, gossh.KeyExchangeECDHP384, gossh.KeyExchangeECDHP521,
	gossh.KeyExchangeDH16SHA512, gossh.KeyExchangeDH14SHA256,
}

// MACs are the MACs every Rampart SSH server accepts. Only non-AEAD ciphers
// (AES-CTR) use one; encrypt-then-MAC first. hmac-sha1-96 is left out.
var MACs = []string{
	gossh.HMACSHA256ETM, gossh.HMACSHA512ETM, gossh.HMACSHA256, gossh.HMACSHA512, gossh.HMACSHA1,
}

// Server sets the algorithms of a server configuration for a client whose
// version line is clientVersion ("" when unknown): the configured ciphers
// (DefaultCiphers when empty) as ForClient narrows them, KeyExchanges and
// MACs. Host key algorithms follow from the host keys added.
func Server(c *gossh.ServerConfig, configured []string, clientVersion string) {
	if len(configured) == 0 {
		configured = DefaultCiphers
	}
	c.Ciphers = ForClient(configured, clientVersion)
	c.KeyExchanges = slices.Clone(KeyExchanges)
	c.MACs = slices.Clone(MACs)
}

// ForClient returns the ciphers to offer a client. OpenSSH is offered only
// the AES-GCM ciphers of the list when it has any, since it would otherwise
// pick AES-CTR (see DefaultCiphers); every other client, and OpenSSH when
// the list has no AES-GCM, is offered the list as configured.
func ForClient(configured []string, clientVersion string) []string {
	if !strings.HasPrefix(clientVersion, "SSH-2.0-OpenSSH_") {
		return slices.Clone(configured)
	}
	var gcm []string
	for _, c := range configured {
		if c == gossh.CipherAES128GCM || c == gossh.CipherAES256GCM {
			gcm = append(gcm, c)
		}
	}
	if len(gcm) == 0 {
		return slices.Clone(configured)
	}
	return gcm
}

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
