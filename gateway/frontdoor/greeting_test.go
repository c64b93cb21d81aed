package frontdoor

import (
	"context"
	"log/slog"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// The greeting lists only the servers the jump would dial: the check is
// gateway/access's, with the jump proxy's own rule (a real proxy here, with
// this node's addresses).
func TestGreetingListsOnlyReachableServers(t *testing.T) {
	idp := startIdP(t, nil)
	own := "127.0.0.9"
	rule := targetaddr.Rule{AllowLoopback: true, Listeners: targetaddr.ParseListeners(own + ":2222")}
	proxy := jump.New(jump.Config{Targets: rule}, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	d := startDoor(t, doorOpts{issuer: idp.issuer, modConf: func(c *Config) { c.Jump = proxy }})
	now := time.Now().UTC()
	for _, cmd := range []raftstore.Command{
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng"}, Now: now},
	} {
		if _, err := d.store.Apply(context.Background(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	servers := []struct {
		name, addr string
		port       int
		listed     bool
		command    string // the greeting's command for bob, when listed
	}{
		{"web-1", "10.0.0.11", 22, true, "ssh -J bastion.test:2222 bob@web-1"},
		{"web-2222", "10.0.0.12", 2222, true, "ssh -J bastion.test:2222 -p 2222 bob@web-2222"},
		{"web-local", "127.0.0.20", 22, true, "ssh -J bastion.test:2222 bob@web-local"}, // loopback but not this node: the jump dials it
		{"metadata", "169.254.169.254", 22, false, ""},
		{"bastion-itself", own, 22, false, ""},
		{"link-local", "fe80::1", 22, false, ""},
		{"by-name", "web.example.com", 22, false, ""},
	}
	for i, s := range servers {
		srv := raftstore.Server{ID: "srv-" + s.name, Project: "web", Name: s.name, Addr: s.addr, SSHPort: s.port,
			HostKeys: []string{string(gossh.MarshalAuthorizedKey(newKey(t).PublicKey()))}}
		if _, err := d.store.Apply(context.Background(), &raftstore.ServerUpsert{Server: srv, Now: now}); err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
	}
	conn, err := (&client{key: newKey(t), onPrompt: approveAs("bob", "bob-pw")}).dial(t, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	listed := map[string]bool{}
	commands := map[string]string{}
	for _, dst := range whoamiOf(t, conn).Servers {
		listed[dst.Name] = true
		commands[dst.Name] = dst.Command
	}
	for _, s := range servers {
		if listed[s.name] != s.listed {
			t.Errorf("%s at %s: listed %v, want %v", s.name, s.addr, listed[s.name], s.listed)
		}
		if commands[s.name] != s.command {
			t.Errorf("%s: command %q, want %q (it must reach the server's own port)", s.name, commands[s.name], s.command)
		}
		_, _, err := access.New(d.store.State(), proxy.Targets(), nil).Resolve(s.name, uint32(s.port))
		if got := err == nil; got != s.listed {
			t.Errorf("%s at %s: the jump would dial it: %v, the greeting says %v", s.name, s.addr, got, s.listed)
		}
	}
}
