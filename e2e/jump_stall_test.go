package e2e

// A person's client that stops reading must not hold up anyone else's
// revocation: ending a session first tells the person why (which needs
// window from their client), and the node's watcher ends every revoked
// session. An x/crypto client through the node stops reading its session's
// output, an administrator kills that session and then another of alice's;
// the second must end as usual, and the stalled one too.

import (
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// stalledWriter takes its first write, then blocks every write until
// released: the client stops reading, and the node's window to it runs out.
type stalledWriter struct {
	wrote   atomic.Bool
	release chan struct{}
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	w.wrote.Store(true)
	<-w.release
	return len(p), nil
}

// activeSessionIDs lists alice's active sessions on web-1, oldest first.
func (e *policyEnv) activeSessionIDs(t *testing.T) []string {
	t.Helper()
	var sessions []struct{ ID string }
	r := e.admin(t, "sessions", "ls", "--active", "--user", "alice", "--server", "web-1", "--json")
	fatalIf(t, json.Unmarshal([]byte(r.stdout), &sessions), "sessions ls --json: "+r.stdout)
	ids := make([]string, len(sessions))
	for i, s := range sessions {
		ids[i] = s.ID
	}
	return ids
}

func testStalledClient(t *testing.T, e *policyEnv) {
	e.setProject(t, api.ProjectSettings{})
	before := len(e.activeSessionIDs(t))

	// The stalled session: 8 MB of output into a client that reads none.
	pem, err := os.ReadFile(e.key)
	fatalIf(t, err)
	signer, err := gossh.ParsePrivateKey(pem)
	fatalIf(t, err)
	outer, err := gossh.Dial("tcp", e.node.SSHAddr(), &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: waitLong})
	fatalIf(t, err, "outer connection")
	defer outer.Close()
	ch, err := outer.Dial("tcp", "web-1:22")
	fatalIf(t, err, "direct-tcpip web-1:22")
	sc, chans, reqs, err := gossh.NewClientConn(ch, "web-1:22", &gossh.ClientConfig{User: "alice", HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: waitLong})
	fatalIf(t, err, "inner connection")
	inner := gossh.NewClient(sc, chans, reqs)
	defer inner.Close()
	sess, err := inner.NewSession()
	fatalIf(t, err)
	stall := &stalledWriter{release: make(chan struct{})}
	defer close(stall.release)
	sess.Stdout = stall
	fatalIf(t, sess.Start("head -c 8000000 /dev/zero; sleep 300"), "start the stalled session")
	fatalIf(t, waitFor(waitLong, func() error {
		if !stall.wrote.Load() {
			return fmt.Errorf("no output reached the client yet")
		}
		return nil
	}))
	// The node sends until the client's 2 MiB window is used up, within
	// milliseconds on loopback; give it ample time.
	time.Sleep(time.Second)
	ids := e.activeSessionIDs(t)
	if len(ids) != before+1 {
		t.Fatalf("active sessions of alice on web-1: %v, want %d", ids, before+1)
	}
	stalled := ids[len(ids)-1]

	other := startRunningSSH(t, e.jumpArgv(e.config, "alice", nil, "alice@web-1", "echo started; sleep 300"))
	ids = e.activeSessionIDs(t)
	second := ids[len(ids)-1]

	e.admin(t, "sessions", "kill", stalled, "--yes")
	killed := time.Now()
	e.admin(t, "sessions", "kill", second, "--yes")
	other.waitEnded(t, "sessions kill of the second session, after the stalled one's", killed)

	// And the stalled session itself ends, though its client took no
	// message: the node closes its connection to the target and the one
	// carried on the person's channel (the person's own connection may
	// carry others, and stays).
	done := make(chan error, 1)
	go func() { done <- inner.Wait() }()
	select {
	case err := <-done:
		t.Logf("the stalled client's inner connection ended %s after its kill (%v)", time.Since(killed).Round(time.Millisecond), err)
	case <-time.After(waitLong):
		t.Fatalf("the stalled session's inner connection outlived its kill by %s", waitLong)
	}
}
