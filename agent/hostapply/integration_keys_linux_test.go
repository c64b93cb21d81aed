package hostapply

// Only certificates open a managed account: a key planted in its
// authorized_keys is refused, whatever UsePAM says, while an account the
// agent did not create keeps sshd's settings exactly.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// plantKey adds key to user's ~/.ssh/authorized_keys, as that user could.
func plantKey(t *testing.T, user string, key ssh.PublicKey) {
	t.Helper()
	dir := filepath.Join("/home", user, ".ssh")
	must(t, os.MkdirAll(dir, 0o700))
	f := filepath.Join(dir, "authorized_keys")
	must(t, os.WriteFile(f, ssh.MarshalAuthorizedKey(key), 0o600))
	run(t, "chown", "-R", user+":", dir)
}

// effective is sshd -T's settings (one line each) for the UsePAM setting
// and, when user is not "", for that user's connection.
func effective(t *testing.T, usePAM, user string) map[string]string {
	t.Helper()
	argv := []string{"/usr/sbin/sshd", "-T", "-o", "UsePAM=" + usePAM}
	if user != "" {
		argv = append(argv, "-C", "user="+user+",host=client.example,addr=192.0.2.7")
	}
	out := map[string]string{}
	for _, l := range strings.Split(run(t, argv...), "\n") {
		k, v, _ := strings.Cut(l, " ")
		out[k] = v
	}
	return out
}

func stepCertificatesOnly(t *testing.T, fx *nsFixture) {
	// carol is not the agent's (stepCollisions made her); '*' instead of
	// useradd's '!' lets her in under UsePAM no too.
	run(t, "usermod", "-p", "*", "carol")
	noProblems(t, fx.apply(t, fx.desired()))

	// What sshd itself says, for a managed and an unmanaged account.
	watched := []string{"authorizedkeysfile", "authorizedkeyscommand", "passwordauthentication", "kbdinteractiveauthentication",
		"authenticationmethods", "hostbasedauthentication", "x11forwarding", "usepam", "permitrootlogin"}
	for _, pam := range []string{"yes", "no"} {
		global, alice, carol := effective(t, pam, ""), effective(t, pam, "alice"), effective(t, pam, "carol")
		for k, want := range map[string]string{"authorizedkeysfile": "none", "authorizedkeyscommand": "none", "passwordauthentication": "no",
			"kbdinteractiveauthentication": "no", "authenticationmethods": "publickey"} {
			if alice[k] != want {
				t.Errorf("UsePAM %s: sshd -T -C user=alice shows %s %q, want %q", pam, k, alice[k], want)
			}
		}
		// Debian's Include is the first line of sshd_config: the agent's
		// Match block must not swallow the lines after it.
		for _, k := range []string{"x11forwarding", "usepam", "permitrootlogin"} {
			if alice[k] != global[k] {
				t.Errorf("UsePAM %s: alice's %s is %q, the global one %q", pam, k, alice[k], global[k])
			}
		}
		for _, k := range watched {
			if carol[k] != global[k] {
				t.Errorf("UsePAM %s: unmanaged carol's %s is %q, the global one %q", pam, k, carol[k], global[k])
			}
		}
	}

	// A key alice planted herself is refused; carol's still works.
	aliceKey, carolKey := newTestKey(t), newTestKey(t)
	plantKey(t, "alice", aliceKey.PublicKey())
	plantKey(t, "carol", carolKey.PublicKey())
	for _, usePAM := range []bool{true, false} {
		fx.startSSHD(t, usePAM)
		if out, err := fx.loginKey("alice", aliceKey); err == nil {
			t.Errorf("UsePAM %v: a key from alice's authorized_keys logged in: %q", usePAM, out)
		}
		if out, err := fx.login("alice"); err != nil || out != "alice\n" {
			t.Errorf("UsePAM %v: certificate login as alice: %q, %v", usePAM, out, err)
		}
		if out, err := fx.loginKey("carol", carolKey); err != nil || out != "carol\n" {
			t.Errorf("UsePAM %v: unmanaged carol's own key: %q, %v", usePAM, out, err)
		}
	}

	// The project allows personal keys: alice's key works, after a reload.
	d := fx.desired()
	d.AllowPersonalKeys = true
	rep := fx.apply(t, d)
	noProblems(t, rep)
	if !rep.Reloaded {
		t.Error("sshd was not reloaded when personal keys were allowed")
	}
	if got := effective(t, "yes", "alice")["authorizedkeysfile"]; got != effective(t, "yes", "")["authorizedkeysfile"] {
		t.Errorf("with personal keys allowed alice's authorizedkeysfile is %q", got)
	}
	waitFor(t, func() error {
		if out, err := fx.loginKey("alice", aliceKey); err != nil || out != "alice\n" {
			return fmt.Errorf("alice's own key with personal keys allowed: %q, %v", out, err)
		}
		return nil
	})
	// And back. sshd re-executes on the reload and refuses connections
	// meanwhile: the key's refusal counts only from an sshd that lets
	// alice's certificate in (and the next step needs it listening).
	noProblems(t, fx.apply(t, fx.desired()))
	waitFor(t, func() error {
		if out, err := fx.login("alice"); err != nil || out != "alice\n" {
			return fmt.Errorf("certificate login as alice: %q, %v", out, err)
		}
		if out, err := fx.loginKey("alice", aliceKey); err == nil {
			return fmt.Errorf("alice's own key still logs in: %q", out)
		}
		return nil
	})
	must(t, os.RemoveAll("/home/alice/.ssh"))
}

// mainFileStillApplies checks that the settings sshd_config (main) gives
// after the agent's block at its top are in effect for everyone: the
// block's Match must not swallow them.
func mainFileStillApplies(t *testing.T, main []byte) {
	t.Helper()
	checked := 0
	for _, l := range strings.Split(string(main), "\n") {
		k, v := splitDirective(l)
		k = strings.ToLower(k)
		if k == "match" {
			break
		}
		if k != "x11forwarding" && k != "printmotd" && k != "kbdinteractiveauthentication" {
			continue
		}
		checked++
		for _, user := range []string{"", "root", "bob"} {
			if got := effective(t, "yes", user)[k]; got != strings.ToLower(v) && !(user == "bob" && k == "kbdinteractiveauthentication") {
				t.Errorf("sshd_config sets %s %s, and sshd -T for %q shows %q", k, v, user, got)
			}
		}
	}
	if checked == 0 {
		t.Errorf("sshd_config sets none of the settings this test looks at:\n%s", main)
	}
}
