package access

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Refusals. Each message is fit to show the person (the jump sends it as
// "Rampart: "+err); the audit log gets the same reason with the details.
var (
	ErrNotEnrolled    = errors.New("not an enrolled server")
	ErrForbiddenAddr  = targetaddr.ErrForbidden
	ErrNotInProject   = errors.New("you have no access to this server's project")
	ErrLoginDenied    = errors.New("login not permitted")
	ErrUserInactive   = errors.New("your account is disabled")
	ErrWrongPort      = errors.New("that port is not the server's SSH port")
	ErrBindingRevoked = errors.New("your key's sign-in was revoked; sign in again")
)

// State is what a decision reads of the replicated state
// (*raftstore.State implements it). ws may be nil; AgentView adds what it
// reads to the caller's, for blocking queries.
type State interface {
	UserByID(ws memdb.WatchSet, id string) (uint64, *raftstore.User, error)
	UserByUnixName(ws memdb.WatchSet, name string) (uint64, *raftstore.User, error)
	Users(ws memdb.WatchSet) (uint64, []*raftstore.User, error)
	UserProjects(ws memdb.WatchSet, user *raftstore.User) (uint64, []*raftstore.Grant, error)
	GrantsByProject(ws memdb.WatchSet, project string) (uint64, []*raftstore.Grant, error)
	ProjectByName(ws memdb.WatchSet, name string) (uint64, *raftstore.Project, error)
	ServerByAddress(ws memdb.WatchSet, name string) (uint64, *raftstore.Server, error)
	ServersByProject(ws memdb.WatchSet, project string) (uint64, []*raftstore.Server, error)
	GroupByName(ws memdb.WatchSet, name string) (uint64, *raftstore.Group, error)
	EntitlementByName(ws memdb.WatchSet, name string) (uint64, *raftstore.Entitlement, error)
	BindingsByUser(ws memdb.WatchSet, userID string) (uint64, []*raftstore.Binding, error)
	BindingRevoked(userID, fp string, createIndex uint64) bool
	AccessRequestsByUser(ws memdb.WatchSet, userID string) (uint64, []*raftstore.AccessRequest, error)
	AccessRequestsByProject(ws memdb.WatchSet, project string) (uint64, []*raftstore.AccessRequest, error)
}

// Evaluator answers access questions against one read of the state.
type Evaluator struct {
	st State
	// targets is the node's rule for addresses its jump may dial; nil
	// means this node dials none (it has no jump).
	targets *targetaddr.Rule
	now     func() time.Time
}

// New returns an evaluator over st. targets is the rule for addresses the
// node's jump dials (nil: none, as on a node without a jump); AgentView and
// Explain do not depend on it. now is the clock (nil: time.Now); it decides
// which device bindings are live.
func New(st State, targets *targetaddr.Rule, now func() time.Time) *Evaluator {
	if now == nil {
		now = time.Now
	}
	return &Evaluator{st: st, targets: targets, now: now}
}

// Access is what a user may do on a server's project: the project, the
// grants of the user's groups there, and the user's approved access
// requests whose window is open (requests.go). Logins are checked against
// it.
type Access struct {
	Project  *raftstore.Project
	Grants   []*raftstore.Grant
	Requests []*raftstore.AccessRequest
	e        *Evaluator
}

// projectGrants are the grants of project that u's groups hold, in the
// order of u's groups, each once. It is the membership rule, whether or not
// the person is active: the agent view keeps a disabled person's account
// (to lock it), the decision below refuses them.
func projectGrants(u *raftstore.User, byGroup map[string]*raftstore.Grant) []*raftstore.Grant {
	var out []*raftstore.Grant
	for _, g := range u.Groups {
		if gr, ok := byGroup[g]; ok && !slices.Contains(out, gr) {
			out = append(out, gr)
		}
	}
	return out
}

// decide is the one decision about a person and a project: active, a
// member through a granted group or holding an approved request whose
// window is open, and the project exists. grants are the project's grants
// that the person's groups hold, requests the person's open ones there.
func decide(u *raftstore.User, project string, p *raftstore.Project, grants []*raftstore.Grant, requests []*raftstore.AccessRequest) error {
	if u.Status != raftstore.UserActive {
		return ErrUserInactive
	}
	if (len(grants) == 0 && len(requests) == 0) || p == nil {
		return fmt.Errorf("%w (%s)", ErrNotInProject, project)
	}
	return nil
}

// ServerAccess checks that user is active and a member (through a group,
// or an approved request) of srv's project. It is Authorize once the
// server is found: a live session is checked again with it when policy
// changes. A person refused for want of a grant in a project that takes
// their requests gets a *NeedRequestError.
func (e *Evaluator) ServerAccess(user *raftstore.User, srv *raftstore.Server) (*Access, error) {
	acc, err := e.projectAccess(user, srv.Project)
	if errors.Is(err, ErrNotInProject) {
		_, p, perr := e.st.ProjectByName(nil, srv.Project)
		if perr != nil {
			return nil, perr
		}
		if nr := needRequest(user, srv.Name, p); nr != nil {
			return nil, nr
		}
	}
	return acc, err
}

// projectAccess is what user may do on project's servers, or why nothing.
func (e *Evaluator) projectAccess(user *raftstore.User, project string) (*Access, error) {
	if user.Status != raftstore.UserActive {
		return nil, ErrUserInactive
	}
	_, grants, err := e.st.UserProjects(nil, user)
	if err != nil {
		return nil, err
	}
	var mine []*raftstore.Grant
	for _, g := range grants {
		if g.Project == project {
			mine = append(mine, g)
		}
	}
	reqs, err := e.activeRequests(user, project)
	if err != nil {
		return nil, err
	}
	var p *raftstore.Project
	if len(mine) > 0 || len(reqs) > 0 {
		if _, p, err = e.st.ProjectByName(nil, project); err != nil {
			return nil, err
		}
	}
	if err := decide(user, project, p, mine, reqs); err != nil {
		return nil, err
	}
	return &Access{Project: p, Grants: mine, Requests: reqs, e: e}, nil
}

// refusal reports whether err is a decision (the person may not) rather
// than a failure to read the state.
func refusal(err error) bool {
	return errors.Is(err, ErrUserInactive) || errors.Is(err, ErrNotInProject) || errors.Is(err, ErrLoginDenied)
}

// Login checks a requested login on the project's servers (CheckLogin).
// A person whose only access is approved requests may use the logins
// those requests name, and no other.
func (a *Access) Login(user *raftstore.User, login string) error {
	if err := CheckLogin(a.e.st, a.Project, user, login); err != nil {
		return err
	}
	if len(a.Grants) == 0 && a.RequestFor(user, login) == nil {
		return fmt.Errorf("%w: your access request to project %s is for another login", ErrLoginDenied, a.Project.Name)
	}
	return nil
}

// CheckLogin checks a login user asks for on project's servers: the user's
// own unix name, or an account the project shares that is no person's.
// (The cluster refuses a shared login that is a person's unix name, and
// never gives a shared login to a person; state from before that rule could
// still hold one, and sharing a person's account would let every member log
// in as them.) st is read only for a shared login.
func CheckLogin(st State, project *raftstore.Project, user *raftstore.User, login string) error {
	if login == user.UnixName {
		return nil
	}
	if slices.Contains(project.Settings.SharedLogins, login) {
		_, owner, err := st.UserByUnixName(nil, login)
		if err != nil {
			return err
		}
		if owner == nil {
			return nil
		}
		return fmt.Errorf("%w: %q is shared by project %s but is also a person's account", ErrLoginDenied, login, project.Name)
	}
	return fmt.Errorf("%w: %q is not your account (%s) and project %s does not share it", ErrLoginDenied, login, user.UnixName, project.Name)
}

// Logins are the logins Login allows, the user's own first, then the
// project's shared ones in order.
func (a *Access) Logins(user *raftstore.User) ([]string, error) {
	var out []string
	if a.Login(user, user.UnixName) == nil {
		out = append(out, user.UnixName)
	}
	for _, l := range a.Project.Settings.SharedLogins {
		if l == user.UnixName {
			continue
		}
		if err := a.Login(user, l); err == nil {
			out = append(out, l)
		} else if !errors.Is(err, ErrLoginDenied) {
			return nil, err
		}
	}
	return out, nil
}
