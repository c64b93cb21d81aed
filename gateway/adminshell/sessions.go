package adminshell

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// device bindings and SSH sessions.

type bindingView struct {
	Fingerprint   string     `json:"fingerprint"`
	UserID        string     `json:"user_id"`
	User          string     `json:"user"`
	PublicKey     string     `json:"public_key"`
	ClientVersion string     `json:"client_version,omitempty"`
	SourceAddr    string     `json:"source_addr,omitempty"`
	CreatedAt     *time.Time `json:"created_at,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Live          bool       `json:"live"`
}

func (v *invocation) bindingsCmd() *cobra.Command {
	return group("bindings", "Device bindings: SSH keys bound to users after a browser sign-in", []string{"binding"},
		v.bindingsLsCmd(), v.bindingsRevokeCmd())
}

func (v *invocation) bindingsLsCmd() *cobra.Command {
	var user string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List device bindings (keys bound to users)", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st := v.state()
			var bindings []*raftstore.Binding
			var err error
			if user != "" {
				u, ferr := findUser(st, user)
				if ferr != nil {
					return ferr
				}
				_, bindings, err = st.BindingsByUser(nil, u.ID)
			} else {
				_, bindings, err = st.Bindings(nil)
			}
			if err != nil {
				return err
			}
			now := v.sh.now()
			views, ids := []bindingView{}, []string{}
			for _, b := range bindings {
				views = append(views, bindingView{Fingerprint: b.Fingerprint, UserID: b.UserID, User: userLogin(st, b.UserID),
					PublicKey: b.PublicKey, ClientVersion: b.ClientVersion, SourceAddr: b.SourceAddr,
					CreatedAt: timeJSON(b.CreatedAt), ExpiresAt: timeJSON(b.ExpiresAt), Live: now.Before(b.ExpiresAt)})
				ids = append(ids, b.Fingerprint)
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "FINGERPRINT", "USER", "EXPIRES", "FROM", "CLIENT")
				for i, b := range views {
					t.row(b.Fingerprint, b.User, expiry(now, bindings[i].ExpiresAt), b.SourceAddr, b.ClientVersion)
				}
				return t.flush()
			})
		},
	}
	ls.Flags().StringVar(&user, "user", "", "only this user's bindings")
	v.completeFlag(ls, "user", userNames)
	return ls
}

func (v *invocation) bindingsRevokeCmd() *cobra.Command {
	var revokeUser string
	var all, yes bool
	revoke := &cobra.Command{
		Use:   "revoke FINGERPRINT | --user USER | --all",
		Short: "Unbind keys and end the sessions opened with them: the next login goes through the IdP again",
		Args: func(_ *cobra.Command, args []string) error {
			given := len(args)
			if revokeUser != "" {
				given++
			}
			if all {
				given++
			}
			if given != 1 || len(args) > 1 {
				return usagef("bindings revoke takes exactly one of FINGERPRINT, --user USER or --all")
			}
			return nil
		},
		ValidArgsFunction: v.completeArgs(func(st *raftstore.State) []string {
			_, bs, _ := st.Bindings(nil)
			out := make([]string, len(bs))
			for i, b := range bs {
				out[i] = b.Fingerprint
			}
			return out
		}),
		RunE: func(_ *cobra.Command, args []string) error {
			var sel control.Bindings
			switch {
			case len(args) == 1:
				sel.Fingerprint = args[0]
			case revokeUser != "":
				u, err := findUser(v.state(), revokeUser)
				if err != nil {
					return err
				}
				sel.UserID = u.ID
			default:
				sel.All = true
			}
			n, what, err := v.sh.control.RevokeBindings(v.ctx, v.controlActor(), sel, v.confirmer(yes))
			if err != nil {
				return err
			}
			return v.done(map[string]any{"revoked": n}, "revoked %s (%d binding(s))", what, n)
		},
	}
	revoke.Flags().StringVar(&revokeUser, "user", "", "revoke every binding of this user")
	revoke.Flags().BoolVar(&all, "all", false, "revoke every binding of every user")
	revoke.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation (with --all)")
	v.completeFlag(revoke, "user", userNames)
	return revoke
}

type sessionView struct {
	ID              string     `json:"id"`
	UserID          string     `json:"user_id"`
	User            string     `json:"user"`
	Login           string     `json:"login"`
	ServerID        string     `json:"server_id"`
	Server          string     `json:"server"`
	Project         string     `json:"project"`
	Node            string     `json:"node"`
	SourceAddr      string     `json:"source_addr,omitempty"`
	Binding         string     `json:"binding,omitempty"`
	Status          string     `json:"status"`
	Start           *time.Time `json:"start,omitempty"`
	End             *time.Time `json:"end,omitempty"`
	BytesIn         int64      `json:"bytes_in"`
	BytesOut        int64      `json:"bytes_out"`
	EndReason       string     `json:"end_reason,omitempty"`
	RecordingSHA256 string     `json:"recording_sha256,omitempty"`
	// RequestID is the access request the session ran under.
	RequestID string `json:"request_id,omitempty"`
}

func newSessionView(st *raftstore.State, s *raftstore.Session) sessionView {
	server := s.ServerID
	if _, srv, err := st.ServerByID(nil, s.ServerID); err == nil && srv != nil {
		server = srv.Name
	}
	sv := sessionView{ID: s.ID, UserID: s.UserID, User: userLogin(st, s.UserID), Login: s.Login, ServerID: s.ServerID, Server: server,
		Project: s.Project, Node: s.Node, SourceAddr: s.SourceAddr, Binding: s.Binding, Status: string(s.Status), Start: timeJSON(s.Start),
		BytesIn: s.BytesIn, BytesOut: s.BytesOut, EndReason: s.EndReason, RecordingSHA256: s.RecordingSHA256, RequestID: s.RequestID}
	if s.Status == raftstore.SessionClosed {
		sv.End = timeJSON(s.End)
	}
	return sv
}

// sessionDuration is how long a session ran, or has run so far.
func sessionDuration(now time.Time, s *raftstore.Session) time.Duration {
	end := now
	if s.Status == raftstore.SessionClosed {
		end = s.End
	}
	return end.Sub(s.Start).Truncate(time.Second)
}

func (v *invocation) sessionsCmd() *cobra.Command {
	return group("sessions", "SSH sessions carried by the cluster", []string{"session"},
		v.sessionsLsCmd(), v.sessionsShowCmd(), v.sessionsKillCmd(), v.replayCmd())
}

func (v *invocation) sessionsLsCmd() *cobra.Command {
	var active bool
	var user, server string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List SSH sessions carried by the cluster, oldest first", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st := v.state()
			var sessions []*raftstore.Session
			var err error
			if active {
				_, sessions, err = st.ActiveSessions(nil)
			} else {
				_, sessions, err = st.Sessions(nil)
			}
			if err != nil {
				return err
			}
			var userID, serverID string
			if user != "" {
				u, err := findUser(st, user)
				if err != nil {
					return err
				}
				userID = u.ID
			}
			if server != "" {
				s, err := findServer(st, server)
				if err != nil {
					return err
				}
				serverID = s.ID
			}
			sessions = slices.DeleteFunc(slices.Clone(sessions), func(s *raftstore.Session) bool {
				return (userID != "" && s.UserID != userID) || (serverID != "" && s.ServerID != serverID)
			})
			slices.SortStableFunc(sessions, func(a, b *raftstore.Session) int { return a.Start.Compare(b.Start) })
			views, ids := []sessionView{}, []string{}
			for _, s := range sessions {
				views = append(views, newSessionView(st, s))
				ids = append(ids, s.ID)
			}
			now := v.sh.now()
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "ID", "USER", "LOGIN", "SERVER", "NODE", "STARTED", "DURATION", "STATUS")
				for i, s := range views {
					t.row(s.ID, s.User, s.Login, s.Server, s.Node, sessions[i].Start, sessionDuration(now, sessions[i]), s.Status)
				}
				return t.flush()
			})
		},
	}
	ls.Flags().BoolVar(&active, "active", false, "only sessions still running")
	ls.Flags().StringVar(&user, "user", "", "only this user's sessions")
	ls.Flags().StringVar(&server, "server", "", "only sessions to this server")
	v.completeFlag(ls, "user", userNames)
	v.completeFlag(ls, "server", serverNames)
	return ls
}

func (v *invocation) sessionsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use: "show SESSION", Short: "Show a session (by id or a unique id prefix)", Args: exactArgs("SESSION"),
		ValidArgsFunction: v.completeArgs(sessionIDs),
		RunE: func(_ *cobra.Command, args []string) error {
			st := v.state()
			s, err := findSession(st, args[0])
			if err != nil {
				return err
			}
			sv := newSessionView(st, s)
			return v.emit(sv, []string{s.ID}, func(out io.Writer) error {
				d := newDetails(out)
				d.add("id", sv.ID)
				d.add("user", fmt.Sprintf("%s as %s", sv.User, sv.Login))
				d.add("server", fmt.Sprintf("%s (project %s)", sv.Server, sv.Project))
				d.add("node", sv.Node)
				d.add("from", sv.SourceAddr)
				d.add("key", sv.Binding)
				d.add("status", sv.Status)
				d.add("started", s.Start)
				if s.Status == raftstore.SessionClosed {
					d.add("ended", s.End)
					d.add("end reason", s.EndReason)
				}
				d.add("duration", sessionDuration(v.sh.now(), s))
				d.add("bytes in/out", fmt.Sprintf("%d / %d", s.BytesIn, s.BytesOut))
				d.add("recording", s.RecordingSHA256)
				return d.flush()
			})
		},
	}
}

func (v *invocation) sessionsKillCmd() *cobra.Command {
	var yes bool
	kill := &cobra.Command{
		Use: "kill SESSION", Short: "End a live session on whichever node carries it", Args: exactArgs("SESSION"),
		ValidArgsFunction: v.completeArgs(sessionIDs),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := findSession(v.state(), args[0])
			if err != nil {
				return err
			}
			if err := v.sh.control.KillSession(v.ctx, v.controlActor(), s.ID, v.confirmer(yes)); err != nil {
				return err
			}
			fmt.Fprintf(v.out, "session %s ended\n", s.ID)
			return nil
		},
	}
	kill.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return kill
}

// findSession resolves a session id or unique id prefix.
func findSession(st *raftstore.State, ref string) (*raftstore.Session, error) {
	id, err := byPrefix("session", ref, sessionIDs(st), 4)
	if err != nil {
		return nil, err
	}
	_, s, err := st.SessionByID(nil, id)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("session %q: %w", id, raftstore.ErrNotFound)
	}
	return s, nil
}
