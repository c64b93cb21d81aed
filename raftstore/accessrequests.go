package raftstore

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
)

// TableAccessRequests holds just-in-time access requests: a person asks for
// a project for a while, with a reason; approvers approve or deny; an
// approved request is a grant for that person alone until its window ends.
// The window is part of the record, so every node refuses once it has passed
// (StateAt), whether or not the leader has yet written the expiry.
const TableAccessRequests = "access_requests"

// AccessRequestState is where a request stands.
type AccessRequestState string

const (
	RequestPending  AccessRequestState = "pending"
	RequestApproved AccessRequestState = "approved"
	RequestDenied   AccessRequestState = "denied"
	RequestExpired  AccessRequestState = "expired"
	RequestRevoked  AccessRequestState = "revoked"
)

// Bounds on a request's free text.
const (
	maxRequestReason = 1024
)

// requestIDRE: ids are made by the service ("r-" and lower-case base32).
var requestIDRE = regexp.MustCompile(`^r-[a-z2-7]{6,26}$`)

// IsAccessRequestID reports whether s is spelled like a request id.
func IsAccessRequestID(s string) bool { return requestIDRE.MatchString(s) }

// Approval is one approver's yes.
type Approval struct {
	// By is the approver's user id, or "api:" and a service token's name.
	By    string
	Login string
	At    time.Time
	// Admin is set when an administrator approved without being in an
	// approver group: their approval stands while they are active.
	Admin bool `json:",omitempty"`
}

// AccessRequest is one person's request for access to a project.
type AccessRequest struct {
	ID      string
	Project string
	UserID  string
	// Requester is the person's Rampart login when they asked.
	Requester string
	// Login is the unix login the grant allows: the person's own, or one
	// the project shares.
	Login    string
	Reason   string
	Duration time.Duration
	State    AccessRequestState
	// Needed is how many approvals the project's policy asked for when
	// the request was made.
	Needed    int
	Approvals []Approval `json:",omitempty"`
	// DecidedBy, DecidedByID and DecisionReason are the denier's or
	// revoker's.
	DecidedBy      string `json:",omitempty"`
	DecidedByID    string `json:",omitempty"`
	DecisionReason string `json:",omitempty"`
	CreatedAt      time.Time
	// PendingUntil is when an unapproved request expires.
	PendingUntil time.Time
	// ApprovedAt and ExpiresAt bound the grant's window.
	ApprovedAt  time.Time `json:",omitzero"`
	ExpiresAt   time.Time `json:",omitzero"`
	EndedAt     time.Time `json:",omitzero"`
	CreateIndex uint64
	ModifyIndex uint64
}

// StateAt is the request's state at now: an approved request whose window
// has passed, or a pending one past PendingUntil, is expired whatever the
// record says yet.
func (r *AccessRequest) StateAt(now time.Time) AccessRequestState {
	switch {
	case r.State == RequestApproved && !now.Before(r.ExpiresAt):
		return RequestExpired
	case r.State == RequestPending && !now.Before(r.PendingUntil):
		return RequestExpired
	}
	return r.State
}

// ActiveAt reports whether the request grants access at now.
func (r *AccessRequest) ActiveAt(now time.Time) bool { return r.StateAt(now) == RequestApproved }

// ApprovedBy reports whether by approved the request already.
func (r *AccessRequest) ApprovedBy(by string) bool {
	return slices.ContainsFunc(r.Approvals, func(a Approval) bool { return a.By == by })
}

