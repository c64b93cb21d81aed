package api

import "time"

// The administrator's resources as the HTTPS API shows them (GET /v1/users,
// /v1/sessions, /v1/audit, ...). Times are RFC 3339 in UTC; a zero time is
// left out.

// Page is one page of a list. NextCursor, when not empty, is passed back as
// ?cursor= for the page after this one; the last page has none.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// User is a person as the cluster knows them.
type User struct {
	ID       string     `json:"id"`
	Login    string     `json:"login"`
	Email    string     `json:"email,omitempty"`
	UnixName string     `json:"unix_name"`
	UID      uint32     `json:"uid"`
	Status   string     `json:"status"`
	Groups   []string   `json:"groups"`
	Created  *time.Time `json:"created_at,omitempty"`
	Updated  *time.Time `json:"updated_at,omitempty"`
	// DisabledByIdP: the identity provider deactivated the user (SCIM or
	// re-validation); only the IdP reactivates them.
	DisabledByIdP bool `json:"disabled_by_idp,omitempty"`
}

// Group is an IdP group the cluster holds.
type Group struct {
	Name    string     `json:"name"`
	GID     uint32     `json:"gid"`
	SCIM    bool       `json:"scim,omitempty"`
	Created *time.Time `json:"created_at,omitempty"`
}

// EnrollmentToken is an enrollment or join token as listed: its hash, never
// its secret.
type EnrollmentToken struct {
	Hash        string     `json:"hash"`
	Kind        string     `json:"kind"`
	Project     string     `json:"project,omitempty"`
	Description string     `json:"description,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	// UsesLeft is absent for a token usable until it expires.
	UsesLeft  *int       `json:"uses_left,omitempty"`
	CreatedBy string     `json:"created_by"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

// EnrollmentTokenRequest asks for an enrollment token for a project.
type EnrollmentTokenRequest struct {
	Project     string `json:"project"`
	Description string `json:"description,omitempty"`
	// TTL is a duration ("24h"); empty: 24h. "0s": until revoked.
	TTL string `json:"ttl,omitempty"`
	// Uses bounds how many servers may enroll with it; 0: any number.
	Uses int `json:"uses,omitempty"`
}

// CreatedEnrollmentToken is a new enrollment token: Token, the string an
// agent enrolls with, is shown this once.
type CreatedEnrollmentToken struct {
	Token string `json:"token"`
	EnrollmentToken
}

// Binding is a device binding: a key that signs its user in.
type Binding struct {
	Fingerprint   string     `json:"fingerprint"`
	UserID        string     `json:"user_id"`
	ClientVersion string     `json:"client_version,omitempty"`
	SourceAddr    string     `json:"source_addr,omitempty"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
}

// BindingsRevoke chooses the bindings to revoke: exactly one of a key's
// fingerprint, a user's id, or all.
type BindingsRevoke struct {
	Fingerprint string `json:"fingerprint,omitempty"`
	UserID      string `json:"user_id,omitempty"`
	All         bool   `json:"all,omitempty"`
}

// BindingsRevoked says how many bindings a revocation removed.
type BindingsRevoked struct {
	Revoked int `json:"revoked"`
}

// Session is one SSH session through the bastion.
type Session struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Login      string     `json:"login"`
	ServerID   string     `json:"server_id"`
	Project    string     `json:"project"`
	Node       string     `json:"node"`
	SourceAddr string     `json:"source_addr,omitempty"`
	Status     string     `json:"status"`
	Start      time.Time  `json:"start"`
	End        *time.Time `json:"end,omitempty"`
	EndReason  string     `json:"end_reason,omitempty"`
	BytesIn    int64      `json:"bytes_in"`
	BytesOut   int64      `json:"bytes_out"`
	// Recording is the SHA-256 of the session's recording, if it has one.
	Recording string `json:"recording_sha256,omitempty"`
}

// AuditEvent is one event of the hash-chained audit log.
type AuditEvent struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Type     string            `json:"type"`
	Actor    string            `json:"actor"`
	Fields   map[string]string `json:"fields"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

// AuditVerify is the outcome of checking the audit log's hash chain.
type AuditVerify struct {
	OK       bool   `json:"ok"`
	Events   int    `json:"events"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	HeadHash string `json:"head_hash,omitempty"`
	BrokenAt uint64 `json:"broken_at,omitempty"`
	Problem  string `json:"problem,omitempty"`
	// FirstSeq is the first event checked; PrunedThrough, when set, the
	// last one pruned behind the signed checkpoint the log was checked from.
	FirstSeq      uint64 `json:"first_seq,omitempty"`
	PrunedThrough uint64 `json:"pruned_through,omitempty"`
}

// CAKey is one CA key the cluster holds: its public half only.
type CAKey struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	Project   string     `json:"project,omitempty"`
	Algorithm string     `json:"algorithm"`
	PublicKey string     `json:"public_key"`
	State     string     `json:"state"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

// ServiceToken is an HTTPS API token as listed: never its secret or hash.
type ServiceToken struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scope      string     `json:"scope"`
	Owner      string     `json:"owner"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// ServiceTokenRequest asks for a service token.
type ServiceTokenRequest struct {
	Name  string `json:"name"`
	Scope string `json:"scope"`
	// TTL is a duration ("720h"); empty: until revoked.
	TTL string `json:"ttl,omitempty"`
}

// CreatedServiceToken is a new service token: Token, the secret, is shown
// this once.
type CreatedServiceToken struct {
	Token string `json:"token"`
	ServiceToken
}

// TimeOrNil is t, or nil when t is zero (for the optional times above).
func TimeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
