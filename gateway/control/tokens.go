package control

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// enrollment and join tokens, and API service tokens. Secrets are returned
// once, at creation, and never stored, logged or audited: the cluster keeps
// hashes.

// ServiceTokenPrefix starts API service token secrets (as bootstrap's).
const ServiceTokenPrefix = "rps_"

// errNoCluster: the node gave the service no cluster addresses or CA pin.
var errNoCluster = &fault.Error{Status: http.StatusServiceUnavailable, Code: "no_cluster",
	Msg: "this node cannot create tokens (no cluster address or CA pin is configured)"}

// TokenRequest asks for an enrollment token (Kind api.TokenEnroll, for
// Project) or a node join token (api.TokenJoin, no project).
type TokenRequest struct {
	Kind        string
	Project     string
	Description string
	// TTL is how long the token stays valid; 0: until revoked.
	TTL time.Duration
	// Uses is how many times it may be used; 0: any number until it
	// expires.
	Uses int
}

// CreateToken creates an enrollment or join token. It returns the token to
// hand out (shown once: it carries the secret, the cluster's API addresses
// and its CA pin) and the record the cluster keeps.
func (s *Service) CreateToken(ctx context.Context, a Actor, req TokenRequest) (*api.Token, *raftstore.Token, error) {
	switch {
	case req.TTL < 0:
		return nil, nil, invalid("ttl %s is negative", req.TTL)
	case req.Uses < 0:
		return nil, nil, invalid("uses %d is negative", req.Uses)
	case req.Kind == api.TokenEnroll && req.Project == "":
		return nil, nil, invalid("an enrollment token needs a project")
	case req.Kind == api.TokenJoin && req.Project != "":
		return nil, nil, invalid("a join token is for the cluster, not a project")
	case req.Kind != api.TokenEnroll && req.Kind != api.TokenJoin:
		return nil, nil, invalid("token kind %q is not %s or %s", req.Kind, api.TokenEnroll, api.TokenJoin)
	}
	if s.cluster == nil || len(s.cluster.JoinAddrs()) == 0 || s.cluster.CAPin() == "" {
		return nil, nil, errNoCluster
	}
	fields := map[string]string{}
	if req.Kind == api.TokenEnroll {
		p, err := project(s.state(ctx), req.Project)
		if err != nil {
			return nil, nil, err
		}
		fields["project"] = p.Name
	}
	tok, err := api.NewToken(req.Kind, s.cluster.JoinAddrs(), s.cluster.CAPin(), s.rand)
	if err != nil {
		return nil, nil, err
	}
	now := s.now().UTC()
	rec := raftstore.Token{Hash: api.HashSecret(tok.Secret), Kind: raftstore.TokenKind(req.Kind), Project: req.Project,
		Description: req.Description, UsesLeft: raftstore.UnlimitedUses, CreatedBy: a.Name}
	uses := "unlimited"
	if req.Uses > 0 {
		rec.UsesLeft, uses = req.Uses, strconv.Itoa(req.Uses)
	}
	if req.TTL > 0 {
		rec.ExpiresAt = now.Add(req.TTL)
	}
	var stored raftstore.Token
	if err := s.applyDecode(ctx, &raftstore.TokenCreate{Token: rec, Now: now}, &stored); err != nil {
		return nil, nil, err
	}
	fields["token"], fields["uses"], fields["expires"] = rec.Hash, uses, fmtTime(rec.ExpiresAt)
	if req.Kind == api.TokenJoin {
		fields["kind"] = req.Kind
	}
	return tok, &stored, s.audit(ctx, a, EventTokenCreate, fields)
}

// RevokeToken revokes an enrollment or join token by its hash.
func (s *Service) RevokeToken(ctx context.Context, a Actor, hash string) error {
	_, tok, err := s.state(ctx).TokenByHash(nil, hash)
	if err != nil {
		return err
	}
	if tok == nil {
		return notFound("token %q: not found", hash)
	}
	if _, err := s.apply(ctx, &raftstore.TokenDelete{Hash: hash}); err != nil {
		return err
	}
	return s.audit(ctx, a, EventTokenRevoke, map[string]string{"token": hash})
}

