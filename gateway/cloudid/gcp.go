package cloudid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// GoogleIssuer is the issuer of GCP instance identity tokens.
const GoogleIssuer = "https://accounts.google.com"

// GCP instance identity: the metadata server of a Compute Engine instance
// gives, at instance/service-accounts/default/identity?audience=A&format=full,
// an ID token signed by Google for audience A whose google.compute_engine
// claim names the instance and its project. Only the metadata server adds
// that claim: a service account's own tokens carry none, and are refused.

// GCPIdentity is what a verified instance identity token says.
type GCPIdentity struct {
	ProjectID     string
	ProjectNumber string
	InstanceID    string
	InstanceName  string
	Zone          string
	// CreatedAt is when the instance was created
	// (google.compute_engine.instance_creation_timestamp).
	CreatedAt time.Time
	// Expiry is the token's expiry.
	Expiry time.Time
	// Project is the Rampart project ProjectID maps to.
	Project string
}

// gcpDiscoveryRetry: after a failed discovery, tokens are refused as
// unavailable for this long before the issuer is asked again, so that a
// stream of enrollment requests while it is unreachable does not become a
// stream of requests to it.
const gcpDiscoveryRetry = 10 * time.Second

// GCPVerifier checks GCP instance identity tokens. It discovers the issuer
// on first use and keeps its keys, fetching them again at most once a
// minute (so a token's cost to the issuer is bounded whatever tokens
// arrive); a failed discovery is retried after gcpDiscoveryRetry. Keep one
// per node and use it by pointer; it is safe for concurrent use.
type GCPVerifier struct {
	// Issuer is the token issuer; GoogleIssuer in production.
	Issuer string
	// Audience is what the token's aud must hold: the cluster's audience,
	// which agents ask the metadata server for.
	Audience string
	// Projects maps GCP project ids to Rampart projects; a project not in it
	// is refused.
	Projects map[string]string
	// MaxAge bounds how long after its creation an instance may enroll;
	// zero means no bound.
	MaxAge time.Duration
	// HTTPClient fetches discovery and keys; nil means a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu           sync.Mutex
	keys         *issuerKeys
	failedAt     time.Time // last failed discovery
	discoveryErr error     // why it failed
}

// flexString takes a JSON string or number (Google writes instance ids as
// strings and project numbers as numbers; neither is promised).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

type gcpClaims struct {
	Google struct {
		ComputeEngine *struct {
			InstanceID                flexString `json:"instance_id"`
			InstanceName              string     `json:"instance_name"`
			InstanceCreationTimestamp flexString `json:"instance_creation_timestamp"`
			ProjectID                 string     `json:"project_id"`
			ProjectNumber             flexString `json:"project_number"`
			Zone                      string     `json:"zone"`
		} `json:"compute_engine"`
	} `json:"google"`
}

func (v *GCPVerifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// issuerKeys discovers the issuer (until that has succeeded once) and
// returns its key set.
func (v *GCPVerifier) issuerKeys(ctx context.Context) (*issuerKeys, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys != nil {
		return v.keys, nil
	}
	if since := v.now().Sub(v.failedAt); !v.failedAt.IsZero() && since < gcpDiscoveryRetry {
		return nil, fmt.Errorf("discovery failed %s ago, not retried yet: %w", since.Round(time.Second), v.discoveryErr)
	}
	client := v.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	// Discovery runs to completion even if the request that started it goes
	// away: its result serves every later one.
	p, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), client), v.Issuer)
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err == nil {
		if err = p.Claims(&doc); err == nil && doc.JWKSURI == "" {
			err = errors.New("the discovery document has no jwks_uri")
		}
	}
	if err != nil {
		v.failedAt, v.discoveryErr = v.now(), err
		return nil, err
	}
	v.keys = &issuerKeys{url: doc.JWKSURI, client: client, now: v.now}
	return v.keys, nil
}

// keySetCall is the key set of one verification: it keeps the key set's
// error, which go-oidc flattens into a string, to tell an unreachable
// issuer from a forgery.
type keySetCall struct {
	keys *issuerKeys
	err  error
}

// VerifySignature implements oidc.KeySet.
func (c *keySetCall) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	p, err := c.keys.VerifySignature(ctx, raw)
	c.err = err
	return p, err
}

