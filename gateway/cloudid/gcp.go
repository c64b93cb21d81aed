package cloudid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
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
	// Expiry is the token's expiry.
	Expiry time.Time
	// Project is the Rampart project ProjectID maps to.
	Project string
}

// GCPVerifier checks GCP instance identity tokens. It discovers the issuer
// on first use and keeps its keys; a failed discovery is retried on the next
// call. Use it by pointer.
type GCPVerifier struct {
	// Issuer is the token issuer; GoogleIssuer in production.
	Issuer string
	// Audience is what the token's aud must hold: the cluster's audience,
	// which agents ask the metadata server for.
	Audience string
	// Projects maps GCP project ids to Rampart projects; a project not in it
	// is refused.
	Projects map[string]string
	// HTTPClient fetches discovery and keys; nil means a client with a 10 s
	// timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	provider *oidc.Provider
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
			InstanceID    flexString `json:"instance_id"`
			InstanceName  string     `json:"instance_name"`
			ProjectID     string     `json:"project_id"`
			ProjectNumber flexString `json:"project_number"`
			Zone          string     `json:"zone"`
		} `json:"compute_engine"`
	} `json:"google"`
}

func (v *GCPVerifier) discover(ctx context.Context) (*oidc.Provider, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.provider != nil {
		return v.provider, nil
	}
	client := v.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, client), v.Issuer)
	if err != nil {
		return nil, err
	}
	v.provider = p
	return p, nil
}

// Verify checks the token's signature, issuer, expiry and audience, that it
// carries a Compute Engine instance, and the project mapping. Refusals are
// *Error.
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
	provider, err := v.discover(ctx)
	if err != nil {
		return nil, refuse(ErrUnavailable, err, "the node cannot reach the GCP token issuer; try again later")
	}
	now := v.Now
	if now == nil {
		now = time.Now
	}
	// The audience is checked below, so that a wrong one is told apart from
	// a forgery.
	tok, err := provider.Verifier(&oidc.Config{SkipClientIDCheck: true, Now: now, SupportedSigningAlgs: []string{oidc.RS256}}).Verify(ctx, raw)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
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
	project, ok := v.Projects[ce.ProjectID]
	if !ok || project == "" {
		return nil, refuse(ErrUnmapped, nil, "GCP project %s is not mapped to a Rampart project (agents.gcp.projects)", ce.ProjectID)
	}
	return &GCPIdentity{ProjectID: ce.ProjectID, ProjectNumber: string(ce.ProjectNumber), InstanceID: string(ce.InstanceID),
		InstanceName: ce.InstanceName, Zone: ce.Zone, Expiry: tok.Expiry, Project: project}, nil
}
