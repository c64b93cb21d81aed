package frontdoor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/gateway/adminshell"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Extensions returns the permission extensions the authentication callbacks
// set. gliderlabs keeps its own Permissions object for its own handlers; ours
// live on the x/crypto connection.
func Extensions(ctx gliderssh.Context) map[string]string {
	if sc, ok := ctx.Value(gliderssh.ContextKeyConn).(*gossh.ServerConn); ok && sc.Permissions != nil {
		return sc.Permissions.Extensions
	}
	return map[string]string{}
}

// Whoami is what `ssh bastion whoami --json` prints, one line (api.Whoami).
type Whoami = api.Whoami

// Destination is a server the user may reach, with the exact command.
type Destination = api.Destination

// handleSession answers a session on the front door: the greeting, whoami,
// the person's own bindings, or (for the admin user name) the admin shell.
func (s *Server) handleSession(sess gliderssh.Session) {
	ext := Extensions(sess.Context())
	user, err := s.login.ActiveUser(ext[extUserID])
	if err != nil {
		s.logger.Warn("session refused", "err", err, "remote", sess.RemoteAddr().String())
		fmt.Fprintf(sess.Stderr(), "Rampart: %s\r\n", userMessage(err))
		_ = sess.Exit(1)
		return
	}
	if c, _ := sess.Context().Value(ctxKey{}).(*conn); c != nil {
		defer c.sessionOpened(sess.Stderr(), sess.RawCommand() != "")()
	}
	if sess.User() == "admin" {
		s.adminSession(sess, user)
		return
	}
	args := sess.Command()
	if len(args) > 0 && args[0] == "bindings" {
		_ = sess.Exit(s.bindingsCommand(sess, user, args))
		return
	}
	if isRequestCommand(args) {
		_ = sess.Exit(s.requestCommand(sess, user, args))
		return
	}
	who, err := s.whoami(user, ext[extBindingExpires], ext[extBinding])
	if err != nil {
		s.logger.Error("greeting failed", "user", user.Login, "err", err)
		fmt.Fprintln(sess.Stderr(), "Rampart: cannot list your servers right now; try again shortly.")
		_ = sess.Exit(1)
		return
	}
	switch {
	case len(args) == 0:
		s.writeGreeting(sess, who)
		_ = sess.Exit(0)
	case args[0] == "whoami" && len(args) == 1:
		s.writeGreeting(sess, who)
		_ = sess.Exit(0)
	case args[0] == "whoami" && len(args) == 2 && args[1] == "--json":
		b, _ := json.Marshal(who)
		fmt.Fprintf(sess, "%s\n", b)
		_ = sess.Exit(0)
	default:
		fmt.Fprintf(sess.Stderr(), "Rampart: unknown command %q. Try `whoami`, `whoami --json`, `bindings`, `bindings revoke N`, `requests` or `request PROJECT --for 2h --reason ...`, or reach a server with ssh -J.\n", strings.Join(args, " "))
		_ = sess.Exit(2)
	}
}

// adminSession is the entry to the admin shell. Only members of the admin
// group get in; the shell's commands arrive with the admin shell work.
func (s *Server) adminSession(sess gliderssh.Session, user *raftstore.User) {
	if s.cfg.AdminGroup == "" || !contains(user.GroupsFromToken(), s.cfg.AdminGroup) {
		s.audit.Record(EventAdminShellRefuse, user.Login, map[string]string{"reason": "not in admin group"})
		fmt.Fprintf(sess.Stderr(), "Rampart: %s is not an administrator (not in group %q).\n", user.Login, s.cfg.AdminGroup)
		_ = sess.Exit(1)
		return
	}
	if s.cfg.Admin == nil {
		fmt.Fprintln(sess.Stderr(), "Rampart: the admin shell is not enabled on this node.")
		_ = sess.Exit(1)
		return
	}
	actor := adminshell.Actor{Login: user.Login, UserID: user.ID, Source: sess.RemoteAddr().String(), AdminGroup: s.cfg.AdminGroup}
	ctx, cancel := context.WithCancel(sess.Context())
	defer cancel()
	if line := sess.RawCommand(); line != "" {
		_ = sess.Exit(s.cfg.Admin.RunLine(ctx, actor, line, sess, sess, sess.Stderr()))
		return
	}
	pty, winCh, isPty := sess.Pty()
	if !isPty {
		fmt.Fprintln(sess.Stderr(), "Rampart: the interactive admin shell needs a terminal (ssh -t admin@bastion), or give a command: ssh admin@bastion servers ls")
		_ = sess.Exit(2)
		return
	}
	s.audit.Record(EventAdminShellOpen, user.Login, map[string]string{"remote": actor.Source})
	resize := make(chan adminshell.WindowSize, 1)
	go func() {
		defer close(resize)
		for w := range winCh {
			select {
			case resize <- adminshell.WindowSize{Width: w.Width, Height: w.Height}:
			case <-ctx.Done():
				return
			}
		}
	}()
	code := s.cfg.Admin.RunInteractiveResize(ctx, actor, sess, adminshell.WindowSize{Width: pty.Window.Width, Height: pty.Window.Height}, resize)
	s.audit.Record(EventAdminShellClose, user.Login, map[string]string{"remote": actor.Source})
	_ = sess.Exit(code)
}

