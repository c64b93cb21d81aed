package e2e

// Recordings that survive a lost node: a three-node cluster where bob's
// sessions run through n2; their recordings are copied to another node
// (live while they run, checked at close), n2 is killed with SIGKILL and its
// data directory deleted, and the recordings are read from a survivor.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// sessionOf waits until node's API shows a session with status (and, when
// recorded, a recording digest) that is not in skip.
func sessionOf(t *testing.T, node *Node, status string, recorded bool, skip map[string]bool) api.Session {
	t.Helper()
	var found api.Session
	fatalIf(t, waitFor(waitLong, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		page, err := node.API().Sessions(ctx, client.ListOptions{Limit: 1000, Filter: url.Values{"status": {status}}})
		if err != nil {
			return err
		}
		for _, s := range page.Items {
			if !skip[s.ID] && (!recorded || s.Recording != "") {
				found = s
				return nil
			}
		}
		return fmt.Errorf("no new %s session yet", status)
	}), "a "+status+" session")
	return found
}

// replicated waits until the audit log says a node other than the carrying
// one keeps a complete copy of session id's recording, and returns it.
func replicated(t *testing.T, node *Node, id, carrier string) string {
	t.Helper()
	var holder string
	fatalIf(t, waitFor(waitLong, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		o := client.ListOptions{Limit: 1000, Filter: url.Values{"type": {"recording.replicate"}, "session": {id}}}
		for {
			page, err := node.API().Audit(ctx, o)
			if err != nil {
				return err
			}
			for _, e := range page.Items {
				if e.Fields["partial"] == "false" && e.Fields["node"] != carrier {
					holder = e.Fields["node"]
					return nil
				}
			}
			if page.NextCursor == "" {
				return fmt.Errorf("no checked copy of %s's recording yet", id)
			}
			o.Cursor = page.NextCursor
		}
	}), "the copy of "+id)
	return holder
}

// download reads session id's recording through node's API with tok.
func download(t *testing.T, node *Node, tok, id string) (*client.Recording, []byte) {
	t.Helper()
	c := node.NewAPI(client.WithRootCAs(node.c.CAPool()), client.WithToken(tok))
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	rec, err := c.SessionRecording(ctx, id)
	fatalIf(t, err, "download the recording of "+id+" from "+node.ID)
	defer rec.Body.Close()
	body, err := io.ReadAll(rec.Body)
	fatalIf(t, err)
	return rec, body
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// lastStamp is the last complete "T=<unix seconds>" line a recording's
// output events carry.
func lastStamp(t *testing.T, cast []byte) time.Time {
	t.Helper()
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(cast)))
	sc.Buffer(nil, 1<<20)
	for first := true; sc.Scan(); first = false {
		if first {
			continue
		}
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 || ev[1] != "o" {
			continue
		}
		out.WriteString(ev[2].(string))
	}
	var last time.Time
	for _, line := range strings.Split(out.String(), "\n") {
		line = strings.TrimSpace(line)
		v, ok := strings.CutPrefix(line, "T=")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || len(v) < 15 {
			continue // the line the stream was cut in
		}
		last = time.Unix(0, int64(f*1e9))
	}
	return last
}

