package adminshell

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// audit export-cursors lists every cursor in the cluster, and rm removes
// one, audited with its seq; an unknown sink is not found.
func TestAuditExportCursors(t *testing.T) {
	h := newHarness(t)
	h.mustRun("projects", "create", "api")
	h.apply(&raftstore.AuditExportCursorSet{Sink: "old-siem", Seq: 2, Node: "n2", At: h.now})
	h.apply(&raftstore.AuditExportCursorSet{Sink: "siem", Seq: 1, Node: "n1", At: h.now.Add(-time.Minute)})
	out := h.mustRun("audit", "export-cursors", "ls")
	if !strings.Contains(out, "old-siem") || !strings.Contains(out, "siem") || !strings.Contains(out, "DELIVERED_SEQ") {
		t.Fatalf("ls: %s", out)
	}
	views := decodeJSON[[]exportCursorView](t, h.mustRun("audit", "export-cursors", "ls", "--json"))
	if len(views) != 2 || views[0].Sink != "old-siem" || views[0].Seq != 2 || views[0].Node != "n2" {
		t.Fatalf("ls --json: %+v", views)
	}
	if r := h.run("audit", "export-cursors", "rm", "nope", "--yes"); r.code == ExitOK || !strings.Contains(r.stderr, "has no cursor") {
		t.Fatalf("rm unknown: %s", r)
	}
	if out := h.mustRun("audit", "export-cursors", "rm", "old-siem", "--yes"); !strings.Contains(out, "delivered through seq 2") {
		t.Fatalf("rm: %s", out)
	}
	if _, c, _ := h.store.State().AuditExportCursorOf(nil, "old-siem"); c != nil {
		t.Fatalf("cursor still there: %+v", c)
	}
	ev := h.lastAudit()
	if ev.Type != raftstore.EventAuditExportCursorDelete || ev.Actor != "alice" || ev.Fields["sink"] != "old-siem" || ev.Fields["seq"] != "2" ||
		ev.Fields["admin_id"] != "sub-alice" || !strings.Contains(ev.Fields["command"], "export-cursors rm old-siem") {
		t.Fatalf("audit event %+v", ev)
	}
}
