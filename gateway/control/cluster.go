package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// errNoMembers: the node gave the service no way to change membership.
var errNoMembers = &fault.Error{Status: http.StatusServiceUnavailable, Code: "no_members",
	Msg: "this node cannot change the cluster's membership"}

// RemoveNode takes a node out of raft and forgets it, key included. The
// API's node-only endpoints and the raft port check the nodes table, so its
// certificate no longer opens them, not even after a node of the same id
// joins again (with a key of its own). A node that is neither a raft member
// nor in the nodes table is a 404: removing it would change nothing, and
// success would tell the operator a typo had worked.
func (s *Service) RemoveNode(ctx context.Context, a Actor, id string, c Confirm) error {
	if s.members == nil {
		return errNoMembers
	}
	st, err := s.members.Status()
	if err != nil {
		return err
	}
	raftAddr, known := "", false
	for _, m := range st.Members {
		if m.ID == id {
			raftAddr, known = m.RaftAddr, true
		}
	}
	if !known {
		if _, n, err := s.state(ctx).NodeByID(nil, id); err == nil && n != nil {
			raftAddr, known = n.RaftAddr, true
		}
	}
	if !known {
		return notFound("node %q is not a member of this cluster", id)
	}
	what := fmt.Sprintf("remove node %s (%s) from the cluster", id, raftAddr)
	if id == st.NodeID {
		what += "; it is the node you are connected to"
	}
	if err := confirm(c, what); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.applyTimeout)
	err = s.members.RemoveServer(rctx, id)
	cancel()
	if err != nil {
		return err
	}
	// Forget its addresses and key too.
	if _, err := s.apply(ctx, &raftstore.NodeDelete{ID: id}); err != nil {
		return errors.Join(fmt.Errorf("node %s left raft, but its record was not removed: %w", id, err),
			s.audit(ctx, a, EventNodeRemove, map[string]string{"node": id}))
	}
	return s.audit(ctx, a, EventNodeRemove, map[string]string{"node": id, "raft_addr": raftAddr})
}
