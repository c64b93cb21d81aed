package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// The requests page: the pending access requests the signed-in person may
// decide, approved or denied (with a reason) through gateway/control as
// `ssh bastion approve` and `deny` are, their own pending ones (which they
// may not decide), and the recent decisions in the projects they approve
// for. Every decision is checked by control from the replicated state (the
// person's account, found by their IdP subject, and its groups now) and
// audited there once, with surface=console.

// SurfaceConsole is the surface field of the audit events of decisions
// made in the console.
const SurfaceConsole = "console"

// decidedShown bounds the recent decisions the page lists.
const decidedShown = 50

// requestRow is one access request on the page.
type requestRow struct {
	ID, Project, Requester, Login, Reason, Duration, State string
	Approvals                                              string
	ApprovedBy                                             []string
	DecidedBy, DecisionReason                              string
	Created, Expires                                       time.Time
	// ApprovedByYou: the person's approval is in, the request waits for
	// another approver.
	ApprovedByYou bool
}

func newRequestRow(r *raftstore.AccessRequest, now time.Time, by string) requestRow {
	row := requestRow{ID: r.ID, Project: r.Project, Requester: r.Requester, Login: r.Login, Reason: r.Reason,
		Duration: r.Duration.String(), State: string(r.StateAt(now)), Approvals: strconv.Itoa(len(r.Approvals)) + "/" + strconv.Itoa(r.Needed),
		DecidedBy: r.DecidedBy, DecisionReason: r.DecisionReason, Created: r.CreatedAt, Expires: r.ExpiresAt}
	for _, a := range r.Approvals {
		row.ApprovedBy = append(row.ApprovedBy, a.Login)
		row.ApprovedByYou = row.ApprovedByYou || (by != "" && a.By == by)
	}
	return row
}

// requestsPage is GET /console/requests.
func (c *Console) requestsPage(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	q := r.URL.Query()
	data := struct {
		Problem               string
		Done, DoneID          string
		Pending, Own, Decided []requestRow
	}{Done: q.Get("done"), DoneID: q.Get("id")}
	if !raftstore.IsAccessRequestID(data.DoneID) {
		data.Done, data.DoneID = "", ""
	}
	st := c.deps.State.State()
	by, err := control.ConsoleDecider(st, who.Subject, who.Admin, c.cfg.AdminGroup)
	if err != nil {
		data.Problem = c.decisionProblem(who, "", err)
		c.render(w, http.StatusOK, "requests", view{Title: "Access requests", Who: who, Data: data})
		return
	}
	all, err := c.deps.Requests.AccessRequests(control.AccessRequestFilter{})
	if err != nil {
		c.log.Warn("console: access requests cannot be read", "user", who.User, "err", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The access requests cannot be read right now.")
		return
	}
	var approves []string
	if !by.Admin {
		_, u, err := st.UserByID(nil, by.ID)
		if err == nil && u != nil {
			approves, _ = control.ApproverProjects(st, u.Groups)
		}
	}
	now := c.now()
	for _, ar := range all {
		own := ar.UserID == by.ID || st.SamePerson(by.ID, ar.UserID)
		switch {
		case ar.StateAt(now) == raftstore.RequestPending && own:
			data.Own = append(data.Own, newRequestRow(ar, now, by.ID))
		case ar.StateAt(now) == raftstore.RequestPending:
			if control.MayDecide(st, ar, by) == nil {
				data.Pending = append(data.Pending, newRequestRow(ar, now, by.ID))
			}
		case len(data.Decided) < decidedShown && (own || by.Admin || slices.Contains(approves, ar.Project)):
			data.Decided = append(data.Decided, newRequestRow(ar, now, by.ID))
		}
	}
	c.render(w, http.StatusOK, "requests", view{Title: "Access requests", Who: who, Data: data})
}

// requestActor is who a decision is audited as: the person's Rampart login,
// from the console.
func requestActor(r *http.Request, by raftstore.Decider) control.Actor {
	return control.Actor{Name: by.Login, UserID: by.ID, Fields: map[string]string{"source": r.RemoteAddr, "surface": SurfaceConsole}}
}

// approveRequest is POST /console/requests/{id}/approve.
func (c *Console) approveRequest(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	id := r.PathValue("id")
	by, err := control.ConsoleDecider(c.deps.State.State(), who.Subject, who.Admin, c.cfg.AdminGroup)
	if err != nil {
		c.decisionFailed(w, r, who, id, err)
		return
	}
	out, err := c.deps.Requests.ApproveAccessRequest(r.Context(), requestActor(r, by), by, id)
	if err != nil {
		c.decisionFailed(w, r, who, id, err)
		return
	}
	done := "approved"
	if out.State != raftstore.RequestApproved {
		done = "recorded"
	}
	http.Redirect(w, r, Prefix+"requests?done="+done+"&id="+url.QueryEscape(out.ID), http.StatusSeeOther)
}

// denyRequest is POST /console/requests/{id}/deny; the reason is required.
func (c *Console) denyRequest(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	id := r.PathValue("id")
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if reason == "" {
		c.fail(w, r, http.StatusBadRequest, "Give a reason for the denial: the person who asked will see it.")
		return
	}
	by, err := control.ConsoleDecider(c.deps.State.State(), who.Subject, who.Admin, c.cfg.AdminGroup)
	if err != nil {
		c.decisionFailed(w, r, who, id, err)
		return
	}
	out, err := c.deps.Requests.DenyAccessRequest(r.Context(), requestActor(r, by), by, id, reason)
	if err != nil {
		c.decisionFailed(w, r, who, id, err)
		return
	}
	http.Redirect(w, r, Prefix+"requests?done=denied&id="+url.QueryEscape(out.ID), http.StatusSeeOther)
}

// decisionFailed answers a refused or failed decision.
func (c *Console) decisionFailed(w http.ResponseWriter, r *http.Request, who *consoleSession, id string, err error) {
	status, ok := fault.StatusOf(err)
	if !ok {
		status = http.StatusServiceUnavailable
	}
	c.fail(w, r, status, c.decisionProblem(who, id, err))
}

// decisionProblem is what the person is told of err: control's refusal,
// which is written for them, or, for anything else, no internals.
func (c *Console) decisionProblem(who *consoleSession, id string, err error) string {
	if _, ok := fault.StatusOf(err); ok {
		msg := err.Error()
		for _, p := range []string{"invalid: ", "conflict: ", "not found: "} {
			if i := strings.LastIndex(msg, p); i >= 0 {
				msg = msg[i+len(p):]
			}
		}
		c.log.Info("console: access request decision refused", "user", who.User, "request", id, "err", err)
		if msg != "" {
			msg = strings.ToUpper(msg[:1]) + msg[1:]
		}
		if !strings.HasSuffix(msg, ".") {
			msg += "."
		}
		return msg
	}
	c.log.Error("console: access request decision failed", "user", who.User, "request", id, "err", err)
	return "The cluster cannot take that right now; try again shortly."
}
