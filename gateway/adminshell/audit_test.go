package adminshell

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
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
			path := writeLines(t, tc.lines)
			r := h.run("audit", "verify", "--file", path)
			if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Fatalf("want exit %d with %q; %s", tc.code, tc.want, r)
			}
			j := h.run("audit", "verify", "--file", path, "--json")
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

// A file that starts mid-log where the cluster has no event before it (say,
// the cluster was rebuilt) is verified from its own first event, and says so.
func TestAuditVerifyUnanchoredSegment(t *testing.T) {
	h := newHarness(t)
	lines := exportLines(t, h)
	other := newHarness(t) // a cluster with only two events
	r := other.run("audit", "verify", "--file", writeLines(t, lines[3:]))
	if r.code != ExitOK || !strings.Contains(r.stdout, "the cluster has no event 3 to anchor the first one to") ||
		!strings.Contains(r.stdout, "could not be compared") {
		t.Fatal(r)
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
