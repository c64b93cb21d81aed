//go:build linux

package hostapply

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// stepNewPersonNoReload: a new person joins ManagedGroup and logs in by
// certificate from the sshd already running, which is not reloaded (a
// reload makes sshd re-execute and refuse connections meanwhile); a key
// they plant is refused. Then real sshd -T shows the agent's drop-in
// winning over a site's later Match Address block, and a drop-in that
// sorts before it is caught and takes certificate access away until it is
// gone.
func stepNewPersonNoReload(t *testing.T, fx *nsFixture) {
	d := fx.desired()
	d.Users = append(d.Users, User{Name: "dave", UID: 61004})
	rep := fx.apply(t, d)
	noProblems(t, rep)
	if rep.Reloaded {
		t.Error("sshd was reloaded for a new person")
	}
	if groups := strings.Fields(run(t, "id", "-nG", "dave")); !slices.Contains(groups, ManagedGroup) {
		t.Errorf("id -nG dave = %q", groups)
	}
	// At once: no waitFor, there is no reload to wait out.
	if out, err := fx.login("dave"); err != nil || out != "dave\n" {
		t.Errorf("certificate login as dave: %q, %v", out, err)
	}
	key := newTestKey(t)
	plantKey(t, "dave", key.PublicKey())
	if out, err := fx.loginKey("dave", key); err == nil {
		t.Errorf("a key from dave's authorized_keys logged in: %q", out)
	}

	site := "/etc/ssh/sshd_config.d/10-site.conf"
	must(t, os.WriteFile(site, []byte("Match Address 10.0.0.0/8\n\tAuthorizedKeysFile .ssh/authorized_keys\n"), 0o644))
	if got := run(t, "/usr/sbin/sshd", "-T", "-C", "user=dave,host=client.example,addr=10.1.2.3"); !strings.Contains(got, "\nauthorizedkeysfile none\n") {
		t.Errorf("with %s, sshd -T for dave from 10.1.2.3 shows:\n%s", site, got)
	}
	early := "/etc/ssh/sshd_config.d/0-site.conf"
	must(t, os.Rename(site, early))
	rep = fx.apply(t, d)
	if len(rep.ProblemsFor(KindSSHD, "/etc/ssh/sshd_config")) != 1 || !errors.Is(rep.ProblemsFor(KindSSHD, "/etc/ssh/sshd_config")[0], ErrRejected) {
		t.Errorf("a drop-in before the agent's that lets keys in from 10/8 was not caught: %v", rep.Problems)
	}
	if !slices.Equal(rep.Withheld, []string{"alice", "bob", "dave"}) {
		t.Errorf("withheld = %q", rep.Withheld)
	}
	for _, u := range []string{"alice", "dave"} {
		if _, err := os.Stat("/etc/ssh/rampart_principals/" + u); err == nil {
			t.Errorf("%s kept a principals file while keys can get in", u)
		}
	}
	must(t, os.Remove(early))
	noProblems(t, fx.apply(t, d))
	if _, err := os.Stat("/etc/ssh/rampart_principals/dave"); err != nil {
		t.Errorf("dave's principals file was not given back: %v", err)
	}
	// dave goes, as if deleted after his grace period.
	run(t, "userdel", "-r", "dave")
	noProblems(t, fx.apply(t, fx.desired()))
}
