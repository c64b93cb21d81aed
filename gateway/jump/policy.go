package jump

import (
	"errors"
	"net"

	gwaccess "github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Refusals. Each message is fit to show the person; the audit log gets the
// same reason with the details. Who may reach what is decided in
// gateway/access; its refusals are these.
var (
	ErrNotEnrolled    = gwaccess.ErrNotEnrolled
	ErrForbiddenAddr  = gwaccess.ErrForbiddenAddr
	ErrNotInProject   = gwaccess.ErrNotInProject
	ErrLoginDenied    = gwaccess.ErrLoginDenied
	ErrUserInactive   = gwaccess.ErrUserInactive
	ErrWrongPort      = gwaccess.ErrWrongPort
	ErrBindingRevoked = gwaccess.ErrBindingRevoked
	ErrTargetIdentity = errors.New("the target's host key does not match its enrollment")
	ErrNoHostCert     = errors.New("the target presented no host certificate, and its project requires one")
)

// Targets is the rule for the addresses this node's jump dials: the
// greeting lists only the servers gateway/access lets through with it.
func (p *Proxy) Targets() *targetaddr.Rule { return &p.cfg.Targets }

// access is what a person may do on the server a connection reached, as
// gateway/access decided it.
type access struct {
	user    *raftstore.User
	srv     *raftstore.Server
	ip      net.IP
	project *raftstore.Project
	grants  []*raftstore.Grant
	// st is the state the decision was read from.
	st *raftstore.State
	// acc is gateway/access's decision, which checks logins.
	acc *gwaccess.Access
}

// authorize decides a direct-tcpip request (gateway/access Authorize).
// actor names the person for the audit log, refused or not: their login,
// or the connection's user id when there is no such person.
func (p *Proxy) authorize(st *raftstore.State, id Identity, host string, port uint32) (a *access, actor string, err error) {
	d, user, err := gwaccess.New(st, &p.cfg.Targets, p.clock.Now).Authorize(gwaccess.Request{
		UserID: id.UserID, Binding: id.Binding, BindingIndex: id.BindingIndex, Host: host, Port: port})
	actor = id.UserID
	if user != nil {
		actor = user.Login
	}
	if err != nil {
		return nil, actor, err
	}
	return &access{user: d.User, srv: d.Server, ip: d.IP, project: d.Project, grants: d.Grants, st: st, acc: d.Access}, actor, nil
}

// authorizeServer checks again, for a live session, that user may still
// reach srv's project.
func authorizeServer(st *raftstore.State, user *raftstore.User, srv *raftstore.Server) (*access, error) {
	a, err := gwaccess.New(st, nil, nil).ServerAccess(user, srv)
	if err != nil {
		return nil, err
	}
	return &access{user: user, srv: srv, project: a.Project, grants: a.Grants, st: st, acc: a}, nil
}

// bindingRevoked reports whether the device binding a connection signed in
// with is gone (raftstore.State.BindingRevoked holds the rule).
func bindingRevoked(st *raftstore.State, id Identity) bool {
	return st.BindingRevoked(id.UserID, id.Binding, id.BindingIndex)
}

// loginAllowed: the user's own unix name, or an account the project shares
// that is no person's, or under approved requests alone the logins they
// name (gateway/access Access.Login).
func (a *access) loginAllowed(user *raftstore.User, login string) error {
	if a.acc == nil { // built by hand: a group grant's rules
		return gwaccess.CheckLogin(a.st, a.project, user, login)
	}
	return a.acc.Login(user, login)
}

// requestFor is the access request login runs under, or nil.
func (a *access) requestFor(user *raftstore.User, login string) *raftstore.AccessRequest {
	if a.acc == nil {
		return nil
	}
	return a.acc.RequestFor(user, login)
}
