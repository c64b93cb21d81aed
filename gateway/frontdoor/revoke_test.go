package frontdoor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/adminshell"
	"github.com/rampart-ssh/rampart/raftstore"
)

// watch runs the door's binding watcher until the test ends.
func (d *door) watch(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.srv.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// closedWithin reports whether c's connection ends within d.
func closedWithin(c *gossh.Client, d time.Duration) bool {
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// A connection kept open after its key's binding is revoked opens no more
// sessions, and the watcher closes it, ending its live admin shell;
// connections that signed in with another key or without one are not
// touched.
func TestRevokedBindingEndsConnection(t *testing.T) {
	a := startAdminDoor(t)
	keyless, err := (&client{onPrompt: approveAs("alice", "alice-pw")}).dial(t, a.addr)
	if err != nil {
		t.Fatalf("sign in without a key: %v", err)
	}
	defer keyless.Close()
	if n := a.srv.BoundConnections(); n != 2 {
		t.Fatalf("%d bound connections tracked, want alice's and bob's", n)
	}
	shell := startPty(t, a.alice, "")
	shell.expect(adminshell.Prompt)
	shellEnded := make(chan error, 1)
	go func() { shellEnded <- shell.sess.Wait() }()

	_, bs, err := a.store.State().Bindings(nil)
	if err != nil {
		t.Fatal(err)
	}
	var aliceKey string
	for _, b := range bs {
		if b.Fingerprint != a.bobKey {
			aliceKey = b.Fingerprint
		}
	}
	a.apply(t, &raftstore.BindingDelete{Fingerprint: aliceKey})

	// Without the watcher, the rule alone: no new session.
	_, err = a.alice.NewSession()
	var open *gossh.OpenChannelError
	if err == nil {
		t.Fatal("a session opened on a connection whose binding was revoked")
	}
	if !errors.As(err, &open) || open.Reason != gossh.Prohibited || !strings.Contains(open.Message, "your key's sign-in was revoked; sign in again") {
		t.Fatalf("refusal: %v; want prohibited with the revocation message", err)
	}

	// The watcher closes the connection, and the admin shell ends.
	a.watch(t)
	if !closedWithin(a.alice, 10*time.Second) {
		t.Fatal("the connection that signed in with the revoked binding is still open")
	}
	select {
	case <-shellEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the admin shell outlived its connection")
	}
	if !a.audit.has("login.revoke alice binding revoked") {
		t.Fatalf("the closure was not audited: %v", a.audit.events)
	}
	waitCond(t, 10*time.Second, "the closed connection leaves the tracked ones", func() bool { return a.srv.BoundConnections() == 1 })

	// Bob's key and alice's keyless sign-in had nothing to lose.
	if sess, err := a.bob.NewSession(); err != nil {
		t.Fatalf("bob's connection opens no session: %v", err)
	} else {
		sess.Close()
	}
	if w := whoamiOf(t, keyless); w.Login != "alice" {
		t.Fatalf("keyless connection: %+v", w)
	}
}
