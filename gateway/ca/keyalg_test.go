package ca

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestNewSSHCAKeyAlg(t *testing.T) {
	cases := []struct {
		name     string
		alg      string
		wantType string
		wantSig  string
		want     error
	}{
		{name: "ok/default-is-ed25519", alg: "", wantType: ssh.KeyAlgoED25519, wantSig: ssh.KeyAlgoED25519},
		{name: "ok/ed25519", alg: SSHAlgED25519, wantType: ssh.KeyAlgoED25519, wantSig: ssh.KeyAlgoED25519},
		{name: "ok/ecdsa-p256", alg: SSHAlgECDSAP256, wantType: ssh.KeyAlgoECDSA256, wantSig: ssh.KeyAlgoECDSA256},
		{name: "ok/rsa-3072", alg: SSHAlgRSA3072, wantType: ssh.KeyAlgoRSA, wantSig: ssh.KeyAlgoRSASHA512},
		{name: "fail/unknown", alg: "dsa", want: ErrUnknownKeyAlgorithm},
		{name: "fail/rsa-other-size", alg: "rsa-1024", want: ErrUnknownKeyAlgorithm},
		{name: "fail/ssh-wire-name", alg: "ssh-ed25519", want: ErrUnknownKeyAlgorithm},
	}
	kek := testKEK(t, 3)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.alg == SSHAlgRSA3072 && testing.Short() {
				t.Skip("RSA key generation is slow")
			}
			c, sealed, line, err := NewSSHCAKeyAlg("ca-"+tc.name, tc.alg, kek)
			if !errors.Is(err, tc.want) {
				t.Fatalf("NewSSHCAKeyAlg = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if got := c.Signer.PublicKey().Type(); got != tc.wantType {
				t.Errorf("key type = %q, want %q", got, tc.wantType)
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil || string(pub.Marshal()) != string(c.Signer.PublicKey().Marshal()) || line != c.AuthorizedKey() {
				t.Fatalf("authorized_keys line %q does not match the key (%v)", line, err)
			}
			// The sealed key reopens, under its own purpose only.
			opened, err := OpenSSHCA("ca-"+tc.name, sealed, kek)
			if err != nil {
				t.Fatal(err)
			}
			if opened.AuthorizedKey() != line {
				t.Fatal("reopened CA has another public key")
			}
			if _, err := OpenSSHCA("another-id", sealed, kek); !errors.Is(err, ErrSealCorrupt) {
				t.Fatalf("opened under another id: %v", err)
			}
			// Both the fresh and the reopened CA sign with the expected
			// algorithm.
			for _, ca := range []*SSHCA{c, opened} {
				cert, err := ca.MintUser(baseRequest(t), testNow, nil)
				if err != nil {
					t.Fatal(err)
				}
				if cert.Signature.Format != tc.wantSig {
					t.Errorf("signature = %q, want %q", cert.Signature.Format, tc.wantSig)
				}
				host, err := ca.SignHost(testUserKey(t), "h", []string{"web-1"}, time.Hour, testNow)
				if err != nil {
					t.Fatal(err)
				}
				if host.Signature.Format != tc.wantSig {
					t.Errorf("host signature = %q, want %q", host.Signature.Format, tc.wantSig)
				}
			}
		})
	}
}

func TestNewSSHCAKeyStillEd25519(t *testing.T) {
	kek := testKEK(t, 4)
	c, sealed, line, err := NewSSHCAKey("host", kek)
	if err != nil {
		t.Fatal(err)
	}
	if c.Signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("NewSSHCAKey made a %s key", c.Signer.PublicKey().Type())
	}
	opened, err := OpenSSHCA("host", sealed, kek)
	if err != nil || opened.AuthorizedKey() != line {
		t.Fatalf("OpenSSHCA = %v", err)
	}
}
