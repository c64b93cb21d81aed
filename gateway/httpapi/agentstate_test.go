package httpapi

import (
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// applyAll is a one-node store (n1, the leader) holding cmds.
func applyAll(t *testing.T, cmds ...raftstore.Command) *raftstoretest.Store {
	t.Helper()
	s := raftstoretest.New(t)
	s.MustApply(t, cmds...)
	return s
}

func TestAgentState(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{SharedLogins: []string{"deploy"}}}, Now: now},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db", Settings: raftstore.ProjectSettings{SharedLogins: []string{"backup"}}}, Now: now},
		&raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "nginx", Commands: []raftstore.SudoCommand{{Path: "/usr/sbin/nginx", Args: []string{"-s", "reload"}}}}, Now: now},
		&raftstore.EntitlementUpsert{Entitlement: raftstore.Entitlement{Name: "admin", Commands: []raftstore.SudoCommand{{Path: "ALL"}}}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "eng", Sudo: []string{"nginx"}}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "web", Group: "Web Admins", Role: raftstore.GrantAdmin}, Now: now},
		&raftstore.GrantUpsert{Grant: raftstore.Grant{Project: "db", Group: "dba"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 22}, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "a", Login: "alice", UnixName: "alice", Groups: []string{"eng", "Web Admins"}}, EnsureGroups: true, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "b", Login: "bob", UnixName: "bob", Groups: []string{"dba"}}, EnsureGroups: true, Now: now},
		&raftstore.UserUpsert{User: raftstore.User{ID: "c", Login: "carol", UnixName: "carol", Groups: []string{"eng"}, Status: raftstore.UserDisabled}, EnsureGroups: true, Now: now},
	)
	st, err := agentState(nil, f.State(), "s1", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Users) != 2 || st.Users[0].Name != "alice" || st.Users[1].Name != "carol" {
		t.Fatalf("users = %+v; want alice and (disabled, to deprovision) carol, not bob", st.Users)
	}
	alice := st.Users[0]
	if len(alice.Groups) != 1 || alice.Groups[0] != "eng" {
		t.Fatalf("alice's unix groups = %v; want [eng] (\"Web Admins\" is no unix name)", alice.Groups)
	}
	if len(alice.Sudo) != 2 || alice.Sudo[0] != "admin" || alice.Sudo[1] != "nginx" {
		t.Fatalf("alice's sudo = %v; want admin (admin role) and nginx", alice.Sudo)
	}
	if st.Users[1].Status != "disabled" {
		t.Fatalf("carol = %+v", st.Users[1])
	}
	if len(st.Groups) != 1 || st.Groups[0].Name != "eng" || st.Groups[0].GID == 0 {
		t.Fatalf("groups = %+v", st.Groups)
	}
	if len(st.Entitlements) != 2 {
		t.Fatalf("entitlements = %+v", st.Entitlements)
	}
	if len(st.SharedLogins) != 1 || st.SharedLogins[0] != "deploy" {
		t.Fatalf("shared logins = %v; want web's [deploy]", st.SharedLogins)
	}
	if st.AllowPersonalKeys {
		t.Fatal("personal keys allowed by default")
	}
	// The project's personal-keys setting reaches the agent.
	f.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{AllowPersonalKeys: true}}, Now: now})
	if st, err = agentState(nil, f.State(), "s1", "admin"); err != nil || !st.AllowPersonalKeys {
		t.Fatalf("after allowing personal keys: %+v, %v", st, err)
	}
	if _, err := agentState(nil, f.State(), "gone", "admin"); err == nil {
		t.Fatal("state of an unknown server")
	}
}
