package adminshell

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rampart-ssh/rampart/raftstore"
)

// exportLines makes some admin history and exports the log.
func exportLines(t *testing.T, h *harness) []string {
	t.Helper()
	h.mustRun("projects", "create", "api")
	h.mustRun("users", "disable", "bob")
	h.mustRun("projects", "grant", "api", "eng")
	h.mustRun("servers", "label", "web-1", "tier=frontend")
	out := h.mustRun("audit", "export")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d exported events, want 6:\n%s", len(lines), out)
	}
	return lines
}

// verifyLines runs audit verify --file - on lines, with extra flags.
func verifyLines(h *harness, lines []string, flags ...string) result {
	h.t.Helper()
	return h.runInput(strings.NewReader(strings.Join(lines, "\n")+"\n"), append([]string{"audit", "verify", "--file", "-"}, flags...)...)
}

// edit rewrites one exported event.
func edit(t *testing.T, line string, fn func(*auditView)) string {
	t.Helper()
	var a auditView
	if err := json.Unmarshal([]byte(line), &a); err != nil {
		t.Fatal(err)
	}
	fn(&a)
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rechain recomputes every hash, as a forger without the cluster's copy would.
func rechain(t *testing.T, lines []string) []string {
	t.Helper()
	out := make([]string, len(lines))
	prev := raftstore.AuditZeroHash
	for i, l := range lines {
		out[i] = edit(t, l, func(a *auditView) {
			a.PrevHash = prev
			a.Hash = raftstore.AuditHash(a.event())
			prev = a.Hash
		})
	}
	return out
}

// `audit verify --file` proves an exported log whole, and finds an edited
// event, a gap, a reordering and a rewritten chain.
func TestAuditVerifyExportedFile(t *testing.T) {
	h := newHarness(t)
	lines := exportLines(t, h)
	actorEdited := append([]string{}, lines...)
	actorEdited[3] = edit(t, lines[3], func(a *auditView) { a.Actor = "mallory" })
	fieldEdited := append([]string{}, lines...)
	fieldEdited[2] = edit(t, lines[2], func(a *auditView) { a.Fields["project"] = "other" })
	gap := append(append([]string{}, lines[:2]...), lines[3:]...)
	swapped := append([]string{}, lines...)
	swapped[2], swapped[3] = swapped[3], swapped[2]
	rewritten := append([]string{}, lines...)
	rewritten[4] = edit(t, lines[4], func(a *auditView) { a.Fields["user"] = "carol" })
	rewritten = rechain(t, rewritten)

	tests := []struct {
		name  string
		lines []string
		code  int
		want  string
	}{
		{"ok/whole-log", lines, ExitOK, "6 event(s), seq 1..6"},
		{"ok/segment-anchored", lines[2:], ExitOK, "follows the cluster's event 2; matches the cluster's log"},
		{"ok/empty", nil, ExitOK, "0 event(s)"},
		{"fail/edited-actor", actorEdited, ExitError, "audit chain broken at seq 4: hash does not match the event's content"},
		{"fail/edited-field", fieldEdited, ExitError, "broken at seq 3: hash does not match"},
		{"fail/gap", gap, ExitError, "audit chain broken at seq 3: missing (next event has seq 4)"},
		{"ok/single-event-segment", lines[1:2], ExitOK, "follows the cluster's event 1"},
		{"fail/reordered", swapped, ExitError, "broken at seq 3: missing (next event has seq 4)"},
		{"fail/rewritten-chain", rewritten, ExitError, "broken at seq 6: differs from the cluster's own log"},
		{"fail/not-json", append(append([]string{}, lines[:2]...), "{oops"), ExitError, "line 3 is not an exported audit event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := verifyLines(h, tc.lines)
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Fatalf("want exit %d with %q; %s", tc.code, tc.want, r)
			}
			j := verifyLines(h, tc.lines, "--json")
			rep := decodeJSON[verifyReport](t, j.stdout)
			if rep.OK != (tc.code == ExitOK) || j.code != tc.code {
				t.Errorf("json report %+v, exit %d", rep, j.code)
			}
		})
	}

	// The cluster's own log verifies, and standard input is read with -.
	if out := h.mustRun("audit", "verify"); !strings.Contains(out, "6 event(s)") {
		t.Errorf("verify: %s", out)
	}
	r := h.runInput(strings.NewReader(strings.Join(gap, "\n")), "audit", "verify", "--file", "-")
	if r.code != ExitError || !strings.Contains(r.stderr, "standard input: audit chain broken at seq 3") {
		t.Errorf("stdin: %s", r)
	}
	if r := h.run("audit", "verify", "--file", "-"); r.code != ExitError || !strings.Contains(r.stderr, "no standard input") {
		t.Errorf("no stdin: %s", r)
	}
}

// A file that goes past the cluster's newest event (say, the cluster was
// rebuilt and lost its tail) fails and says so: nothing vouches for it.
func TestAuditVerifyPastClusterHead(t *testing.T) {
	h := newHarness(t)
	lines := exportLines(t, h)
	other := newHarness(t) // a cluster with only two events
	r := verifyLines(other, lines[3:])
	if r.code != ExitError || !strings.Contains(r.stderr, "goes past the cluster's newest event (2)") {
		t.Fatal(r)
	}
	rep := decodeJSON[verifyReport](t, verifyLines(other, lines[3:], "--json").stdout)
	if rep.OK || rep.ClusterHead == nil || *rep.ClusterHead != 2 {
		t.Fatalf("report %+v", rep)
	}
}

// The forgery the review found: rewrite an event, re-chain, and add one
// event past the cluster's head so that the file's last event has nothing
// to be compared with. It must fail, at the head or (without the padding)
// at the rewritten file's last event.
func TestAuditVerifyForgedPastHead(t *testing.T) {
	h := newHarness(t)
	lines := exportLines(t, h)
	forged := append([]string{}, lines...)
	forged[4] = edit(t, lines[4], func(a *auditView) { a.Actor = "mallory" })
	pad := edit(t, lines[5], func(a *auditView) { a.Seq, a.Type = 7, "user.enable" })
	forged = rechain(t, append(forged, pad))
	r := verifyLines(h, forged)
	if r.code != ExitError || !strings.Contains(r.stderr, "broken at seq 7: the file goes past the cluster's newest event (6)") {
		t.Fatal(r)
	}
	// The same forgery cut at the head is compared there.
	if r := verifyLines(h, forged[:6]); r.code != ExitError || !strings.Contains(r.stderr, "broken at seq 6: differs from the cluster's own log") {
		t.Fatal(r)
	}
}

// --file reads standard input only: a path on the node is refused before
// anything is opened (no probing the node's files, no hanging on a FIFO).
func TestAuditVerifyFileStdinOnly(t *testing.T) {
	h := newHarness(t)
	exportLines(t, h)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, "/etc/passwd", filepath.Join(t.TempDir(), "missing")} {
		r := h.run("audit", "verify", "--file", path)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "--file takes - (standard input) only") {
			t.Errorf("%s: %s", path, r)
		}
	}
}

// An edited event in the cluster's own log is caught by audit verify.
func TestAuditVerifyLiveLogTampered(t *testing.T) {
	h := newHarness(t)
	exportLines(t, h)
	// Edit an event in place, as someone with access to a node's memory might.
	_, evs, _ := h.store.State().Audit(nil)
	evs[2].Actor = "mallory"
	r := h.run("audit", "verify")
	if r.code != ExitError || !strings.Contains(r.stderr, "audit log: audit chain broken at seq 3: hash does not match") {
		t.Fatal(r)
	}
}
