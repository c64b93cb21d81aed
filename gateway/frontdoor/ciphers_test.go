package frontdoor

import (
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// handshake dials addr offering only ciphers and returns the error of a
// connection that presents no credentials: a cipher error means the key
// exchange failed, an authentication error that it succeeded.
func handshake(t *testing.T, addr, version string, ciphers []string) error {
	t.Helper()
	cfg := &gossh.ClientConfig{User: "alice", HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
		Config: gossh.Config{Ciphers: ciphers}, ClientVersion: version}
	c, err := gossh.Dial("tcp", addr, cfg)
	if err == nil {
		c.Close()
		t.Fatal("a client without credentials was let in")
	}
	return err
}

func TestFrontDoorCiphers(t *testing.T) {
	def := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1", perIP: 8})
	withChacha := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1", perIP: 8, modConf: func(c *Config) {
		c.Ciphers = []string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"}
	}})
	for _, tc := range []struct {
		name    string
		addr    string
		version string // the client's version line; "" is x/crypto's
		ciphers []string
		agreed  bool
	}{
		{"ok/default-offers-aes-gcm", def.addr, "", []string{"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"}, true},
		{"fail/default-leaves-out-chacha20", def.addr, "", []string{"chacha20-poly1305@openssh.com"}, false},
		// paramiko has no AES-GCM.
		{"ok/default-offers-ctr", def.addr, "SSH-2.0-paramiko_2.12.0", []string{"aes128-ctr"}, true},
		// OpenSSH would pick AES-CTR before AES-GCM: it is offered AES-GCM
		// alone, which the front door knows from its version line.
		{"fail/openssh-gets-aes-gcm-only", def.addr, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10", []string{"aes128-ctr"}, false},
		{"ok/openssh-aes-gcm", def.addr, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10", []string{"aes128-ctr", "aes256-gcm@openssh.com"}, true},
		{"ok/configured-chacha20", withChacha.addr, "", []string{"chacha20-poly1305@openssh.com"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(t, tc.addr, tc.version, tc.ciphers)
			noCommon := strings.Contains(err.Error(), "no common algorithm")
			if tc.agreed && noCommon {
				t.Fatalf("client offering %v: %v, want the key exchange to succeed", tc.ciphers, err)
			}
			if !tc.agreed && !noCommon {
				t.Fatalf("client offering %v: %v, want no common cipher", tc.ciphers, err)
			}
		})
	}
}