func init() {
	registerTable(tableDef{
		name:   TableAccessRequests,
		newObj: func() any { return new(AccessRequest) },
		schema: &memdb.TableSchema{
			Name: TableAccessRequests,
			Indexes: map[string]*memdb.IndexSchema{
				"id":      {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"user":    {Name: "user", Indexer: &memdb.StringFieldIndex{Field: "UserID"}},
				"project": {Name: "project", Indexer: &memdb.StringFieldIndex{Field: "Project"}},
				"state":   {Name: "state", Indexer: &memdb.StringFieldIndex{Field: "State"}},
			},
		},
	})
	registerCommand(AccessRequestCreateType, func() Command { return new(AccessRequestCreate) })
	registerCommand(AccessRequestApproveType, func() Command { return new(AccessRequestApprove) })
	registerCommand(AccessRequestDenyType, func() Command { return new(AccessRequestDeny) })
	registerCommand(AccessRequestRevokeType, func() Command { return new(AccessRequestRevoke) })
	registerCommand(AccessRequestExpireType, func() Command { return new(AccessRequestExpire) })
}

// AccessRequestCreate records a pending request. The project's policy is
// checked here, against the state the leader applies it to: the project
// takes requests, the person is active and may request, the time is inside
// the policy's windows, the duration within its maximum, and the login the
// person's own or one the project shares. A person has at most one pending
// request per project.
type AccessRequestCreate struct {
	ID       string
	Project  string
	UserID   string
	Login    string `json:",omitempty"`
	Reason   string
	Duration time.Duration
	Now      time.Time
}

func (c *AccessRequestCreate) Type() MessageType { return AccessRequestCreateType }

func (c *AccessRequestCreate) Validate() error {
	switch {
	case !IsAccessRequestID(c.ID):
		return invalidf("access request id %q is not valid", c.ID)
	case !projectNameRE.MatchString(c.Project):
		return invalidf("access request: project name %q is not valid", c.Project)
	case c.UserID == "":
		return invalidf("access request %s: user id is empty", c.ID)
	case c.Reason == "":
		return invalidf("a reason is required")
	case c.Duration <= 0:
		return invalidf("the duration must be positive")
	case c.Now.IsZero():
		return invalidf("access request %s: time is missing", c.ID)
	}
	return validReason(c.Reason)
}

// requestPolicyTxn returns project's request policy, or why it takes none.
func requestPolicyTxn(tx *writeTxn, project string) (*RequestPolicy, error) {
	raw, err := tx.First(tableProjects, "id", project)
	if err != nil {
		return nil, fmt.Errorf("read project %s: %w", project, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("project %s: %w", project, ErrNotFound)
	}
	p := raw.(*Project)
	if p.Settings.Requests == nil {
		return nil, invalidf("project %s does not take access requests", project)
	}
	return p.Settings.Requests, nil
}

func activeUserTxn(tx *writeTxn, id string) (*User, error) {
	raw, err := tx.First(tableUsers, "id", id)
	if err != nil {
		return nil, fmt.Errorf("read user %s: %w", id, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	u := raw.(*User)
	if u.Status != UserActive {
		return nil, invalidf("user %s is not active", u.Login)
	}
	return u, nil
}

func (c *AccessRequestCreate) apply(tx *writeTxn) (any, error) {
	pol, err := requestPolicyTxn(tx, c.Project)
	if err != nil {
		return nil, err
	}
	u, err := activeUserTxn(tx, c.UserID)
	if err != nil {
		return nil, err
	}
	if !pol.MayRequest(u.Groups) {
		return nil, invalidf("you are not in a group that may request access to project %s", c.Project)
	}
	if !pol.OpenAt(c.Now) {
		return nil, invalidf("project %s takes requests only in its windows", c.Project)
	}
	if max := pol.EffectiveMaxDuration(); c.Duration > max {
		return nil, invalidf("%s is longer than project %s allows (at most %s)", c.Duration, c.Project, max)
	}
	login := c.Login
	if login == "" {
		login = u.UnixName
	}
	if login != u.UnixName {
		raw, err := tx.First(tableProjects, "id", c.Project)
		if err != nil {
			return nil, fmt.Errorf("read project %s: %w", c.Project, err)
		}
		if !slices.Contains(raw.(*Project).Settings.SharedLogins, login) {
			return nil, invalidf("login %q is not yours and project %s does not share it", login, c.Project)
		}
	}
	if raw, err := tx.First(TableAccessRequests, "id", c.ID); err != nil {
		return nil, fmt.Errorf("read access request %s: %w", c.ID, err)
	} else if raw != nil {
		return nil, fmt.Errorf("%w: access request %s exists", ErrConflict, c.ID)
	}
	it, err := tx.Get(TableAccessRequests, "user", c.UserID)
	if err != nil {
		return nil, fmt.Errorf("list access requests of %s: %w", c.UserID, err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*AccessRequest); r.Project == c.Project && r.StateAt(c.Now) == RequestPending {
			return nil, fmt.Errorf("%w: you already have request %s pending for project %s", ErrConflict, r.ID, c.Project)
		}
	}
	r := &AccessRequest{ID: c.ID, Project: c.Project, UserID: u.ID, Requester: u.Login, Login: login, Reason: c.Reason, Duration: c.Duration,
		State: RequestPending, Needed: pol.EffectiveApprovals(), CreatedAt: c.Now.UTC(), PendingUntil: c.Now.UTC().Add(RequestPendingTTL),
		CreateIndex: tx.index, ModifyIndex: tx.index}
	if err := tx.Insert(TableAccessRequests, r); err != nil {
		return nil, fmt.Errorf("insert access request %s: %w", c.ID, err)
	}
	return r, tx.bump(TableAccessRequests)
}

// Decider is who approves, denies or revokes: a person (ID is their user
// id) or a service token (ID "api:" and its name). Admin is set by the
// service for administrators, who may decide without being in an approver
// group; nobody decides their own request.
type Decider struct {
	ID    string
	Login string
	Admin bool `json:",omitempty"`
}

func (d Decider) validate() error {
	if d.ID == "" || d.Login == "" {
		return invalidf("access request: who decides is missing")
	}
	return nil
}

// mayDecideTxn checks that d may approve or deny r under pol. Nobody
// decides their own request, from this account or another with the same
// e-mail address; administrators neither.
func mayDecideTxn(tx *writeTxn, r *AccessRequest, d Decider) error {
	if d.ID == r.UserID {
		return invalidf("you may not approve or deny your own request")
	}
	if samePersonTxn(tx, d.ID, r.UserID) {
		return invalidf("you may not approve or deny your own request (your accounts share an e-mail address)")
	}
	if d.Admin {
		return nil
	}
	pol, err := requestPolicyTxn(tx, r.Project)
	if err != nil {
		return err
	}
	u, err := activeUserTxn(tx, d.ID)
	if err != nil {
		return invalidf("you are not an approver of project %s", r.Project)
	}
	if !pol.MayApprove(u.Groups) {
		return invalidf("you are not an approver of project %s", r.Project)
	}
	return nil
}

// pendingTxn reads request id and checks it is pending at now.
func pendingTxn(tx *writeTxn, id string, now time.Time) (*AccessRequest, error) {
	r, err := requestTxn(tx, id)
	if err != nil {
		return nil, err
	}
	if st := r.StateAt(now); st != RequestPending {
		return nil, fmt.Errorf("%w: request %s is %s, not pending", ErrConflict, id, st)
	}
	return r, nil
}

func requestTxn(tx *writeTxn, id string) (*AccessRequest, error) {
	raw, err := tx.First(TableAccessRequests, "id", id)
	if err != nil {
		return nil, fmt.Errorf("read access request %s: %w", id, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("access request %s: %w", id, ErrNotFound)
	}
	cp := *raw.(*AccessRequest)
	cp.Approvals = slices.Clone(cp.Approvals)
	return &cp, nil
}

func putRequestTxn(tx *writeTxn, r *AccessRequest) (any, error) {
	r.ModifyIndex = tx.index
	if err := tx.Insert(TableAccessRequests, r); err != nil {
		return nil, fmt.Errorf("update access request %s: %w", r.ID, err)
	}
	return r, tx.bump(TableAccessRequests)
}

// AccessRequestApprove adds an approval; the one that makes the number the
// request needs approves it, and its window starts then. Two approvals
// come from two different people: two accounts, with two different e-mail
// addresses. An earlier approval whose approver has since been disabled or
// left the approver groups no longer counts: it is dropped when the next
// one lands, and the request waits for another.
type AccessRequestApprove struct {
	ID  string
	By  Decider
	Now time.Time
}

func (c *AccessRequestApprove) Type() MessageType { return AccessRequestApproveType }

func (c *AccessRequestApprove) Validate() error {
	if !IsAccessRequestID(c.ID) {
		return invalidf("access request id %q is not valid", c.ID)
	}
	if c.Now.IsZero() {
		return invalidf("access request %s: time is missing", c.ID)
	}
	return c.By.validate()
}

func (c *AccessRequestApprove) apply(tx *writeTxn) (any, error) {
	r, err := pendingTxn(tx, c.ID, c.Now)
	if err != nil {
		return nil, err
	}
	if err := mayDecideTxn(tx, r, c.By); err != nil {
		return nil, err
	}
	pol, err := requestPolicyTxn(tx, r.Project)
	if err != nil {
		return nil, err
	}
	now := c.Now.UTC()
	r.Approvals = slices.DeleteFunc(r.Approvals, func(a Approval) bool { return !approvalStandsTxn(tx, a, pol, now) })
	for _, a := range r.Approvals {
		if samePersonTxn(tx, a.By, c.By.ID) {
			return nil, fmt.Errorf("%w: you approved request %s already; it needs another approver", ErrConflict, r.ID)
		}
	}
	r.Approvals = append(r.Approvals, Approval{By: c.By.ID, Login: c.By.Login, At: now, Admin: c.By.Admin})
	if len(r.Approvals) >= r.Needed {
		r.State, r.ApprovedAt, r.ExpiresAt = RequestApproved, now, now.Add(r.Duration)
	}
	return putRequestTxn(tx, r)
}

// AccessRequestDeny refuses a pending request, with a reason.
type AccessRequestDeny struct {
	ID     string
	By     Decider
	Reason string
	Now    time.Time
}

func (c *AccessRequestDeny) Type() MessageType { return AccessRequestDenyType }

func (c *AccessRequestDeny) Validate() error { return validDecision(c.ID, c.By, c.Reason, c.Now) }

func (c *AccessRequestDeny) apply(tx *writeTxn) (any, error) {
	r, err := pendingTxn(tx, c.ID, c.Now)
	if err != nil {
		return nil, err
	}
	if err := mayDecideTxn(tx, r, c.By); err != nil {
		return nil, err
	}
	r.State, r.DecidedBy, r.DecidedByID, r.DecisionReason, r.EndedAt = RequestDenied, c.By.Login, c.By.ID, c.Reason, c.Now.UTC()
	return putRequestTxn(tx, r)
}

// AccessRequestRevoke ends a pending or approved request before its time:
// an approver, an administrator, or the person who asked (giving it up).
type AccessRequestRevoke struct {
	ID     string
	By     Decider
	Reason string
	Now    time.Time
}

func (c *AccessRequestRevoke) Type() MessageType { return AccessRequestRevokeType }

func (c *AccessRequestRevoke) Validate() error { return validDecision(c.ID, c.By, c.Reason, c.Now) }

// validDecision checks a decision that needs a reason (deny, revoke).
func validDecision(id string, by Decider, reason string, now time.Time) error {
	if !IsAccessRequestID(id) {
		return invalidf("access request id %q is not valid", id)
	}
	if reason == "" {
		return invalidf("a reason is required")
	}
	if now.IsZero() {
		return invalidf("access request %s: time is missing", id)
	}
	if err := validReason(reason); err != nil {
		return err
	}
	return by.validate()
}

func (c *AccessRequestRevoke) apply(tx *writeTxn) (any, error) {
	r, err := requestTxn(tx, c.ID)
	if err != nil {
		return nil, err
	}
	if st := r.StateAt(c.Now); st != RequestPending && st != RequestApproved {
		return nil, fmt.Errorf("%w: request %s is %s already", ErrConflict, r.ID, st)
	}
	if !verifiedSamePersonTxn(tx, c.By.ID, r.UserID) {
		if err := mayDecideTxn(tx, r, c.By); err != nil {
			return nil, err
		}
	}
	r.State, r.DecidedBy, r.DecidedByID, r.DecisionReason, r.EndedAt = RequestRevoked, c.By.Login, c.By.ID, c.Reason, c.Now.UTC()
	return putRequestTxn(tx, r)
}

// AccessRequestExpire writes the expiry of the named requests whose time is
// up at Now (the others are left alone). It only records what every node
// already enforces (StateAt): the leader writes it so that the audit log,
// the agents' desired state and the lists say so.
type AccessRequestExpire struct {
	IDs []string
	Now time.Time
}

func (c *AccessRequestExpire) Type() MessageType { return AccessRequestExpireType }

func (c *AccessRequestExpire) Validate() error {
	if len(c.IDs) == 0 || len(c.IDs) > 1000 {
		return invalidf("access request expiry: between 1 and 1000 ids")
	}
	for _, id := range c.IDs {
		if !IsAccessRequestID(id) {
			return invalidf("access request id %q is not valid", id)
		}
	}
	if c.Now.IsZero() {
		return invalidf("access request expiry: time is missing")
	}
	return nil
}

// apply returns the requests it expired.
func (c *AccessRequestExpire) apply(tx *writeTxn) (any, error) {
	out := []*AccessRequest{}
	for _, id := range c.IDs {
		raw, err := tx.First(TableAccessRequests, "id", id)
		if err != nil {
			return nil, fmt.Errorf("read access request %s: %w", id, err)
		}
		if raw == nil {
			continue
		}
		r := *raw.(*AccessRequest)
		if r.State == RequestExpired || r.StateAt(c.Now) != RequestExpired {
			continue
		}
		if r.State == RequestApproved {
			r.EndedAt = r.ExpiresAt
		} else {
			r.EndedAt = r.PendingUntil
		}
		r.State, r.ModifyIndex = RequestExpired, tx.index
		if err := tx.Insert(TableAccessRequests, &r); err != nil {
			return nil, fmt.Errorf("expire access request %s: %w", id, err)
		}
		out = append(out, &r)
	}
	if len(out) == 0 {
		return out, nil // no-op: don't wake watchers
	}
	return out, tx.bump(TableAccessRequests)
}

// AccessRequestByID returns the request, or nil.
func (s *State) AccessRequestByID(ws memdb.WatchSet, id string) (uint64, *AccessRequest, error) {
	return getOne[AccessRequest](s, ws, TableAccessRequests, "id", id)
}

// AccessRequestsByUser lists the requests a person made, by id.
func (s *State) AccessRequestsByUser(ws memdb.WatchSet, userID string) (uint64, []*AccessRequest, error) {
	return getAll[AccessRequest](s, ws, TableAccessRequests, "user", userID)
}

// AccessRequestsByProject lists the requests for project, by id.
func (s *State) AccessRequestsByProject(ws memdb.WatchSet, project string) (uint64, []*AccessRequest, error) {
	return getAll[AccessRequest](s, ws, TableAccessRequests, "project", project)
}

// AccessRequestsByState lists the requests whose record says state.
func (s *State) AccessRequestsByState(ws memdb.WatchSet, state AccessRequestState) (uint64, []*AccessRequest, error) {
	return getAll[AccessRequest](s, ws, TableAccessRequests, "state", string(state))
}

// AccessRequests lists every request, by id.
func (s *State) AccessRequests(ws memdb.WatchSet) (uint64, []*AccessRequest, error) {
	return getAll[AccessRequest](s, ws, TableAccessRequests, "id")
}
