package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestParsePublicKeyPEM(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(typ string, key any) string {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"ok/ecdsa", encode("PUBLIC KEY", ec.Public()), ""},
		{"ok/ed25519-trailing-newlines", encode("PUBLIC KEY", edPub) + "\n\n", ""},
		{"fail/not-pem", "ssh-ed25519 AAAA", "public_key is not a PEM PUBLIC KEY"},
		{"fail/empty", "", "public_key is not a PEM PUBLIC KEY"},
		{"fail/other-type", encode("RSA PUBLIC KEY", ec.Public()), "public_key is not a PEM PUBLIC KEY"},
		{"fail/two-blocks", encode("PUBLIC KEY", ec.Public()) + encode("PUBLIC KEY", edPub), "public_key holds more than one PEM block"},
		{"fail/not-pkix", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("garbage")})), "public_key is not a PKIX public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := ParsePublicKeyPEM(tc.text)
			if tc.want == "" {
				if err != nil || pub == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "asn1") {
				t.Fatalf("message carries internals: %v", err)
			}
		})
	}
}