// ServiceTokenRequest asks for an API service token.
type ServiceTokenRequest struct {
	// Name is unique among service tokens; audit events of the token's
	// changes have "api:" and it as their actor.
	Name string
	// Scope is one of raftstore.ServiceRoles.
	Scope string
	// TTL is how long the token stays valid; 0: until revoked.
	TTL time.Duration
}

// CreateServiceToken creates a token for the HTTPS API (a provisioning one
// is SCIM's, audited as CreateProvisioningToken's). It returns the secret
// (shown once) and the record the cluster keeps; the actor is its owner.
func (s *Service) CreateServiceToken(ctx context.Context, a Actor, req ServiceTokenRequest) (string, *raftstore.ServiceToken, error) {
	if !slices.Contains(raftstore.ServiceRoles, req.Scope) {
		return "", nil, &fault.Error{Status: http.StatusBadRequest, Code: "invalid_scope",
			Msg: fmt.Sprintf("scope %q is not one of %s", req.Scope, strings.Join(raftstore.ServiceRoles, ", "))}
	}
	if req.Scope == raftstore.ServiceRoleApprover && a.UserID == "" {
		return "", nil, errApproverNeedsPerson
	}
	return s.createServiceToken(ctx, a, req.Name, req.Scope, req.TTL, EventServiceTokenCreate)
}

// TouchServiceToken records that the token id was used at at. It is not an
// administrator's change and is not audited; the API calls it at most once
// per interval per token (raftstore.ServiceTokenTouch).
func (s *Service) TouchServiceToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.apply(ctx, &raftstore.ServiceTokenTouch{ID: id, At: at.UTC()})
	return err
}

// createServiceToken creates a service token of role, audited as event.
func (s *Service) createServiceToken(ctx context.Context, a Actor, name, role string, ttl time.Duration, event string) (string, *raftstore.ServiceToken, error) {
	if ttl < 0 {
		return "", nil, invalid("ttl %s is negative", ttl)
	}
	if name == "" {
		return "", nil, invalid("a service token needs a name")
	}
	secret, err := api.NewSecret(ServiceTokenPrefix)
	if err != nil {
		return "", nil, err
	}
	idRaw := make([]byte, 8)
	if _, err := io.ReadFull(s.rand, idRaw); err != nil {
		return "", nil, fmt.Errorf("service token id: %w", err)
	}
	now := s.now().UTC()
	rec := raftstore.ServiceToken{ID: "st-" + hex.EncodeToString(idRaw), Name: name, Hash: api.HashSecret(secret),
		Role: role, CreatedBy: a.Name, OwnerID: a.UserID}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl)
	}
	var stored raftstore.ServiceToken
	if err := s.applyDecode(ctx, &raftstore.ServiceTokenCreate{Token: rec, Now: now}, &stored); err != nil {
		return "", nil, err
	}
	return secret, &stored, s.audit(ctx, a, event, map[string]string{"service_token": rec.ID, "name": rec.Name, "scope": rec.Role, "expires": fmtTime(rec.ExpiresAt)})
}

// RevokeServiceToken revokes an API service token by its id.
func (s *Service) RevokeServiceToken(ctx context.Context, a Actor, id string) (*raftstore.ServiceToken, error) {
	_, toks, err := s.state(ctx).ServiceTokens(nil)
	if err != nil {
		return nil, err
	}
	var tok *raftstore.ServiceToken
	for _, t := range toks {
		if t.ID == id {
			tok = t
		}
	}
	if tok == nil {
		return nil, notFound("service token %q: not found", id)
	}
	if _, err := s.apply(ctx, &raftstore.ServiceTokenDelete{ID: tok.ID}); err != nil {
		return nil, err
	}
	return tok, s.audit(ctx, a, EventServiceTokenRevoke, map[string]string{"service_token": tok.ID, "name": tok.Name})
}
