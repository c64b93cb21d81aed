package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A sign-in under way (its state, PKCE verifier and nonce) lives in the
// browser's sign-in cookie, sealed with AES-256-GCM, and nowhere on the
// server: anonymous visitors who start sign-ins by the thousand fill no
// table and stop nobody's sign-in. The key is derived from the cluster's
// key-encryption key (ca.KEK.ConsoleSignInKey), so a sign-in started on one
// node completes on any. A sealed cookie can be replayed until it expires,
// but never usefully: the IdP redeems each authorization code once, and a
// code is bound to the cookie's PKCE verifier.

// SignInKeySize is the length of Deps.SignInKey.
const SignInKeySize = 32

// signInAAD binds a sealed value to its use and format.
const signInAAD = "rampart console sign-in v1"

// signIn is a sign-in under way.
type signIn struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
	// Expires is Unix seconds.
	Expires int64 `json:"e"`
}

// errSignInInvalid is every refusal of a sign-in cookie.
var errSignInInvalid = errors.New("sign-in cookie not valid")

// signInSealer seals and opens sign-in cookies.
type signInSealer struct {
	aead cipher.AEAD
}

// newSignInSealer seals with key, or, when key is not SignInKeySize bytes
// long, with a random key of this process (sign-ins then complete only on
// the node, and in the process, that started them).
func newSignInSealer(key []byte) *signInSealer {
	if len(key) != SignInKeySize {
		key = make([]byte, SignInKeySize)
		_, _ = rand.Read(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(fmt.Sprintf("console: AES with a %d-byte key: %v", len(key), err)) // unreachable: the length is checked
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(fmt.Sprintf("console: GCM: %v", err)) // unreachable for AES
	}
	return &signInSealer{aead: aead}
}

// seal returns the cookie value of si.
func (s *signInSealer) seal(si signIn) string {
	plain, _ := json.Marshal(si)
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(signInAAD)))
}

// open returns the sign-in a cookie value sealed, unless it was not sealed
// with this key or has expired at now.
func (s *signInSealer) open(value string, now time.Time) (*signIn, error) {
	if len(value) > 1024 {
		return nil, errSignInInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, errSignInInvalid
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(signInAAD))
	if err != nil {
		return nil, errSignInInvalid
	}
	var si signIn
	if json.Unmarshal(plain, &si) != nil || si.State == "" || si.Verifier == "" || si.Nonce == "" {
		return nil, errSignInInvalid
	}
	if !now.Before(time.Unix(si.Expires, 0)) {
		return nil, errSignInInvalid
	}
	return &si, nil
}
