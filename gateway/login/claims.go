package login

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// ClaimMapping says which ID token claims carry what. A path with dots
// descends into nested objects ("realm_access.roles").
type ClaimMapping struct {
	Username string
	Email    string
	// EmailVerified is the claim that says the IdP verified Email
	// (email_verified; Entra ID's optional claim is xms_edov).
	EmailVerified string
	Groups        string
	AdminGroup    string
}

// withDefaults fills empty fields with the usual claim names.
func (m ClaimMapping) withDefaults() ClaimMapping {
	if m.Username == "" {
		m.Username = "preferred_username"
	}
	if m.Email == "" {
		m.Email = "email"
	}
	if m.EmailVerified == "" {
		m.EmailVerified = "email_verified"
	}
	if m.Groups == "" {
		m.Groups = "groups"
	}
	return m
}

// Identity is who the IdP says a person is.
type Identity struct {
	Issuer  string
	Subject string
	Login   string
	Email   string
	// EmailVerified is true when the ID token says the IdP verified Email
	// (its email_verified claim is true). Only a verified address matches a
	// record SCIM made (findPerson).
	EmailVerified bool
	Groups        []string
	// Admin is true when Groups holds the configured admin group.
	Admin bool
	// RefreshToken is the IdP's refresh token from the sign-in, "" when it
	// gave none; Provision keeps it sealed for re-validation.
	RefreshToken Secret
	// RefreshAsked: the sign-in asked for a refresh token (offline_access).
	// One asked for and not given still starts the unverified bound.
	RefreshAsked bool
}

// Map extracts an Identity from verified ID token claims. A missing or
// non-string username claim is an error, and so is one that is not plain
// client text (raftstore.ClientText: no control characters, valid UTF-8, at
// most raftstore.MaxClientText bytes); groups that are not safe names are
// dropped and logged, never passed on.
func (m ClaimMapping) Map(issuer, subject string, claims map[string]any, logger *slog.Logger) (*Identity, error) {
	m = m.withDefaults()
	id := &Identity{Issuer: issuer, Subject: subject}
	if subject == "" {
		return nil, fmt.Errorf("ID token has no subject")
	}
	login, ok := lookupClaim(claims, m.Username).(string)
	if !ok || login == "" {
		return nil, fmt.Errorf("ID token has no %q claim (the configured username claim)", m.Username)
	}
	// The login is stored and written into every audit event and export
	// of this person: a newline in it would forge records downstream.
	if raftstore.ClientText(login) != login {
		return nil, fmt.Errorf("the %q claim (your login) holds control characters or invalid UTF-8, or is longer than %d bytes", m.Username, raftstore.MaxClientText)
	}
	id.Login = login
	if email, ok := lookupClaim(claims, m.Email).(string); ok {
		id.Email = email
		id.EmailVerified = email != "" && claimTrue(lookupClaim(claims, m.EmailVerified))
	}
	switch gs := lookupClaim(claims, m.Groups).(type) {
	case nil:
	case []any:
		for _, g := range gs {
			name, ok := g.(string)
			if !ok || !api.SafeGroupName(name) {
				logger.Warn("dropping unusable group from ID token", "user", login, "group", fmt.Sprintf("%q", fmt.Sprint(g)))
				continue
			}
			id.Groups = append(id.Groups, name)
		}
	case string:
		if api.SafeGroupName(gs) {
			id.Groups = []string{gs}
		}
	default:
		logger.Warn("groups claim is neither a list nor a string", "user", login, "claim", m.Groups)
	}
	for _, g := range id.Groups {
		if m.AdminGroup != "" && g == m.AdminGroup {
			id.Admin = true
		}
	}
	return id, nil
}

// claimTrue reports whether a boolean claim is true: JSON true, or the
// string "true" that some IdPs send (AWS Cognito).
func claimTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}

// lookupClaim follows a dotted path into nested claim objects. A claim whose
// own name contains dots is found too, before descending.
func lookupClaim(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	head, rest, found := strings.Cut(path, ".")
	if !found {
		return nil
	}
	sub, ok := claims[head].(map[string]any)
	if !ok {
		return nil
	}
	return lookupClaim(sub, rest)
}
