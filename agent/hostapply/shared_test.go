package hostapply

import (
	"context"
	"errors"
	"testing"
)

// A shared account that exists on the host gets a principals file naming the
// login (kept across passes, a hand-made one no longer removed); a missing,
// system or managed account gets none, and the agent never creates one.
func TestSharedAccountPrincipals(t *testing.T) {
	f := newFakeHost(t)
	f.addGroup("deploy", 1500)
	f.addUser(&fakeUser{name: "deploy", uid: 1500, gid: 1500, home: "/home/deploy", shell: "/bin/sh", pw: "*"})
	th := newTestHost(t, f, nil)
	d := baseDesired()
	d.SharedAccounts = []string{"deploy", "www", "daemon", "alice", "root", "Bad:name"}
	for pass := 1; pass <= 2; pass++ {
		rep, err := th.Apply(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := f.readFile(t, "/etc/ssh/rampart_principals/deploy"); got != "deploy\n" {
			t.Fatalf("pass %d: principals of deploy = %q, want %q", pass, got, "deploy\n")
		}
		if got, _ := f.readFile(t, "/etc/ssh/rampart_principals/alice"); got != "alice\n" {
			t.Fatalf("pass %d: principals of alice (a person) = %q", pass, got)
		}
		for _, name := range []string{"www", "daemon", "root"} {
			if _, ok := f.readFile(t, "/etc/ssh/rampart_principals/"+name); ok {
				t.Errorf("pass %d: %s got a principals file", pass, name)
			}
		}
		for name, want := range map[string]error{"www": ErrInvalid, "daemon": ErrInvalid, "alice": ErrConflict, "root": ErrInvalid} {
			ps := rep.ProblemsFor(KindPrincipals, name)
			if len(ps) != 1 || !errors.Is(ps[0].Err, want) {
				t.Errorf("pass %d: problems for shared login %s = %v, want one %v", pass, name, ps, want)
			}
		}
		if f.user("www") != nil {
			t.Fatal("the agent created the missing shared account www")
		}
	}
	// No longer shared: the file goes.
	d.SharedAccounts = nil
	if _, err := th.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.readFile(t, "/etc/ssh/rampart_principals/deploy"); ok {
		t.Fatal("deploy's principals file stayed after the project stopped sharing it")
	}
}
