package control

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// servers.

func server(st *raftstore.State, id string) (*raftstore.Server, error) {
	_, srv, err := st.ServerByID(nil, id)
	if err != nil {
		return nil, err
	}
	if srv == nil {
		return nil, notFound("server %q: not found", id)
	}
	return srv, nil
}

// RegisterServer registers a server by hand, or edits one (by srv.ID). On a
// server that exists, an empty address or a zero port keeps the current
// one; an enrolled server keeps what its enrollment recorded, and its
// address cannot be changed here (raftstore.ServerUpsert). The address must
// pass the target rule, as the jump would check it.
func (s *Service) RegisterServer(ctx context.Context, a Actor, srv raftstore.Server) (*raftstore.Server, error) {
	_, cur, err := s.state(ctx).ServerByID(nil, srv.ID)
	if err != nil {
		return nil, err
	}
	if cur != nil && srv.Addr == "" {
		srv.Addr = cur.Addr
	}
	if cur != nil && srv.SSHPort == 0 {
		srv.SSHPort = cur.SSHPort
	}
	if srv.SSHPort == 0 {
		srv.SSHPort = raftstore.DefaultSSHPort
	}
	if err := s.targets.CheckHost(srv.Addr, srv.SSHPort); err != nil {
		return nil, invalid("cannot register server %s at %s port %d: %v", srv.ID, srv.Addr, srv.SSHPort, err)
	}
	srv.EnrollMethod = raftstore.EnrollManual
	var stored raftstore.Server
	if err := s.applyDecode(ctx, &raftstore.ServerUpsert{Server: srv, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, EventServerRegister, map[string]string{"server": stored.Name, "server_id": stored.ID, "project": stored.Project,
		"addr": stored.Addr})
}

// DeleteServer deletes a server: it can no longer be reached through the
// cluster.
func (s *Service) DeleteServer(ctx context.Context, a Actor, id string, c Confirm) (*raftstore.Server, error) {
	srv, err := server(s.state(ctx), id)
	if err != nil {
		return nil, err
	}
	if err := confirm(c, "delete server "+srv.Name+" ("+srv.ID+") from project "+srv.Project); err != nil {
		return nil, err
	}
	if _, err := s.apply(ctx, &raftstore.ServerDelete{ID: srv.ID}); err != nil {
		return nil, err
	}
	return srv, s.audit(ctx, a, EventServerDelete, map[string]string{"server": srv.Name, "server_id": srv.ID, "project": srv.Project})
}

// LabelEdit sets a label (Key=Value) or removes one (Remove).
type LabelEdit struct {
	Key, Value string
	Remove     bool
}

// LabelServer changes a server's labels, edits applied in order.
func (s *Service) LabelServer(ctx context.Context, a Actor, id string, edits []LabelEdit) (*raftstore.Server, error) {
	if len(edits) == 0 {
		return nil, invalid("no label to set or remove")
	}
	for _, e := range edits {
		if e.Key == "" {
			return nil, invalid("a label key is empty")
		}
	}
	srv, err := server(s.state(ctx), id)
	if err != nil {
		return nil, err
	}
	next := *srv
	next.Labels = maps.Clone(srv.Labels)
	if next.Labels == nil {
		next.Labels = map[string]string{}
	}
	for _, e := range edits {
		if e.Remove {
			delete(next.Labels, e.Key)
		} else {
			next.Labels[e.Key] = e.Value
		}
	}
	var stored raftstore.Server
	if err := s.applyDecode(ctx, &raftstore.ServerUpsert{Server: next, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, EventServerLabel, map[string]string{"server": srv.Name, "server_id": srv.ID, "labels": LabelString(next.Labels)})
}

// LabelString renders labels (or any k=v map) as every surface prints them:
// k=v,k=v in key order.
func LabelString(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// fmtTime renders a time as the audit log shows it: RFC 3339 in UTC, "-" for
// none.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
