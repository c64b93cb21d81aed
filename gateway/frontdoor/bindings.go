package frontdoor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	gliderssh "github.com/gliderlabs/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/raftstore"
)

// BindingView is one of the person's live bindings as the greeting, `whoami
// --json` and `bindings` show it. A key the person does not recognise is
// someone else's, bound when the person approved a sign-in code that was
// not theirs: they revoke it with `bindings revoke INDEX`.
type BindingView = api.BindingView

// bindingViews lists the user's live bindings; current is the fingerprint
// of the connection's key ("" when it signed in without one).
func (s *Server) bindingViews(userID, current string) ([]BindingView, error) {
	live, err := s.login.LiveBindings(userID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]BindingView, len(live))
	for i, b := range live {
		out[i] = BindingView{Index: i + 1, Fingerprint: b.Fingerprint, Source: login.SourceHost(b.SourceAddr),
			BoundAt: b.CreatedAt.UTC().Format(time.RFC3339), Age: login.Age(now, b.CreatedAt),
			Expires: b.ExpiresAt.UTC().Format(time.RFC3339), Current: b.Fingerprint != "" && b.Fingerprint == current}
	}
	return out, nil
}

// writeBindings prints the bindings as the greeting and `bindings` show them.
func (s *Server) writeBindings(out io.Writer, bs []BindingView) {
	if len(bs) == 0 {
		fmt.Fprintf(out, "\r\nNo keys are bound to you.\r\n")
		return
	}
	fmt.Fprintf(out, "\r\nKeys bound to you (a key you do not recognise: %s):\r\n", s.selfCommand("bindings revoke N"))
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	for _, b := range bs {
		mark := ""
		if b.Current {
			mark = "(this connection)"
		}
		fmt.Fprintf(tw, "  %d\t%s\tfrom %s\tbound %s ago\t%s\r\n", b.Index, b.Fingerprint, b.Source, b.Age, mark)
	}
	_ = tw.Flush()
}

// selfCommand is the ssh command line that runs cmd on this bastion.
func (s *Server) selfCommand(cmd string) string {
	return SSHCommand(s.cfg.JumpHost) + " " + cmd
}

// SSHCommand is how a person reaches the bastion whose -J address is
// jumpHost for a command: "ssh bastion", or "ssh -p 2222 bastion".
func SSHCommand(jumpHost string) string {
	host, port, err := net.SplitHostPort(jumpHost)
	if err != nil || port == "22" {
		return "ssh " + strings.TrimSuffix(jumpHost, ":22")
	}
	return "ssh -p " + port + " " + host
}

// bindingsCommand runs `bindings [--json]` and `bindings revoke
// INDEX|FINGERPRINT` for the person signed in, on their own bindings only,
// and returns the exit status.
func (s *Server) bindingsCommand(sess gliderssh.Session, user *raftstore.User, args []string) int {
	current := Extensions(sess.Context())[extBinding]
	views, err := s.bindingViews(user.ID, current)
	if err != nil {
		s.logger.Error("listing bindings failed", "user", user.Login, "err", err)
		fmt.Fprintln(sess.Stderr(), "Rampart: cannot list your keys right now; try again shortly.")
		return 1
	}
	switch {
	case len(args) == 1:
		s.writeBindings(sess, views)
		return 0
	case len(args) == 2 && args[1] == "--json":
		b, _ := json.Marshal(views)
		fmt.Fprintf(sess, "%s\n", b)
		return 0
	case len(args) == 3 && args[1] == "revoke":
		return s.revokeOwn(sess, user, views, args[2])
	}
	fmt.Fprintln(sess.Stderr(), "Rampart: usage: bindings [--json] | bindings revoke INDEX|FINGERPRINT")
	return 2
}

// revokeOwn revokes the person's binding named by which: an index of the
// listing or a fingerprint. Only the person's live bindings are looked at,
// so a fingerprint of someone else's key answers as one that is not bound.
func (s *Server) revokeOwn(sess gliderssh.Session, user *raftstore.User, views []BindingView, which string) int {
	var target *BindingView
	for i := range views {
		v := &views[i]
		if strconv.Itoa(v.Index) == which || v.Fingerprint == which || strings.TrimPrefix(v.Fingerprint, "SHA256:") == which {
			target = v
			break
		}
	}
	if target == nil {
		fmt.Fprintf(sess.Stderr(), "Rampart: none of your keys is %q; %s lists them.\n", which, s.selfCommand("bindings"))
		return 1
	}
	ctx, cancel := context.WithTimeout(sess.Context(), 30*time.Second)
	defer cancel()
	found, err := s.login.Unbind(ctx, user, target.Fingerprint, sess.RemoteAddr().String())
	if err != nil {
		s.logger.Error("revoking a binding failed", "user", user.Login, "key", target.Fingerprint, "err", err)
		fmt.Fprintln(sess.Stderr(), "Rampart: cannot revoke the key right now; try again shortly.")
		return 1
	}
	if !found {
		fmt.Fprintf(sess.Stderr(), "Rampart: the key %s is no longer bound to you.\n", target.Fingerprint)
		return 1
	}
	fmt.Fprintf(sess, "Revoked %s (bound from %s %s ago). That key signs in through the browser again.\r\n", target.Fingerprint, target.Source, target.Age)
	if target.Current {
		fmt.Fprintf(sess, "It is the key of this connection, which closes in a moment.\r\n")
	}
	return 0
}
