package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// TokenPrefix starts every cluster token so that one pasted into the wrong
// place is recognisable.
const TokenPrefix = "rpt1_"

// Token kinds.
const (
	TokenJoin   = "join"
	TokenEnroll = "enroll"
)

// secretLen is the number of random bytes in a token secret.
const secretLen = 32

// ErrBadToken: the string is not a well-formed token.
var ErrBadToken = errors.New("malformed token")

// Token is what a joining node or an enrolling agent is given: where the
// cluster is, the pin of its CA (so it trusts nothing else), and a secret of
// which the cluster keeps only the hash.
type Token struct {
	Kind   string   `json:"k"`
	Addrs  []string `json:"a"`
	CAPin  string   `json:"p"`
	Secret string   `json:"s"`
}

// NewToken makes a token with a fresh secret.
func NewToken(kind string, addrs []string, caPin string, rnd io.Reader) (*Token, error) {
	raw := make([]byte, secretLen)
	if _, err := io.ReadFull(rnd, raw); err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	return &Token{Kind: kind, Addrs: addrs, CAPin: caPin, Secret: base64.RawURLEncoding.EncodeToString(raw)}, nil
}

// NewSecret returns a random secret string with prefix (service tokens).
func NewSecret(prefix string) (string, error) {
	raw := make([]byte, secretLen)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

// HashSecret is the hex SHA-256 the cluster stores in place of a secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// String encodes the token as one base64url string.
func (t *Token) String() string {
	b, _ := json.Marshal(t)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes and checks a token string. Its errors say what is wrong
// without echoing the secret.
func ParseToken(s string) (*Token, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, TokenPrefix) {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrBadToken, TokenPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(s[len(TokenPrefix):])
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url (was it cut when copied?)", ErrBadToken)
	}
	var t Token
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: unreadable contents", ErrBadToken)
	}
	switch {
	case t.Kind != TokenJoin && t.Kind != TokenEnroll:
		return nil, fmt.Errorf("%w: unknown kind %q", ErrBadToken, t.Kind)
	case len(t.Addrs) == 0:
		return nil, fmt.Errorf("%w: no cluster address", ErrBadToken)
	case !strings.HasPrefix(t.CAPin, "sha256:") || len(t.CAPin) != len("sha256:")+64:
		return nil, fmt.Errorf("%w: no valid CA pin", ErrBadToken)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(t.Secret); err != nil || len(raw) != secretLen {
		return nil, fmt.Errorf("%w: secret has the wrong length", ErrBadToken)
	}
	return &t, nil
}
