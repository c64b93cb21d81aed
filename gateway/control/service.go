// Package control is every change an administrator can make to the cluster,
// validated once and audited once; the admin shell, the HTTPS API, SCIM, the
// console and the CLI are surfaces over it.
package control

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// DefaultApplyTimeout bounds each write to the cluster unless Deps says.
const DefaultApplyTimeout = 15 * time.Second

// Store is what the service needs of the replicated store.
type Store interface {
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	// ConsistentRead waits until the local replica holds every committed
	// write, so that a check sees changes just made on another node.
	ConsistentRead(ctx context.Context) error
}

// Members is raft membership, for node removal.
type Members interface {
	Status() (*raftstore.Status, error)
	RemoveServer(ctx context.Context, id string) error
}

// Cluster is what enrollment and join tokens carry.
type Cluster interface {
	// JoinAddrs are the HTTPS API addresses (host:port) a new agent or
	// node first reaches.
	JoinAddrs() []string
	// CAPin is the cluster TLS CA's pin ("sha256:<hex>").
	CAPin() string
}

// Auditor writes the audit event of a change and says whether it did: a
// change whose event was not written is reported as failed, so it must not
// queue and drop (StoreAuditor writes through raft at once).
type Auditor interface {
	Record(ctx context.Context, typ, actor string, fields map[string]string) error
}

// Actor is who makes a change.
type Actor struct {
	// Name is the audit events' actor: an admin's IdP login, or "api:" and
	// the service token's name.
	Name string
	// UserID is the person's user id when the actor is a person (the admin
	// shell's administrator); empty for a service token or the cluster. A
	// service token a person creates is theirs (raftstore.ServiceToken
	// OwnerID).
	UserID string `json:",omitempty"`
	// Fields are added to the audit event of every change the actor makes:
	// where it came from (the shell's command line, source and admin id; the
	// API's source address and token id).
	Fields map[string]string
	// Audited, when set, is told the type of each change event written for
	// the actor (a surface that audits its other requests itself, SCIM,
	// learns which ones a change event covers).
	Audited func(typ string) `json:"-"`
}

// Confirm is asked, after a destructive change is validated and before it
// is made, whether to go ahead; what describes the change ("delete project
// web with its grants and enrollment tokens"). An error refuses the change
// and is returned as it is. nil goes ahead.
type Confirm func(what string) error

// Deps is what a Service runs on.
type Deps struct {
	Store   Store
	Auditor Auditor
	// Members may be nil: node removal is then refused.
	Members Members
	// Cluster may be nil: token creation is then refused.
	Cluster Cluster
	// Snapshots may be nil: backups are then refused.
	Snapshots Snapshots
	// CAKeys may be nil: CA rotations cannot begin (ca.go).
	CAKeys CAKeys
	// BackupKey authenticates the backups the service writes: the node's
	// ca.KEK.BackupKey, derived from the key-encryption key and never
	// written to raft or to a backup. Without it backups are refused.
	BackupKey []byte
	// Targets is where servers may be registered by hand (the rule the jump
	// applies before it dials); the zero rule refuses loopback.
	Targets targetaddr.Rule
	// Logger may be nil (discard).
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of token secrets and ids; nil means crypto/rand.
	Rand io.Reader
	// ApplyTimeout bounds each write; 0 means DefaultApplyTimeout.
	ApplyTimeout time.Duration
	// AdminGroup is oidc.admin_group: SCIM can neither change its members
	// nor deactivate them (scim.go). Empty: no such group.
	AdminGroup string
	// Notifier tells a project's approvers of new access requests
	// (accessrequests.go); nil tells no one.
	Notifier RequestNotifier
}

// Service makes administrators' changes. It is safe for concurrent use.
type Service struct {
	store        Store
	auditor      Auditor
	members      Members
	cluster      Cluster
	snapshots    Snapshots
	caKeys       CAKeys
	backupKey    []byte
	targets      targetaddr.Rule
	logger       *slog.Logger
	now          func() time.Time
	rand         io.Reader
	applyTimeout time.Duration
	adminGroup   string
	notifier     RequestNotifier
}

// New returns a Service over deps.
func New(deps Deps) *Service {
	s := &Service{store: deps.Store, auditor: deps.Auditor, members: deps.Members, cluster: deps.Cluster, snapshots: deps.Snapshots, backupKey: deps.BackupKey, targets: deps.Targets,
		logger: deps.Logger, now: deps.Now, rand: deps.Rand, applyTimeout: deps.ApplyTimeout, adminGroup: deps.AdminGroup,
		notifier: deps.Notifier}
	s.caKeys = deps.CAKeys
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.applyTimeout <= 0 {
		s.applyTimeout = DefaultApplyTimeout
	}
	return s
}

