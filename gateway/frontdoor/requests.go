package frontdoor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/spf13/pflag"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Just-in-time access from plain ssh: `ssh bastion request PROJECT --for
// DURATION --reason TEXT [--login NAME]` asks and waits for the answer,
// `ssh bastion requests` lists the person's own, and approvers answer with
// `ssh bastion approve ID` and `ssh bastion deny ID --reason TEXT` (and end
// one early with `revoke`). The service layer (gateway/control) validates
// and audits; this is only its surface.

// Requests is the service the request commands run on (control.Service).
type Requests interface {
	RequestAccess(ctx context.Context, a control.Actor, in control.NewAccessRequest) (*raftstore.AccessRequest, error)
	ApproveAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id string) (*raftstore.AccessRequest, error)
	DenyAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id, reason string) (*raftstore.AccessRequest, error)
	RevokeAccessRequest(ctx context.Context, a control.Actor, by raftstore.Decider, id, reason string) (*raftstore.AccessRequest, error)
	AccessRequests(f control.AccessRequestFilter) ([]*raftstore.AccessRequest, error)
	WaitAccessRequest(ctx context.Context, id string, index uint64, wait time.Duration) (*raftstore.AccessRequest, uint64, error)
}

// requestWaitPoll bounds one wait for a request's change; the loop shows
// the status again after it.
const requestWaitPoll = 30 * time.Second

// isRequestCommand reports whether args are one of the request commands.
func isRequestCommand(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "request", "requests", "approve", "deny", "revoke":
		return true
	}
	return false
}

// requestCommand runs a request command for user and returns the exit
// status.
func (s *Server) requestCommand(sess gliderssh.Session, user *raftstore.User, args []string) int {
	stderr := sess.Stderr()
	if s.cfg.Requests == nil {
		fmt.Fprintln(stderr, "Rampart: access requests are not enabled on this node.")
		return 1
	}
	a := control.Actor{Name: user.Login, Fields: map[string]string{"remote": sess.RemoteAddr().String(), "surface": "ssh"}}
	by := raftstore.Decider{ID: user.ID, Login: user.Login}
	fs := pflag.NewFlagSet(args[0], pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dur    = fs.Duration("for", 0, "how long the access should last, e.g. 2h")
		reason = fs.String("reason", "", "why you need it (required)")
		login  = fs.String("login", "", "the unix login you need, if not your own")
		asJSON = fs.Bool("json", false, "print JSON")
	)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	rest := fs.Args()
	ctx := sess.Context()
	switch {
	case args[0] == "requests" && len(rest) == 0:
		rs, err := s.cfg.Requests.AccessRequests(control.AccessRequestFilter{UserID: user.ID})
		if err != nil {
			return s.requestFailed(stderr, user, err)
		}
		if *asJSON {
			b, _ := json.Marshal(rs)
			fmt.Fprintf(sess, "%s\n", b)
			return 0
		}
		writeRequests(sess, rs, s.now())
		return 0
	case args[0] == "request" && len(rest) == 1:
		if strings.TrimSpace(*reason) == "" || *dur <= 0 {
			fmt.Fprintf(stderr, "Rampart: say for how long and why: %s\r\n", s.selfCommand("request "+rest[0]+` --for 2h --reason "..."`))
			return 2
		}
		r, err := s.cfg.Requests.RequestAccess(ctx, a, control.NewAccessRequest{UserID: user.ID, Project: rest[0], Login: *login, Reason: *reason, Duration: *dur})
		if err != nil {
			return s.requestFailed(stderr, user, err)
		}
		fmt.Fprintf(sess, "Request %s for project %s as %s for %s is pending: it needs %d approval(s).\r\n", r.ID, r.Project, r.Login, r.Duration, r.Needed)
		fmt.Fprintf(sess, "Waiting for the answer; Ctrl-C leaves the request pending (see it with: %s).\r\n", s.selfCommand("requests"))
		return s.awaitRequest(ctx, sess, r)
	case (args[0] == "approve") && len(rest) == 1:
		r, err := s.cfg.Requests.ApproveAccessRequest(ctx, a, by, rest[0])
		if err != nil {
			return s.requestFailed(stderr, user, err)
		}
		if r.State == raftstore.RequestApproved {
			fmt.Fprintf(sess, "Approved %s: %s may reach project %s until %s.\r\n", r.ID, r.Requester, r.Project, r.ExpiresAt.UTC().Format(time.RFC3339))
		} else {
			fmt.Fprintf(sess, "Your approval of %s is recorded (%d of %d); it waits for another approver.\r\n", r.ID, len(r.Approvals), r.Needed)
		}
		return 0
	case (args[0] == "deny" || args[0] == "revoke") && len(rest) == 1:
		if strings.TrimSpace(*reason) == "" {
			fmt.Fprintf(stderr, "Rampart: give a reason: %s\r\n", s.selfCommand(args[0]+" "+rest[0]+` --reason "..."`))
			return 2
		}
		do, verb := s.cfg.Requests.DenyAccessRequest, "Denied"
		if args[0] == "revoke" {
			do, verb = s.cfg.Requests.RevokeAccessRequest, "Revoked"
		}
		r, err := do(ctx, a, by, rest[0], *reason)
		if err != nil {
			return s.requestFailed(stderr, user, err)
		}
		fmt.Fprintf(sess, "%s %s (%s, project %s).\r\n", verb, r.ID, r.Requester, r.Project)
		return 0
	}
	fmt.Fprintf(stderr, "Rampart: usage: %s | %s | %s | %s\r\n", s.selfCommand(`request PROJECT --for 2h --reason "..." [--login NAME]`),
		s.selfCommand("requests [--json]"), s.selfCommand("approve ID"), s.selfCommand(`deny|revoke ID --reason "..."`))
	return 2
}