// whoami gathers who the user is, the keys bound to them (currentKey is the
// connection's) and where they may go.
func (s *Server) whoami(u *raftstore.User, bindingExpires, currentKey string) (*Whoami, error) {
	w := &Whoami{Login: u.Login, Email: u.Email, UnixName: u.UnixName, UID: u.UID, Groups: u.Groups,
		Admin: s.cfg.AdminGroup != "" && contains(u.GroupsFromToken(), s.cfg.AdminGroup), BindingExpires: bindingExpires, Servers: []Destination{}}
	if w.Groups == nil {
		w.Groups = []string{}
	}
	bindings, err := s.bindingViews(u.ID, currentKey)
	if err != nil {
		return nil, err
	}
	w.Bindings = bindings
	if s.cfg.Jump == nil {
		return w, nil
	}
	dests, err := access.New(s.state(), s.cfg.Jump.Targets(), s.now).Destinations(u)
	if err != nil {
		return nil, err
	}
	for _, d := range dests {
		port := ""
		if p := d.Server.SSHPort; p != 0 && p != raftstore.DefaultSSHPort {
			port = fmt.Sprintf("-p %d ", p) // the target's port; -J's host keeps its own
		}
		var shared []string
		for _, l := range d.Logins {
			if l != u.UnixName {
				shared = append(shared, l)
			}
		}
		w.Servers = append(w.Servers, Destination{Name: d.Server.Name, Project: d.Project,
			Command: fmt.Sprintf("ssh -J %s %s%s@%s", s.cfg.JumpHost, port, u.UnixName, d.Server.Name), Labels: d.Server.Labels, Logins: shared})
	}
	return w, nil
}

func (s *Server) writeGreeting(out io.Writer, w *Whoami) {
	fmt.Fprintf(out, "Signed in to Rampart as %s", w.Login)
	if w.Email != "" && w.Email != w.Login {
		fmt.Fprintf(out, " <%s>", w.Email)
	}
	fmt.Fprintf(out, "\r\n  unix name:  %s (uid %d)\r\n", w.UnixName, w.UID)
	fmt.Fprintf(out, "  groups:     %s\r\n", strings.Join(w.Groups, ", "))
	if w.BindingExpires != "" {
		fmt.Fprintf(out, "  key bound until %s\r\n", w.BindingExpires)
	} else {
		fmt.Fprintf(out, "  no key bound (you signed in without an SSH key)\r\n")
		writeKeyHint(out)
	}
	s.writeBindings(out, w.Bindings)
	if len(w.Servers) == 0 {
		fmt.Fprintf(out, "\r\nNo servers are available to you yet.\r\n")
		if w.Admin {
			writeFirstServerHint(out, s.cfg.JumpHost)
		}
		return
	}
	fmt.Fprintf(out, "\r\nServers you may reach:\r\n")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, d := range w.Servers {
		also := ""
		if len(d.Logins) > 0 {
			also = "  (also: " + strings.Join(d.Logins, ", ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s%s\r\n", d.Name, d.Project, d.Command, also)
	}
	_ = tw.Flush()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
