package hostapply

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/api"
)

// The cluster never gives out a unix name this applier refuses: every name
// gateway/login assigns at a first sign-in (BaseUnixName, then
// ResolveCollision's suffixes when the name is taken) is created here without
// a problem, over the reserved list and awkward IdP logins. (The cluster
// once gave a person whose login was qemu the unix name qemu, which the agent
// refused; and "_svc" or the suffix of "systemd" were given out the same
// way.) The IdP groups the cluster turns into unix groups pass the same rule
// (api.ValidUnixName, which gateway/httpapi's unixGroupName applies).
func TestClusterAssignedNamesAreCreated(t *testing.T) {
	logins := append(api.ReservedUnixNames(),
		"alice", "Alice", "ALICE@EXAMPLE.COM", "jane.doe@example.com", "J.Doe", "a.b.c",
		"qemu", "QEMU@corp.example", "root", "root@example.com", "daemon", "Daemon", "libvirt", "dbus",
		"syslog", "vagrant", "rampart-managed", "rampart.managed", "ssl.cert",
		"_apt", "_svc", "_", "systemd", "systemd-network", "systemd.network", "Systemd-Journal",
		"1alice", "-alice", "9", "a-", "a_", "x@y@z", "@example.com", "",
		strings.Repeat("a", 32), strings.Repeat("a", 33), strings.Repeat("b", 31)+".c",
		strings.Repeat("systemd", 5), "zoë", "alice smith", "a:b", "a\nroot",
	)
	var assigned []string
	for _, l := range logins {
		base, err := api.BaseUnixName(l)
		if err != nil {
			continue // refused at sign-in, with a message to the person
		}
		// First to sign in, and later ones while 1, 2 or 3 earlier
		// candidates are taken.
		for taken := range 4 {
			seen := 0
			name, err := api.ResolveCollision(base, func(string) (bool, error) {
				seen++
				return seen <= taken, nil
			})
			if err != nil {
				continue // no free name: refused, not given out
			}
			assigned = append(assigned, name)
		}
	}
	slices.Sort(assigned)
	assigned = slices.Compact(assigned)
	for _, want := range []string{"alice", "alice-2", "jane_doe", "a_b_c", strings.Repeat("a", 30) + "-2", "systemd"} {
		if !slices.Contains(assigned, want) {
			t.Fatalf("the cluster does not assign %q; assigned %q", want, assigned)
		}
	}
	for _, never := range []string{"qemu", "root", "daemon", "_svc", "systemd-2", "rampart-managed"} {
		if slices.Contains(assigned, never) {
			t.Errorf("the cluster assigns %q", never)
		}
	}

	d := Desired{}
	for i, n := range assigned {
		d.Users = append(d.Users, User{Name: n, UID: uint32(62000 + i)})
	}
	// IdP groups go to a host of their own: a group may share a person's
	// name, which is a conflict on one host, not a refusal of the name.
	var groups Desired
	for i, g := range logins {
		if api.ValidUnixName(g) == nil {
			groups.Groups = append(groups.Groups, Group{Name: g, GID: uint32(64000 + i)})
		}
	}
	if len(groups.Groups) == 0 {
		t.Fatal("no IdP group becomes a unix group")
	}
	for _, want := range []Desired{d, groups} {
		th := newTestHost(t, newFakeHost(t), nil)
		rep, err := th.Apply(t.Context(), want)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rep.Problems {
			t.Errorf("the agent refuses what the cluster assigns: %v", p)
		}
		for _, u := range want.Users {
			if th.f.user(u.Name) == nil {
				t.Errorf("user %q was not created", u.Name)
			}
		}
		for _, g := range want.Groups {
			if th.f.group(g.Name) == nil {
				t.Errorf("group %q was not created", g.Name)
			}
		}
	}
	if t.Failed() {
		t.Logf("assigned: %s", fmt.Sprint(assigned))
	}
}
