package adminshell

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/gateway/auditlog"
)

// `audit verify` on a pruned log: it proves the log from the signed
// checkpoint and shows the pruned range; an exported file that starts
// right after the pruned range is anchored to the checkpoint; a checkpoint
// signed by another key fails.
func TestAuditVerifyPruned(t *testing.T) {
	h := newHarness(t)
	key := ed25519.NewKeyFromSeed([]byte(strings.Repeat("a", ed25519.SeedSize)))
	h.sh.auditKey = key.Public().(ed25519.PublicKey)
	lines := exportLines(t, h) // 6 events; the retention's is the 7th
	p := auditlog.NewPruner(h.store, key, auditlog.Retention{MaxEvents: 4}, "n1", slog.New(slog.DiscardHandler))
	if err := p.Once(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	_, as, _ := h.store.State().AuditStateOf(nil)
	if as.Checkpoint == nil {
		t.Fatal("nothing pruned")
	}
	through := as.Checkpoint.LastSeq
	out := h.mustRun("audit", "verify")
	if !strings.Contains(out, "chain intact") || !strings.Contains(out, "pruned behind a checkpoint signed by the cluster") {
		t.Fatalf("verify: %s", out)
	}
	rep := decodeJSON[verifyReport](t, h.mustRun("audit", "verify", "--json"))
	if !rep.OK || rep.PrunedThrough != through || rep.FirstSeq != through+1 || rep.CheckpointTime == nil {
		t.Fatalf("report %+v, pruned through %d", rep, through)
	}
	// An export of what was kept starts after the checkpoint.
	kept := lines[through:]
	if r := verifyLines(h, kept); r.code != ExitOK || !strings.Contains(r.stdout, "follows the cluster's event") {
		t.Fatalf("kept segment: %s", r)
	}

	h.sh.auditKey = ed25519.NewKeyFromSeed([]byte(strings.Repeat("b", ed25519.SeedSize))).Public().(ed25519.PublicKey)
	r := h.run("audit", "verify")
	if r.code != ExitError || !strings.Contains(r.stderr, "not this cluster's audit key") {
		t.Fatalf("checkpoint of another key: %s", r)
	}
}
