package jump

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/raftstore"
)

// DefaultAgentWait bounds how long a jump waits for the target's agent to
// create the person's account.
const DefaultAgentWait = 15 * time.Second

// ErrAgentBehind: the target's agent has not applied the person's account
// within the wait (agentBehindError says which server and how long).
var ErrAgentBehind = errors.New("the server's agent has not applied your account")

type agentBehindError struct {
	server string
	wait   time.Duration
}

func (e *agentBehindError) Error() string {
	return fmt.Sprintf("%s's agent has not applied your account after %s; ask an administrator to check rampart-agent on %s", e.server, e.wait, e.server)
}

func (e *agentBehindError) Is(target error) bool { return target == ErrAgentBehind }

// accountIndex is the raft index from which srv's desired state has held
// user's account as it is now: the latest of the account's own change
// (created, renamed, re-enabled) and the moment the person became a member
// of srv's project (the earliest of their granted groups, each counted from
// when both the person joined it and the grant existed). Changes that do
// not touch srv's state (another group joined, an email changed) do not
// move it, so the jump never waits for an agent that has nothing to do.
// 0 means the person has no account on srv.
func accountIndex(ws memdb.WatchSet, st *raftstore.State, user *raftstore.User, srv *raftstore.Server) (uint64, error) {
	_, grants, err := st.GrantsByProject(ws, srv.Project)
	if err != nil {
		return 0, err
	}
	var member uint64
	for _, g := range grants {
		if !slices.Contains(user.Groups, g.Group) {
			continue
		}
		since := max(g.CreateIndex, user.GroupsSince[g.Group])
		if member == 0 || since < member {
			member = since
		}
	}
	if member == 0 {
		return 0, nil
	}
	return max(member, user.AccountIndex), nil
}

// awaitAgent returns once srv's agent has applied a state that holds the
// person's account (login is the person's own), telling them once, with
// notify, that it waits. A server without an agent (registered by hand), or
// whose agent never reported how far it got (older than these reports), is
// not waited for. A wait of less than zero is none.
func (c *conn) awaitAgent(ctx context.Context, login string, notify func(string)) error {
	wait := c.p.cfg.AgentWait
	if wait < 0 || login != c.user.UnixName || c.srv.EnrollMethod == raftstore.EnrollManual {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	told := false
	for {
		ws := memdb.NewWatchSet()
		st := c.p.store.State()
		need, err := accountIndex(ws, st, c.user, c.srv)
		if err != nil {
			return err
		}
		if need == 0 {
			// No group grant: an approved request for the person's own
			// login makes the account from its approval on.
			if need, err = requestAccountIndex(ws, st, c.user, c.srv, c.s.clock.Now()); err != nil {
				return err
			}
		}
		_, applied, err := st.AgentAppliedOf(ws, c.srv.ID)
		if err != nil {
			return err
		}
		if need == 0 || applied == nil || applied.Index >= need {
			if told {
				c.s.logger.Info("agent caught up", "user", c.user.Login, "server", c.srv.Name, "index", need, "waited", c.s.clock.Now().Sub(c.s.started).Round(time.Millisecond))
			}
			return nil
		}
		if !told {
			told = true
			c.s.logger.Info("waiting for the agent", "user", c.user.Login, "server", c.srv.Name, "index", need, "applied", applied.Index)
			notify(fmt.Sprintf("waiting for %s to set up your account...", c.srv.Name))
		}
		if err := ws.WatchCtx(ctx); err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				c.s.logger.Warn("agent did not catch up", "user", c.user.Login, "server", c.srv.Name, "index", need, "applied", applied.Index, "wait", wait)
				return &agentBehindError{server: c.srv.Name, wait: wait}
			}
			return err
		}
	}
}
