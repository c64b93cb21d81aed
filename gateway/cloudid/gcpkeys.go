package cloudid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Anyone can POST a token to the enrollment endpoint, so what a token makes
// the node fetch from the issuer is bounded: go-oidc's own key set fetches
// the issuer's keys again for every token whose key id it does not know,
// which would let each forged token cost a request to Google.
const (
	// keysMinRefresh: the issuer's keys are fetched at most this often,
	// whatever tokens arrive. Google publishes a key well before it signs
	// with it, so a key new to the node is in any fetch made since.
	keysMinRefresh = time.Minute
	// keysMaxAge: keys older than this are fetched again when next used, so
	// that a key the issuer withdrew stops being trusted.
	keysMaxAge = time.Hour
	// maxKeySet bounds the issuer's key set document.
	maxKeySet = 1 << 20
)

// errKeysUnavailable: the issuer's keys could not be fetched.
var errKeysUnavailable = errors.New("issuer keys unavailable")

// issuerKeys is an oidc.KeySet over the issuer's published keys (its
// jwks_uri), fetched at most every keysMinRefresh.
type issuerKeys struct {
	url    string
	client *http.Client
	now    func() time.Time

	// mu is held across a fetch, so concurrent verifications wait for one
	// fetch rather than each making their own.
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // last fetch attempt, successful or not
	ok      time.Time // last successful fetch
}

// VerifySignature implements oidc.KeySet: the payload, once a key of the
// issuer with the token's key id verifies its signature.
func (k *issuerKeys) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	known := false
	for _, key := range k.keys {
		known = known || kid == "" || key.KeyID == kid
	}
	if (!known || now.Sub(k.ok) > keysMaxAge) && now.Sub(k.fetched) >= keysMinRefresh {
		k.fetched = now
		keys, err := k.fetch(ctx)
		switch {
		case err == nil:
			k.keys, k.ok = keys, now
		case len(k.keys) == 0 || !known:
			return nil, fmt.Errorf("%w: %w", errKeysUnavailable, err)
		}
		// Otherwise the issuer is unreachable but the key is known: keep
		// using what was fetched before rather than refuse every instance.
	}
	for _, key := range k.keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(&key); err == nil {
			return payload, nil
		}
	}
	if len(k.keys) == 0 {
		return nil, fmt.Errorf("%w: no key fetched yet", errKeysUnavailable)
	}
	return nil, fmt.Errorf("no key of the issuer with id %q verifies the signature", kid)
}

// fetch gets the key set. It is not cut short by the caller's cancellation
// (a client going away would otherwise spend the refresh), only by the
// HTTP client's timeout.
func (k *issuerKeys) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySet+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s", k.url, resp.Status)
	}
	if len(body) > maxKeySet {
		return nil, fmt.Errorf("%s: key set larger than %d bytes", k.url, maxKeySet)
	}
	// Keys are decoded one by one: a key of a kind go-jose does not know is
	// skipped, not a reason to distrust the others.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%s: not a JSON web key set: %w", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if json.Unmarshal(raw, &key) == nil && key.Valid() && key.IsPublic() {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no usable public key in the key set", k.url)
	}
	return keys, nil
}
