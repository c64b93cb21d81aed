package control

import (
	"cmp"
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Just-in-time access requests: made by a person for themselves, decided
// by approvers (or administrators), expired by the leader once their time
// is up (every node refuses on its own before that: raftstore.AccessRequest
// StateAt). Each change is audited here, once, whatever the surface.

// Audit event types of access requests.
const (
	EventAccessRequestCreate  = "access_request.create"
	EventAccessRequestApprove = "access_request.approve"
	EventAccessRequestDeny    = "access_request.deny"
	EventAccessRequestRevoke  = "access_request.revoke"
	EventAccessRequestExpire  = "access_request.expire"
)

// RequestNotifier tells a project's approvers of a new request through the
// project's webhooks. Notify must not block: a notification never holds up
// the request (gateway/notify retries and audits on its own).
type RequestNotifier interface {
	Notify(r *raftstore.AccessRequest, hooks []raftstore.RequestWebhook)
}

// NewAccessRequest is what a person asks for.
type NewAccessRequest struct {
	UserID  string
	Project string
	// Login is the unix login asked for; "" is the person's own.
	Login    string
	Reason   string
	Duration time.Duration
}

// requestID returns a fresh request id: "r-" and ten base32 letters.
func (s *Service) requestID() (string, error) {
	b := make([]byte, 6)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("request id: %w", err)
	}
	return "r-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// RequestAccess records a pending request and notifies the project's
// approvers. The project's policy is checked by the state machine; its
// refusals come back as 400s with the reason fit to show the person.
func (s *Service) RequestAccess(ctx context.Context, a Actor, in NewAccessRequest) (*raftstore.AccessRequest, error) {
	st := s.state(ctx)
	p, err := project(st, in.Project)
	if err != nil {
		return nil, err
	}
	if p.Settings.Requests == nil {
		return nil, &fault.Error{Status: http.StatusForbidden, Code: "forbidden", Msg: fmt.Sprintf("project %s does not take access requests", p.Name)}
	}
	id, err := s.requestID()
	if err != nil {
		return nil, err
	}
	var r raftstore.AccessRequest
	if err := s.applyDecode(ctx, &raftstore.AccessRequestCreate{ID: id, Project: in.Project, UserID: in.UserID, Login: in.Login,
		Reason: in.Reason, Duration: in.Duration, Now: s.now().UTC()}, &r); err != nil {
		return nil, err
	}
	if err := s.audit(ctx, a, EventAccessRequestCreate, requestFields(&r, "reason", r.Reason, "duration", r.Duration.String())); err != nil {
		return &r, err
	}
	if s.notifier != nil && len(p.Settings.Requests.Webhooks) > 0 {
		s.notifier.Notify(&r, p.Settings.Requests.Webhooks)
	}
	return &r, nil
}

// requestFields are the audit fields of a request, with extra pairs.
func requestFields(r *raftstore.AccessRequest, extra ...string) map[string]string {
	f := map[string]string{"request": r.ID, "project": r.Project, "user": r.Requester, "user_id": r.UserID, "login": r.Login, "state": string(r.State)}
	for i := 0; i+1 < len(extra); i += 2 {
		f[extra[i]] = extra[i+1]
	}
	return f
}

// forbidden is a refusal of who asks, not of what they asked.
func forbidden(format string, args ...any) error {
	return &fault.Error{Status: http.StatusForbidden, Code: "forbidden", Msg: fmt.Sprintf(format, args...)}
}

// checkDecider refuses, with a 403, a decider the state machine would
// refuse: nobody decides their own request (from this account or another
// with the same e-mail address), and only approvers of the
// project (or administrators) decide others'.
func checkDecider(st *raftstore.State, r *raftstore.AccessRequest, by raftstore.Decider, ownOK bool) error {
	if by.ID == r.UserID {
		if ownOK {
			return nil
		}
		return forbidden("you may not approve or deny your own request")
	}
	if st.SamePerson(by.ID, r.UserID) {
		if ownOK && st.VerifiedSamePerson(by.ID, r.UserID) {
			return nil
		}
		if !ownOK {
			return forbidden("you may not approve or deny your own request (your accounts share an e-mail address)")
		}
	}
	if by.Admin {
		return nil
	}
	_, p, err := st.ProjectByName(nil, r.Project)
	if err != nil {
		return err
	}
	_, u, err := st.UserByID(nil, by.ID)
	if err != nil {
		return err
	}
	if p == nil || p.Settings.Requests == nil || u == nil || u.Status != raftstore.UserActive || !p.Settings.Requests.MayApprove(u.Groups) {
		return forbidden("you are not an approver of project %s", r.Project)
	}
	return nil
}

// accessRequest returns request id, or a 404.
func accessRequest(st *raftstore.State, id string) (*raftstore.AccessRequest, error) {
	if !raftstore.IsAccessRequestID(id) {
		return nil, notFound("access request %q: not found", id)
	}
	_, r, err := st.AccessRequestByID(nil, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound("access request %s: not found", id)
	}
	return r, nil
}

// ApproveAccessRequest adds by's approval; the one that completes the
// number needed starts the window.
func (s *Service) ApproveAccessRequest(ctx context.Context, a Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error) {
	r, err := accessRequest(s.state(ctx), id)
	if err != nil {
		return nil, err
	}
	if err := checkDecider(s.store.State(), r, by, false); err != nil {
		return nil, err
	}
	var out raftstore.AccessRequest
	if err := s.applyDecode(ctx, &raftstore.AccessRequestApprove{ID: id, By: by, Now: s.now().UTC()}, &out); err != nil {
		return nil, err
	}
	f := requestFields(&out, "approver", by.Login, "approvals", fmt.Sprintf("%d/%d", len(out.Approvals), out.Needed))
	if out.State == raftstore.RequestApproved {
		f["expires_at"] = out.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return &out, s.audit(ctx, a, EventAccessRequestApprove, f)
}

// DenyAccessRequest refuses a pending request, with a reason.
func (s *Service) DenyAccessRequest(ctx context.Context, a Actor, by raftstore.Decider, id, reason string) (*raftstore.AccessRequest, error) {
	return s.decideWithReason(ctx, a, by, id, reason, false, EventAccessRequestDeny,
		&raftstore.AccessRequestDeny{ID: id, By: by, Reason: reason, Now: s.now().UTC()})
}

// RevokeAccessRequest ends a pending or approved request now: its live
// sessions end on every node. Its person may give it up themselves.
func (s *Service) RevokeAccessRequest(ctx context.Context, a Actor, by raftstore.Decider, id, reason string) (*raftstore.AccessRequest, error) {
	return s.decideWithReason(ctx, a, by, id, reason, true, EventAccessRequestRevoke,
		&raftstore.AccessRequestRevoke{ID: id, By: by, Reason: reason, Now: s.now().UTC()})
}

// decideWithReason applies a decision that needs a reason (cmd: a deny or
// a revoke) once by may make it (mayGiveUp: the requester may, to give the
// request up), and audits it as event.
func (s *Service) decideWithReason(ctx context.Context, a Actor, by raftstore.Decider, id, reason string, mayGiveUp bool, event string, cmd raftstore.Command) (*raftstore.AccessRequest, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, invalid("a reason is required (--reason)")
	}
	r, err := accessRequest(s.state(ctx), id)
	if err != nil {
		return nil, err
	}
	if err := checkDecider(s.store.State(), r, by, mayGiveUp); err != nil {
		return nil, err
	}
	var out raftstore.AccessRequest
	if err := s.applyDecode(ctx, cmd, &out); err != nil {
		return nil, err
	}
	return &out, s.audit(ctx, a, event, requestFields(&out, "by", by.Login, "reason", reason))
}

// AccessRequest returns request id as this node's replica holds it.
func (s *Service) AccessRequest(id string) (*raftstore.AccessRequest, error) {
	return accessRequest(s.store.State(), id)
}

// AccessRequestFilter selects requests; zero fields select all.
type AccessRequestFilter struct {
	UserID  string
	Project string
	// State is compared with the state now (an approved request whose
	// window has passed is expired).
	State raftstore.AccessRequestState
}

// AccessRequests lists the requests f selects, newest first.
func (s *Service) AccessRequests(f AccessRequestFilter) ([]*raftstore.AccessRequest, error) {
	st := s.store.State()
	var all []*raftstore.AccessRequest
	var err error
	switch {
	case f.UserID != "":
		_, all, err = st.AccessRequestsByUser(nil, f.UserID)
	case f.Project != "":
		_, all, err = st.AccessRequestsByProject(nil, f.Project)
	default:
		_, all, err = st.AccessRequests(nil)
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []*raftstore.AccessRequest{}
	for _, r := range all {
		if (f.Project == "" || r.Project == f.Project) && (f.State == "" || r.StateAt(now) == f.State) {
			out = append(out, r)
		}
	}
	// Newest first, in the order the cluster recorded them.
	slices.SortFunc(out, func(a, b *raftstore.AccessRequest) int { return cmp.Compare(b.CreateIndex, a.CreateIndex) })
	return out, nil
}

// WaitAccessRequest returns request id once its record has changed past
// index (0: at once), or as it is when wait runs out, with the index to wait
// on next. A request whose time is up is returned at its end even when no
// record of it changed, so that a waiting person learns of it.
func (s *Service) WaitAccessRequest(ctx context.Context, id string, index uint64, wait time.Duration) (*raftstore.AccessRequest, uint64, error) {
	if !raftstore.IsAccessRequestID(id) {
		return nil, 0, notFound("access request %q: not found", id)
	}
	_, r, err := s.store.State().AccessRequestByID(nil, id)
	if err != nil {
		return nil, 0, err
	}
	if r == nil && index == 0 {
		return nil, 0, notFound("access request %s: not found", id)
	}
	if r != nil && index != 0 {
		end := r.PendingUntil
		if r.State == raftstore.RequestApproved {
			end = r.ExpiresAt
		}
		if d := end.Sub(s.now()); d > 0 && d < wait {
			wait = d
		}
	}
	var out *raftstore.AccessRequest
	next, err := raftstore.BlockingQuery(ctx, s.store, index, wait, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
		_, r, err := st.AccessRequestByID(ws, id)
		if err != nil {
			return 0, err
		}
		if r == nil {
			// Seen at index by the caller (made through the leader) but
			// not yet applied here: wait for it, as for a change.
			return index, nil
		}
		out = r
		return r.ModifyIndex, nil
	})
	if err == nil && out == nil {
		err = notFound("access request %s: not found", id)
	}
	return out, next, err
}

// ExpireAccessRequests writes the expiry of every request whose time is up
// and audits each; it returns how many. Only the leader should call it
// (RunAccessRequestExpiry): followers would write the same, once more.
func (s *Service) ExpireAccessRequests(ctx context.Context) (int, error) {
	st := s.store.State()
	now := s.now().UTC()
	var due []string
	for _, state := range []raftstore.AccessRequestState{raftstore.RequestPending, raftstore.RequestApproved} {
		_, rs, err := st.AccessRequestsByState(nil, state)
		if err != nil {
			return 0, err
		}
		for _, r := range rs {
			if r.StateAt(now) == raftstore.RequestExpired {
				due = append(due, r.ID)
			}
		}
	}
	if len(due) == 0 {
		return 0, nil
	}
	var expired []*raftstore.AccessRequest
	if err := s.applyDecode(ctx, &raftstore.AccessRequestExpire{IDs: due[:min(len(due), 1000)], Now: now}, &expired); err != nil {
		return 0, err
	}
	var errs []error
	for _, r := range expired {
		f := requestFields(r, "ended_at", r.EndedAt.UTC().Format(time.RFC3339))
		if r.ApprovedAt.IsZero() {
			f["unapproved"] = "true"
		}
		errs = append(errs, s.audit(ctx, Actor{Name: "rampart"}, EventAccessRequestExpire, f))
	}
	return len(expired), errors.Join(errs...)
}

// RequestExpiryEvery is how often the leader looks for requests whose time
// is up.
const RequestExpiryEvery = 500 * time.Millisecond

// RunAccessRequestExpiry expires requests while leader says this node
// leads, until ctx ends. It only writes down what every node enforces
// already; a new leader picks up where the old one stopped.
func (s *Service) RunAccessRequestExpiry(ctx context.Context, leader func() bool) {
	t := time.NewTicker(RequestExpiryEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !leader() {
			continue
		}
		if n, err := s.ExpireAccessRequests(ctx); err != nil && ctx.Err() == nil {
			s.logger.Warn("expiring access requests failed; will retry", "err", err)
		} else if n > 0 {
			s.logger.Info("access requests expired", "count", strconv.Itoa(n))
		}
	}
}
