package sshalg

import (
	"slices"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

// clientOffer is what a client sends in its KEXINIT, in its order. The
// OpenSSH 9.2, PuTTY 0.78 and paramiko 2.12 lists were captured from
// Debian 12's packages with no configuration; the others are those
// releases' documented defaults.
type clientOffer struct {
	version                     string
	kex, hostKeys, ciphers, mac string
	// wantCipher is what the client ends up with against the defaults.
	wantCipher string
}

var clientOffers = map[string]clientOffer{
	"openssh-8.2": {"SSH-2.0-OpenSSH_8.2p1 Ubuntu-4ubuntu0.11",
		"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,diffie-hellman-group14-sha1,ext-info-c",
		"ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-rsa-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256,ssh-rsa",
		"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
		"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
		"aes128-gcm@openssh.com"},
	"openssh-9.2": {"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10",
		"sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,ext-info-c,kex-strict-c-v00@openssh.com",
		"ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256",
		"chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
		"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
		"aes128-gcm@openssh.com"},
	"openssh-10.0": {"SSH-2.0-OpenSSH_10.0",
		"mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,ext-info-c,kex-strict-c-v00@openssh.com",
		"ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256",
		"chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr",
		"umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
		"aes128-gcm@openssh.com"},
	"putty-0.78": {"SSH-2.0-PuTTY_Release_0.78",
		"sntrup761x25519-sha512@openssh.com,curve448-sha512,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group-exchange-sha1,diffie-hellman-group18-sha512,diffie-hellman-group17-sha512,diffie-hellman-group16-sha512,diffie-hellman-group15-sha512,diffie-hellman-group14-sha256,diffie-hellman-group14-sha1,rsa2048-sha256,rsa1024-sha1,diffie-hellman-group1-sha1,ext-info-c,kex-strict-c-v00@openssh.com",
		"ssh-ed448,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-dss",
		"aes256-ctr,aes256-cbc,rijndael-cbc@lysator.liu.se,aes192-ctr,aes192-cbc,aes128-ctr,aes128-cbc,chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,3des-ctr,3des-cbc,blowfish-ctr,blowfish-cbc,arcfour256,arcfour128",
		"hmac-sha2-256,hmac-sha1,hmac-sha1-96,hmac-md5,hmac-sha2-256-etm@openssh.com,hmac-sha1-etm@openssh.com,hmac-sha1-96-etm@openssh.com,hmac-md5-etm@openssh.com",
		"aes256-ctr"},
	// Debian's python3-paramiko: no AES-GCM.
	"paramiko-2.12": {"SSH-2.0-paramiko_2.12.0",
		"curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group16-sha512,diffie-hellman-group-exchange-sha256,diffie-hellman-group14-sha256,diffie-hellman-group-exchange-sha1,diffie-hellman-group14-sha1,diffie-hellman-group1-sha1,ext-info-c",
		"ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa,ssh-dss,ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-rsa-cert-v01@openssh.com",
		"aes128-ctr,aes192-ctr,aes256-ctr,aes128-cbc,aes192-cbc,aes256-cbc,3des-cbc",
		"hmac-sha2-256,hmac-sha2-512,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1,hmac-md5,hmac-sha1-96,hmac-md5-96",
		"aes128-ctr"},
	// node ssh2 1.x (no certificate support).
	"node-ssh2-1": {"SSH-2.0-ssh2js1.16.0",
		"curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group14-sha256,diffie-hellman-group15-sha512,diffie-hellman-group16-sha512,diffie-hellman-group17-sha512,diffie-hellman-group18-sha512,ext-info-c",
		"ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa",
		"aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr",
		"hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
		"aes128-gcm@openssh.com"},
}

// xcryptoOffer is this module's own x/crypto client with its defaults (the
// e2e tests and Go tools such as Terraform's provisioners use it).
func xcryptoOffer() clientOffer {
	var c gossh.Config
	c.SetDefaults()
	return clientOffer{"SSH-2.0-Go", strings.Join(c.KeyExchanges, ","),
		"ssh-ed25519-cert-v01@openssh.com,ssh-ed25519", strings.Join(c.Ciphers, ","), strings.Join(c.MACs, ","),
		"aes128-gcm@openssh.com"}
}

// nodeHostKeyAlgos are what the front door and each inner server present:
// an ed25519 host key and its certificate (gateway/authority).
var nodeHostKeyAlgos = []string{gossh.CertAlgoED25519v01, gossh.KeyAlgoED25519}

// agree is SSH's negotiation: the client's first name the server has.
func agree(client string, server []string) string {
	for _, a := range strings.Split(client, ",") {
		if slices.Contains(server, a) {
			return a
		}
	}
	return ""
}

func isAEAD(cipher string) bool {
	return strings.Contains(cipher, "gcm") || strings.Contains(cipher, "poly1305")
}

// TestDefaultsReachEveryClient checks, for each client's default offer,
// that the front door's and the inner server's default configuration agree
// on a key exchange, a host key algorithm, a cipher and (for a non-AEAD
// cipher) a MAC, and that OpenSSH keeps AES-GCM.
func TestDefaultsReachEveryClient(t *testing.T) {
	offers := map[string]clientOffer{"xcrypto": xcryptoOffer()}
	for k, v := range clientOffers {
		offers[k] = v
	}
	for name, o := range offers {
		t.Run("ok/"+name, func(t *testing.T) {
			var cfg gossh.ServerConfig
			Server(&cfg, nil, o.version)
			// What x/crypto keeps of it: names it does not implement are dropped.
			cfg.SetDefaults()
			for _, k := range cfg.KeyExchanges {
				if slices.Contains(gossh.InsecureAlgorithms().KeyExchanges, k) {
					t.Errorf("server offers insecure key exchange %s", k)
				}
			}
			if got := agree(o.kex, cfg.KeyExchanges); got == "" {
				t.Errorf("no common key exchange: client %s, server %v", o.kex, cfg.KeyExchanges)
			}
			if got := agree(o.hostKeys, nodeHostKeyAlgos); got == "" {
				t.Errorf("no common host key algorithm: client %s, server %v", o.hostKeys, nodeHostKeyAlgos)
			}
			cipher := agree(o.ciphers, cfg.Ciphers)
			if cipher != o.wantCipher {
				t.Errorf("cipher %q, want %q (client %s, server %v)", cipher, o.wantCipher, o.ciphers, cfg.Ciphers)
			}
			if cipher != "" && !isAEAD(cipher) {
				if mac := agree(o.mac, cfg.MACs); mac == "" {
					t.Errorf("cipher %s needs a MAC: none in common (client %s, server %v)", cipher, o.mac, cfg.MACs)
				}
			}
		})
	}
}

func TestForClient(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		configured    []string
		want          []string
	}{
		{"ok/openssh-gets-gcm-only", "SSH-2.0-OpenSSH_9.6", DefaultCiphers, []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}},
		{"ok/openssh-without-gcm-in-list", "SSH-2.0-OpenSSH_9.6", []string{"aes256-ctr"}, []string{"aes256-ctr"}},
		{"ok/openssh-with-chacha-configured", "SSH-2.0-OpenSSH_9.6", []string{"chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"}, []string{"aes128-gcm@openssh.com"}},
		{"ok/others-get-the-list", "SSH-2.0-paramiko_2.12.0", DefaultCiphers, DefaultCiphers},
		{"ok/unknown-version", "", DefaultCiphers, DefaultCiphers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ForClient(tc.configured, tc.version); !slices.Equal(got, tc.want) {
				t.Fatalf("ForClient(%v, %q) = %v, want %v", tc.configured, tc.version, got, tc.want)
			}
		})
	}
}