func TestRecordingSurvivesLostNode(t *testing.T) {
	e := startRevocationCluster(t)
	n1, n2, n3 := e.c.Nodes[0], e.c.Nodes[1], e.c.Nodes[2]
	e.alice = e.signIn(t, "alice", n1)
	e.bob = e.signIn(t, "bob", n1)
	je := &jumpEnv{node: e.devNode(n1), dir: e.dir}
	je.setProject(t, api.ProjectSettings{})
	grant(t, je.api(), "web", "engineering")
	e.target = je.startTarget(t, "web-1", newIP(t, "web-1"), "web", je.userCA(t, "web"), true, nil)
	fatalIf(t, e.target.AddUser("bob"), "add bob to web-1")
	_, err := e.c.WaitConverged(waitLong)
	fatalIf(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	auditor, err := n1.API().CreateServiceToken(ctx, api.ServiceTokenRequest{Name: "auditor", Scope: "auditor"})
	fatalIf(t, err, "auditor token")
	seen := map[string]bool{}

	t.Run("ok/exec-session-recorded", func(t *testing.T) {
		r := runSSH(t, e.bobJump(n3, nil, "echo exec-out-$((6*7)); echo exec-err-$((7*6)) >&2"))
		if r.code != 0 || !strings.Contains(r.stdout, "exec-out-42") {
			t.Fatalf("exec: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
		}
		s := sessionOf(t, n1, "closed", true, seen)
		seen[s.ID] = true
		rec, cast := download(t, n1, auditor.Token, s.ID)
		header, _, _ := strings.Cut(string(cast), "\n")
		if !strings.Contains(header, `"command":"echo exec-out-$((6*7)); echo exec-err-$((7*6)) \u003e\u00262"`) &&
			!strings.Contains(header, `"command":"echo exec-out-$((6*7)); echo exec-err-$((7*6)) >&2"`) {
			t.Errorf("header without the command: %s", header)
		}
		if !strings.Contains(string(cast), "exec-out-42") || !strings.Contains(string(cast), "exec-err-42") {
			t.Errorf("the exec session's stdout and stderr are not both in its recording:\n%s", cast)
		}
		if sha256Hex(cast) != s.Recording || rec.SHA256 != s.Recording {
			t.Errorf("downloaded %s (header %s), the session record says %s", sha256Hex(cast), rec.SHA256, s.Recording)
		}
	})

	t.Run("ok/sftp-upload-path-audited", func(t *testing.T) {
		src := filepath.Join(e.dir, "upload-src")
		fatalIf(t, os.WriteFile(src, []byte(strings.Repeat("u", 70000)), 0o600))
		batch := filepath.Join(e.dir, "sftp-batch")
		fatalIf(t, os.WriteFile(batch, []byte("put "+src+" upload-e2e.txt\nrename upload-e2e.txt uploaded-e2e.txt\n"), 0o600))
		r := runSSH(t, []string{"sftp", "-F", e.bob, "-J", "bob@" + n3.SSHAddr(), "-b", batch, "bob@web-1"})
		if r.code != 0 {
			t.Fatalf("sftp: exit %d: %s", r.code, r.stderr)
		}
		s := sessionOf(t, n1, "closed", false, seen)
		seen[s.ID] = true
		want := map[string]bool{"sftp.open": false, "sftp.write": false, "sftp.rename": false, "sftp.end": false}
		fatalIf(t, waitFor(waitLong, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			o := client.ListOptions{Limit: 1000, Filter: url.Values{"type": {"sftp"}, "session": {s.ID}}}
			for {
				page, err := n1.API().Audit(ctx, o)
				if err != nil {
					return err
				}
				for _, ev := range page.Items {
					f := ev.Fields
					switch ev.Type {
					case "sftp.open":
						want[ev.Type] = want[ev.Type] || strings.HasSuffix(f["path"], "/upload-e2e.txt") && strings.Contains(f["flags"], "write")
					case "sftp.write":
						want[ev.Type] = want[ev.Type] || strings.HasSuffix(f["path"], "/upload-e2e.txt") && f["bytes"] == "70000"
					case "sftp.rename":
						want[ev.Type] = want[ev.Type] || strings.HasSuffix(f["new_path"], "/uploaded-e2e.txt")
					case "sftp.end":
						want[ev.Type] = want[ev.Type] || f["bytes_written"] == "70000"
					}
				}
				if page.NextCursor == "" {
					break
				}
				o.Cursor = page.NextCursor
			}
			for typ, ok := range want {
				if !ok {
					return fmt.Errorf("no %s event for the upload yet (%v)", typ, want)
				}
			}
			return nil
		}), "the sftp upload's audit events")
	})

	// A closed session on n2, and a running one, then n2 is lost.
	r := runSSH(t, e.bobJump(n2, []string{"-tt"}, "echo closed-$((6*7)); head -c 300000 /dev/zero | tr '\\0' x; echo"))
	if r.code != 0 {
		t.Fatalf("recorded session on n2: exit %d: %s", r.code, r.stderr)
	}
	closed := sessionOf(t, n1, "closed", true, seen)
	seen[closed.ID] = true
	if closed.Node != n2.ID {
		t.Fatalf("session %s was carried by %s, want %s", closed.ID, closed.Node, n2.ID)
	}
	copyAt := replicated(t, n1, closed.ID, n2.ID)
	t.Logf("session %s, carried by %s, has a checked copy on %s", closed.ID, n2.ID, copyAt)

	running := startRunningSSHUntil(t, e.bobJump(n2, []string{"-tt"},
		`echo started; while :; do echo "T=$(date +%s.%N)"; sleep 0.05; done`), "T=", nil)
	live := sessionOf(t, n1, "active", false, seen)
	// Let it run past a few of the recorder's flushes.
	fatalIf(t, waitFor(waitLong, func() error {
		if strings.Count(running.stdout.String(), "T=") < 40 {
			return errors.New("not enough output yet")
		}
		return nil
	}))
	killed := time.Now()
	fatalIf(t, n2.Kill(), "kill -9 n2")
	fatalIf(t, os.RemoveAll(n2.DataDir), "delete n2's data directory")
	t.Logf("n2 killed at %s and its data directory deleted", killed.Format(time.RFC3339Nano))
	_, err = e.c.WaitLeader(waitLong, n1, n3)
	fatalIf(t, err, "a leader among n1 and n3")

	t.Run("ok/closed-session-replayed-byte-identical", func(t *testing.T) {
		for _, n := range []*Node{n1, n3} {
			rec, cast := download(t, n, auditor.Token, closed.ID)
			if got := sha256Hex(cast); got != closed.Recording || rec.Partial || rec.Node == n2.ID {
				t.Errorf("from %s: SHA-256 %s (node %s, partial %v), the cluster recorded %s", n.ID, got, rec.Node, rec.Partial, closed.Recording)
			}
			if !strings.Contains(string(cast), "closed-42") {
				t.Errorf("from %s: the recording lacks the session's output", n.ID)
			}
		}
		// And the admin shell's replay, on a survivor.
		res := e.admin(t, n3, "sessions", "replay", closed.ID, "--cast")
		if got := sha256Hex([]byte(res.stdout)); got != closed.Recording {
			t.Errorf("sessions replay --cast on n3: SHA-256 %s, want %s", got, closed.Recording)
		}
	})

	t.Run("ok/running-session-recording-ends-within-a-second-of-the-kill", func(t *testing.T) {
		var rec *client.Recording
		var cast []byte
		fatalIf(t, waitFor(waitLong, func() error {
			c := n1.NewAPI(client.WithRootCAs(n1.c.CAPool()), client.WithToken(auditor.Token))
			defer c.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			got, err := c.SessionRecording(ctx, live.ID)
			if err != nil {
				return err
			}
			defer got.Body.Close()
			rec = got
			cast, err = io.ReadAll(got.Body)
			return err
		}), "the running session's copy")
		if !rec.Partial || rec.Node == n2.ID || sha256Hex(cast) != rec.SHA256 {
			t.Fatalf("copy of the running session: node %s, partial %v, SHA-256 %s (header %s)", rec.Node, rec.Partial, sha256Hex(cast), rec.SHA256)
		}
		last := lastStamp(t, cast)
		lost := killed.Sub(last)
		t.Logf("timing: the copy on %s ends %s before the kill", rec.Node, lost.Round(time.Millisecond))
		if last.IsZero() || lost > time.Second {
			t.Fatalf("the copy ends at %s, %s before the kill at %s (want at most 1s)", last.Format(time.RFC3339Nano), lost, killed.Format(time.RFC3339Nano))
		}
	})
}