// Verify checks the token's signature, issuer, expiry and audience, that it
// carries a Compute Engine instance created at most MaxAge ago, and the
// project mapping. Refusals are *Error.
func (v *GCPVerifier) Verify(ctx context.Context, raw string) (*GCPIdentity, error) {
	if raw == "" {
		return nil, refuse(ErrMalformed, nil, "no GCP instance identity token")
	}
	if len(raw) > maxEvidence {
		return nil, refuse(ErrMalformed, nil, "the GCP instance identity token is larger than %d bytes", maxEvidence)
	}
	if v.Audience == "" {
		return nil, refuse(ErrAudience, nil, "this node has no GCP audience configured (agents.gcp.audience)")
	}
	keys, err := v.issuerKeys(ctx)
	if err != nil {
		return nil, refuse(ErrUnavailable, err, "the node cannot reach the GCP token issuer; try again later")
	}
	// The audience is checked below, so that a wrong one is told apart from
	// a forgery.
	call := &keySetCall{keys: keys}
	tok, err := oidc.NewVerifier(v.Issuer, call, &oidc.Config{SkipClientIDCheck: true, Now: v.now,
		SupportedSigningAlgs: []string{oidc.RS256}}).Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		switch {
		case errors.Is(call.err, errKeysUnavailable):
			return nil, refuse(ErrUnavailable, call.err, "the node cannot fetch the GCP token issuer's keys; try again later")
		case errors.As(err, &expired):
			return nil, refuse(ErrExpired, err, "the GCP instance identity token expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
		}
		return nil, refuse(ErrForged, err, "the GCP instance identity token is not a valid token of the issuer %s", v.Issuer)
	}
	if !slices.Contains(tok.Audience, v.Audience) {
		return nil, refuse(ErrAudience, nil, "the GCP instance identity token is for audience %q, not this cluster's (%q): set gcp_audience in the agent's configuration to the cluster's",
			strings.Join(tok.Audience, " "), v.Audience)
	}
	var c gcpClaims
	if err := tok.Claims(&c); err != nil {
		return nil, refuse(ErrMalformed, err, "the GCP instance identity token's claims cannot be read")
	}
	ce := c.Google.ComputeEngine
	if ce == nil {
		return nil, refuse(ErrMalformed, nil, "the GCP token names no Compute Engine instance: ask the instance's metadata server for it with format=full")
	}
	if !gcpProjectRE.MatchString(ce.ProjectID) || !gcpInstanceRE.MatchString(string(ce.InstanceID)) {
		return nil, refuse(ErrMalformed, nil, "the GCP instance identity token has no valid project_id or instance_id")
	}
	created, err := v.checkCreation(ce.InstanceID, ce.InstanceCreationTimestamp)
	if err != nil {
		return nil, err
	}
	project, ok := v.Projects[ce.ProjectID]
	if !ok || project == "" {
		return nil, refuse(ErrUnmapped, nil, "GCP project %s is not mapped to a Rampart project (agents.gcp.projects)", ce.ProjectID)
	}
	return &GCPIdentity{ProjectID: ce.ProjectID, ProjectNumber: string(ce.ProjectNumber), InstanceID: string(ce.InstanceID),
		InstanceName: ce.InstanceName, Zone: ce.Zone, CreatedAt: created, Expiry: tok.Expiry, Project: project}, nil
}

// checkCreation reads the instance's creation time and bounds the
// enrollment's age by MaxAge. Unlike AWS's pendingTime it is not reset by a
// stop and start: an instance older than MaxAge enrolls with a token.
func (v *GCPVerifier) checkCreation(instance, ts flexString) (time.Time, error) {
	secs, err := strconv.ParseInt(string(ts), 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, refuse(ErrMalformed, err, "the GCP instance identity token has no valid google.compute_engine.instance_creation_timestamp")
	}
	created, now := time.Unix(secs, 0).UTC(), v.now()
	if created.After(now.Add(clockSkew)) {
		return time.Time{}, refuse(ErrStale, nil, "GCP instance %s was created at %s, in the future: check the node's clock",
			instance, created.Format(time.RFC3339))
	}
	if v.MaxAge > 0 && now.Sub(created) > v.MaxAge {
		return time.Time{}, refuse(ErrStale, nil, "GCP instance %s was created at %s, more than %s ago: "+
			"auto-enrollment is allowed only within agents.gcp.max_age of its creation; enroll it with a token",
			instance, created.Format(time.RFC3339), shortDuration(v.MaxAge))
	}
	return created, nil
}