// StoreAuditor writes each event at once as its own AuditAppend command.
type StoreAuditor struct {
	Store interface {
		Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	}
	// Now stamps the events; nil means time.Now.
	Now func() time.Time
}

// Record writes one event through the store.
func (a StoreAuditor) Record(ctx context.Context, typ, actor string, fields map[string]string) error {
	now := a.Now
	if now == nil {
		now = time.Now
	}
	ev := raftstore.AuditEventInput{Time: now().UTC(), Type: typ, Actor: actor, Fields: fields}
	_, err := a.Store.Apply(ctx, &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{ev}})
	return err
}

// Audit event types, one per kind of change, named noun.verb
// (docs/audit-events.md). The same change reads the same from every
// surface: the actor (and its fields) says which surface made it.
const (
	EventProjectCreate      = "project.create"
	EventProjectUpdate      = "project.update"
	EventProjectDelete      = "project.delete"
	EventGrantCreate        = "grant.create"
	EventGrantRevoke        = "grant.revoke"
	EventUserDisable        = "user.disable"
	EventUserEnable         = "user.enable"
	EventUserDelete         = "user.delete"
	EventEntitlementCreate  = "entitlement.create"
	EventEntitlementDelete  = "entitlement.delete"
	EventServerRegister     = "server.register"
	EventServerDelete       = "server.delete"
	EventServerLabel        = "server.label"
	EventTokenCreate        = "enrollment_token.create"
	EventTokenRevoke        = "enrollment_token.revoke"
	EventServiceTokenCreate = "service_token.create"
	EventServiceTokenRevoke = "service_token.revoke"
	EventBindingRevoke      = "binding.revoke"
	EventSessionKill        = "session.kill"
	EventNodeRemove         = "node.remove"
	// The identity provider's changes (SCIM, re-validation); the actor
	// ("scim:<token>", the re-validation's) says which.
	EventUserDeactivate = "user.deactivate"
	EventUserReactivate = "user.reactivate"
)

// errNotAudited starts the error of a change made but not audited.
const errNotAudited = "the change was made, but its audit event could not be written"

// state returns the replica to check a change against, first asking the
// leader whether it holds every committed write. When that cannot be
// confirmed the local copy is used: the write itself goes through the
// leader, whose state machine checks it again.
func (s *Service) state(ctx context.Context) *raftstore.State {
	rctx, cancel := context.WithTimeout(ctx, s.applyTimeout)
	err := s.store.ConsistentRead(rctx)
	cancel()
	if err != nil {
		s.logger.Debug("admin change checked against the local replica", "err", err)
	}
	return s.store.State()
}

// apply makes one write, its client errors translated to fault errors.
func (s *Service) apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.applyTimeout)
	defer cancel()
	res, err := s.store.Apply(ctx, cmd)
	return res, clientError(err)
}

// applyDecode makes one write and decodes its result into out.
func (s *Service) applyDecode(ctx context.Context, cmd raftstore.Command, out any) error {
	res, err := s.apply(ctx, cmd)
	if err != nil {
		return err
	}
	return res.Decode(out)
}

// audit writes the event of a change made: the actor's fields, then the
// change's own.
func (s *Service) audit(ctx context.Context, a Actor, typ string, fields map[string]string) error {
	f := make(map[string]string, len(a.Fields)+len(fields))
	for k, v := range a.Fields {
		f[k] = v
	}
	for k, v := range fields {
		f[k] = v
	}
	// The change is made: its event is written even if the caller has gone
	// (a client that hangs up must not leave a change unaudited).
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.applyTimeout)
	defer cancel()
	if err := s.auditor.Record(actx, typ, a.Name, f); err != nil {
		s.logger.Error("admin change not audited", "user", a.Name, "type", typ, "err", err)
		return fmt.Errorf("%s: %w", errNotAudited, err)
	}
	if a.Audited != nil {
		a.Audited(typ)
	}
	return nil
}

// clientError turns the store's verdicts on a change (invalid, not found,
// conflict) into fault errors with the same message; other errors (no
// leader, outcome unknown) pass as they are.
func clientError(err error) error {
	var status int
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raftstore.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, raftstore.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, raftstore.ErrConflict):
		status = http.StatusConflict
	default:
		return err
	}
	if _, ok := fault.StatusOf(err); ok {
		return err
	}
	return &fault.Error{Status: status, Code: raftstore.ErrorCode(err), Msg: err.Error()}
}

func notFound(format string, args ...any) error {
	return &fault.Error{Status: http.StatusNotFound, Code: "not_found", Msg: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &fault.Error{Status: http.StatusConflict, Code: "conflict", Msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error {
	return &fault.Error{Status: http.StatusBadRequest, Code: "invalid", Msg: fmt.Sprintf(format, args...)}
}

// confirm asks c, if any.
func confirm(c Confirm, what string) error {
	if c == nil {
		return nil
	}
	return c(what)
}
