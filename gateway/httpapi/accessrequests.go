package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// just-in-time access requests: read them, and approve, deny or revoke them
// through control, which checks and audits each decision as it does the
// shell's. A token decides as its owner (control.TokenDecider). There is no
// creation here: a request is a person's, made over SSH
// (docs/access-requests.md).

func accessRequestToAPI(r *raftstore.AccessRequest, now func() time.Time) api.AccessRequest {
	out := api.AccessRequest{ID: r.ID, Project: r.Project, User: r.Requester, UserID: r.UserID, Login: r.Login, Reason: r.Reason,
		Duration: r.Duration.String(), State: string(r.StateAt(now())), ApprovalsNeeded: r.Needed, Approvals: []api.AccessRequestApproval{},
		DecidedBy: r.DecidedBy, DecisionReason: r.DecisionReason, CreatedAt: r.CreatedAt.UTC(), PendingUntil: r.PendingUntil.UTC(),
		ApprovedAt: api.TimeOrNil(r.ApprovedAt), ExpiresAt: api.TimeOrNil(r.ExpiresAt), EndedAt: api.TimeOrNil(r.EndedAt)}
	for _, a := range r.Approvals {
		out.Approvals = append(out.Approvals, api.AccessRequestApproval{By: a.By, Login: a.Login, At: a.At.UTC()})
	}
	return out
}

// requestKey orders requests newest first (the list's key sorts
// ascending): the raft index of their creation, inverted, then the id.
func requestKey(r api.AccessRequest, index uint64) string {
	return strconv.FormatUint(^index, 16) + "/" + r.ID
}

func (s *Server) listAccessRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state, project, user := q.Get("state"), q.Get("project"), q.Get("user")
	switch raftstore.AccessRequestState(state) {
	case "", raftstore.RequestPending, raftstore.RequestApproved, raftstore.RequestDenied, raftstore.RequestExpired, raftstore.RequestRevoked:
	default:
		s.writeError(w, r, invalidf("state %q is not pending, approved, denied, expired or revoked", state))
		return
	}
	type keyed struct {
		key string
		api.AccessRequest
	}
	serveList(s, w, r, func(k keyed) string { return k.key }, mapped((*raftstore.State).AccessRequests,
		func(ar *raftstore.AccessRequest) keyed {
			v := accessRequestToAPI(ar, s.now)
			return keyed{key: requestKey(v, ar.CreateIndex), AccessRequest: v}
		},
		func(ar *raftstore.AccessRequest) bool {
			return (project == "" || ar.Project == project) &&
				(user == "" || ar.UserID == user || strings.EqualFold(ar.Requester, user)) &&
				(state == "" || string(ar.StateAt(s.now())) == state)
		}))
}

func (s *Server) getAccessRequest(w http.ResponseWriter, r *http.Request) {
	if err := s.readMode(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	ar, err := s.control.AccessRequest(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(ar.ModifyIndex, 10))
	writeJSON(w, http.StatusOK, accessRequestToAPI(ar, s.now))
}

// decide runs one decision as the request's token decides (its owner).
func (s *Server) decide(w http.ResponseWriter, r *http.Request, approve bool,
	do func(a control.Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error)) {
	tok, _ := r.Context().Value(adminTokenKey{}).(*raftstore.ServiceToken)
	if tok == nil {
		s.writeError(w, r, Errorf(http.StatusUnauthorized, "a service token is required"))
		return
	}
	by, err := control.TokenDecider(s.store.State(), tok, approve)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ar, err := do(adminActor(r), by, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(ar.ModifyIndex, 10))
	writeJSON(w, http.StatusOK, accessRequestToAPI(ar, s.now))
}

func (s *Server) approveAccessRequest(w http.ResponseWriter, r *http.Request) {
	s.decide(w, r, true, func(a control.Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error) {
		return s.control.ApproveAccessRequest(r.Context(), a, by, id)
	})
}

// decision reads a denial's or revocation's body ({"reason": …}); control
// says when the reason is missing.
func decision(r *http.Request) (string, error) {
	var in api.AccessRequestDecision
	if err := readJSON(r, &in); err != nil {
		return "", err
	}
	return in.Reason, nil
}

func (s *Server) denyAccessRequest(w http.ResponseWriter, r *http.Request) {
	reason, err := decision(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.decide(w, r, false, func(a control.Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error) {
		return s.control.DenyAccessRequest(r.Context(), a, by, id, reason)
	})
}

func (s *Server) revokeAccessRequest(w http.ResponseWriter, r *http.Request) {
	reason, err := decision(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.decide(w, r, false, func(a control.Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error) {
		return s.control.RevokeAccessRequest(r.Context(), a, by, id, reason)
	})
}