// requestFailed tells the person why, when the reason is theirs to know,
// and returns the exit status.
func (s *Server) requestFailed(stderr io.Writer, user *raftstore.User, err error) int {
	if _, ok := fault.StatusOf(err); ok {
		fmt.Fprintf(stderr, "Rampart: %s\r\n", userFault(err))
		return 1
	}
	s.logger.Error("access request command failed", "user", user.Login, "err", err)
	fmt.Fprintln(stderr, "Rampart: the cluster cannot take that right now; try again shortly.")
	return 1
}

// userFault is a service refusal without the store's category prefix.
func userFault(err error) string {
	msg := err.Error()
	for _, p := range []string{"invalid: ", "conflict: ", "not found: "} {
		if i := strings.LastIndex(msg, p); i >= 0 {
			msg = msg[i+len(p):]
		}
	}
	return msg
}

// awaitRequest shows r's status until it is approved, denied, revoked or
// expired, or the person leaves (Ctrl-C: the request stays pending).
func (s *Server) awaitRequest(ctx context.Context, sess gliderssh.Session, r *raftstore.AccessRequest) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, _, isPty := sess.Pty(); isPty {
		// On a terminal Ctrl-C arrives as a byte.
		go func() {
			b := make([]byte, 64)
			for {
				n, err := sess.Read(b)
				if err != nil || strings.ContainsAny(string(b[:n]), "\x03\x04") {
					cancel()
					return
				}
			}
		}()
	}
	idx := r.ModifyIndex
	approvals := len(r.Approvals)
	for {
		now := s.now()
		switch r.StateAt(now) {
		case raftstore.RequestApproved:
			fmt.Fprintf(sess, "Approved by %s: you may reach project %s as %s until %s (request %s).\r\n",
				r.Approvals[len(r.Approvals)-1].Login, r.Project, r.Login, r.ExpiresAt.UTC().Format(time.RFC3339), r.ID)
			return 0
		case raftstore.RequestDenied:
			fmt.Fprintf(sess, "Denied by %s: %s\r\n", r.DecidedBy, r.DecisionReason)
			return 1
		case raftstore.RequestRevoked:
			fmt.Fprintf(sess, "Withdrawn by %s: %s\r\n", r.DecidedBy, r.DecisionReason)
			return 1
		case raftstore.RequestExpired:
			fmt.Fprintf(sess, "Request %s expired without enough approvals.\r\n", r.ID)
			return 1
		}
		if n := len(r.Approvals); n != approvals {
			approvals = n
			fmt.Fprintf(sess, "Approved by %s (%d of %d); waiting for another approver.\r\n", r.Approvals[n-1].Login, n, r.Needed)
		}
		next, nidx, err := s.cfg.Requests.WaitAccessRequest(ctx, r.ID, idx, requestWaitPoll)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				fmt.Fprintf(sess, "\r\nStopped waiting; request %s is still pending.\r\n", r.ID)
				return 130
			}
			s.logger.Warn("waiting for an access request", "request", r.ID, "err", err)
			fmt.Fprintf(sess.Stderr(), "Rampart: lost track of request %s; see it with %s\r\n", r.ID, s.selfCommand("requests"))
			return 1
		}
		r, idx = next, nidx
	}
}

// writeRequests prints requests as a table.
func writeRequests(out io.Writer, rs []*raftstore.AccessRequest, now time.Time) {
	if len(rs) == 0 {
		fmt.Fprint(out, "No access requests.\r\n")
		return
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprint(tw, "ID\tPROJECT\tLOGIN\tFOR\tSTATE\tUNTIL\tREASON\r\n")
	for _, r := range rs {
		until := ""
		if r.State == raftstore.RequestApproved {
			until = r.ExpiresAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\r\n", r.ID, r.Project, r.Login, r.Duration, r.StateAt(now), until, r.Reason)
	}
	_ = tw.Flush()
}
