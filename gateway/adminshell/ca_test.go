package adminshell

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	rotation "github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// kekCAKeys makes CA keys as a node does, with a test KEK.
type kekCAKeys struct {
	kek   *ca.KEK
	calls int
}

func newKEKCAKeys(t testing.TB) *kekCAKeys {
	t.Helper()
	kek, err := ca.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &kekCAKeys{kek: kek}
}

func (k *kekCAKeys) NewCAKey(id, alg string) (string, []byte, string, error) {
	k.calls++
	c, sealed, pub, err := ca.NewSSHCAKeyAlg(id, alg, k.kek)
	if err != nil {
		return "", nil, "", err
	}
	return pub, sealed, c.Signer.PublicKey().Type(), nil
}

// seedCAs gives project web a user CA and the cluster a host CA, as nodes
// make them on first use.
func seedCAs(h *harness, keys *kekCAKeys) {
	h.t.Helper()
	for _, r := range []raftstore.CARecord{
		{ID: "user-web-00000001", Kind: raftstore.CAUser, Project: "web"},
		{ID: "host-ca-1", Kind: raftstore.CAHost},
	} {
		pub, sealed, alg, err := keys.NewCAKey(r.ID, "")
		if err != nil {
			h.t.Fatal(err)
		}
		r.PublicKey, r.SealedKey, r.Algorithm, r.State = pub, sealed, alg, raftstore.CAActive
		h.apply(&raftstore.CAUpsert{Record: r, Now: h.now.Add(-time.Hour)})
	}
}

func newCAHarness(t *testing.T) (*harness, *kekCAKeys) {
	h := newHarness(t)
	keys := newKEKCAKeys(t)
	seedCAs(h, keys)
	keys.calls = 0
	h.sh.caKeys = keys
	return h, keys
}

// rotationState reads the rotation state of kind and project from the store.
func rotationState(t *testing.T, h *harness, kind raftstore.CAKind, project string) rotation.State {
	t.Helper()
	_, recs, err := h.store.State().CAsFor(nil, kind, project)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rotation.StateOf(recs, kind, project)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCALs(t *testing.T) {
	h, _ := newCAHarness(t)
	out := h.mustRun("ca", "ls")
	for _, w := range []string{"KIND", "FINGERPRINT", "host", "host-ca-1", "user", "web", "user-web-00000001", "ssh-ed25519", "active", "signing", "SHA256:"} {
		if !strings.Contains(out, w) {
			t.Errorf("ca ls lacks %q:\n%s", w, out)
		}
	}
	if strings.Index(out, "host-ca-1") > strings.Index(out, "user-web-00000001") {
		t.Errorf("host CA not listed first:\n%s", out)
	}
	views := decodeJSON[[]caView](t, h.mustRun("ca", "ls", "--json"))
	if len(views) != 2 || views[0].Kind != "host" || views[1].Project != "web" || views[1].Role != roleSigning ||
		!strings.HasPrefix(views[1].Fingerprint, "SHA256:") || !strings.HasPrefix(views[1].PublicKey, "ssh-ed25519 ") {
		t.Errorf("ca ls --json = %+v", views)
	}
	if got := h.mustRun("ca", "ls", "--kind", "user", "-q"); got != "user-web-00000001\n" {
		t.Errorf("ca ls --kind user -q = %q", got)
	}
	if got := h.mustRun("ca", "ls", "--project", "db", "--json"); strings.TrimSpace(got) != "[]" {
		t.Errorf("ca ls --project db --json = %q", got)
	}
	if r := h.run("ca", "ls", "--kind", "nope"); r.code != ExitUsage {
		t.Errorf("bad --kind: %s", r)
	}
}

// A whole rotation of web's user CA: at every step exactly one key signs,
// and the keys targets trust always include it and the one before.
func TestCARotateUserCA(t *testing.T) {
	h, keys := newCAHarness(t)
	old := rotationState(t, h, raftstore.CAUser, "web").Active

	out := h.mustRun("ca", "rotate", "web", "begin")
	st := rotationState(t, h, raftstore.CAUser, "web")
	if st.Phase != rotation.PhaseStaged || st.Active.ID != old.ID || st.Waiting == nil || keys.calls != 1 {
		t.Fatalf("after begin: %+v (%d keys made)", st, keys.calls)
	}
	newKey := st.Waiting
	if !strings.HasPrefix(newKey.ID, "user-web-") || newKey.Algorithm != gossh.KeyAlgoED25519 {
		t.Errorf("new key %s %s", newKey.ID, newKey.Algorithm)
	}
	for _, w := range []string{newKey.ID, "waits to sign", old.ID + " (SHA256:", "ca rotate web promote", "agents receive it in their state"} {
		if !strings.Contains(out, w) {
			t.Errorf("begin output lacks %q:\n%s", w, out)
		}
	}
	wantTrusted(t, h, "web", old, newKey)
	ev := h.lastAudit()
	if ev.Type != "ca.rotate" || ev.Actor != "alice" || ev.Fields["step"] != "begin" || ev.Fields["ca"] != newKey.ID ||
		ev.Fields["project"] != "web" || ev.Fields["ca_kind"] != "user" || ev.Fields["ca_state"] != "next" {
		t.Errorf("begin audit %+v", ev)
	}
	if roles := decodeJSON[[]caView](t, h.mustRun("ca", "ls", "--project", "web", "--json")); len(roles) != 2 || roles[0].Role != roleSigning || roles[1].Role != roleWaiting {
		t.Errorf("roles after begin %+v", roles)
	}

	// Promote is confirmed: one-shot without --yes changes nothing.
	before := len(h.auditEvents())
	r := h.run("ca", "rotate", "web", "promote")
	if r.code != ExitError || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("promote without --yes: %s", r)
	}
	if st := rotationState(t, h, raftstore.CAUser, "web"); st.Phase != rotation.PhaseStaged || len(h.auditEvents()) != before {
		t.Fatalf("refused promote changed something: %+v", st)
	}
	out = h.mustRun("ca", "rotate", "web", "promote", "--yes")
	st = rotationState(t, h, raftstore.CAUser, "web")
	if st.Phase != rotation.PhasePromoted || st.Active.ID != newKey.ID || st.Previous.ID != old.ID {
		t.Fatalf("after promote: %+v", st)
	}
	if !strings.Contains(out, newKey.ID+" (SHA256:") || !strings.Contains(out, "signs now") || !strings.Contains(out, "ca rotate web retire") {
		t.Errorf("promote output:\n%s", out)
	}
	// What a node mints with from now on: the active record.
	if _, active, _ := h.store.State().ActiveCA(nil, raftstore.CAUser, "web"); active.ID != newKey.ID {
		t.Errorf("active CA %s after promote", active.ID)
	}
	wantTrusted(t, h, "web", newKey, old)

	out = h.mustRun("ca", "rotate", "web", "retire", "-y")
	st = rotationState(t, h, raftstore.CAUser, "web")
	if st.Phase != rotation.PhaseStable || st.Active.ID != newKey.ID {
		t.Fatalf("after retire: %+v", st)
	}
	if _, rec, _ := h.store.State().CAByID(nil, old.ID); rec.State != raftstore.CARetired {
		t.Errorf("old key %s", rec.State)
	}
	if !strings.Contains(out, "only "+newKey.ID) {
		t.Errorf("retire output:\n%s", out)
	}
	wantTrusted(t, h, "web", newKey)
	steps := []string{}
	for _, e := range h.auditEvents() {
		if e.Type == "ca.rotate" {
			steps = append(steps, e.Fields["step"])
		}
	}
	if !slices.Equal(steps, []string{"begin", "promote", "retire"}) {
		t.Errorf("audited steps %v", steps)
	}
}

// wantTrusted checks the keys a project's targets are told to trust
// (GET /v1/ca/user/{project} lists the same non-retired keys).
func wantTrusted(t *testing.T, h *harness, project string, want ...*raftstore.CARecord) {
	t.Helper()
	_, recs, _ := h.store.State().CAsFor(nil, raftstore.CAUser, project)
	got := rotation.TrustedUserCAKeys(recs)
	var lines []string
	for _, r := range want {
		lines = append(lines, r.PublicKey)
	}
	if !slices.Equal(got, lines) {
		t.Errorf("trusted keys of %s: got %d %v, want %d", project, len(got), got, len(lines))
	}
}

func TestCARotateAbortRollbackAndHost(t *testing.T) {
	h, _ := newCAHarness(t)
	old := rotationState(t, h, raftstore.CAUser, "web").Active

	// Abort drops a waiting key.
	h.mustRun("ca", "rotate", "web", "begin", "--algorithm", "ecdsa-p256")
	waiting := rotationState(t, h, raftstore.CAUser, "web").Waiting
	if waiting.Algorithm != "ecdsa-sha2-nistp256" {
		t.Errorf("algorithm %s", waiting.Algorithm)
	}
	out := h.mustRun("ca", "rotate", "web", "abort")
	if st := rotationState(t, h, raftstore.CAUser, "web"); st.Phase != rotation.PhaseStable || st.Active.ID != old.ID || !strings.Contains(out, "retired before it signed") {
		t.Fatalf("after abort: %+v\n%s", st, out)
	}

	// Rollback makes the old key sign again.
	h.mustRun("ca", "rotate", "web", "begin")
	h.mustRun("ca", "rotate", "web", "promote", "--yes")
	out = h.mustRun("ca", "rotate", "web", "rollback")
	st := rotationState(t, h, raftstore.CAUser, "web")
	if st.Phase != rotation.PhaseStaged || st.Active.ID != old.ID || st.Waiting == nil || !strings.Contains(out, "signs again") {
		t.Fatalf("after rollback: %+v\n%s", st, out)
	}

	// The host CA, in JSON.
	oldHost := rotationState(t, h, raftstore.CAHost, "").Active
	v := decodeJSON[rotateView](t, h.mustRun("ca", "rotate", "host", "begin", "--json"))
	if v.Kind != "host" || v.Phase != "staged" || v.Active == nil || v.Active.ID != oldHost.ID || v.Waiting == nil || !strings.HasPrefix(v.Waiting.ID, "host-ca-") {
		t.Fatalf("host begin --json %+v", v)
	}
	v = decodeJSON[rotateView](t, h.mustRun("ca", "rotate", "host", "promote", "--yes", "--json"))
	if v.Phase != "promoted" || v.Active.Role != roleSigning || v.Previous == nil || v.Previous.ID != oldHost.ID {
		t.Fatalf("host promote --json %+v", v)
	}
	if got := h.mustRun("ca", "rotate", "host", "retire", "--yes", "-q"); got != "" {
		t.Errorf("--quiet printed %q", got)
	}
	if st := rotationState(t, h, raftstore.CAHost, ""); st.Phase != rotation.PhaseStable || st.Active.ID == oldHost.ID {
		t.Errorf("host after retire %+v", st)
	}
}

func TestCARotateRefusals(t *testing.T) {
	h, keys := newCAHarness(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"fail/promote-when-stable", []string{"ca", "rotate", "web", "promote", "--yes"}, ExitError, "cannot promote the user CA of project web now: it is stable (one key, signing); start with: ca rotate web begin"},
		{"fail/retire-when-stable", []string{"ca", "rotate", "host", "retire", "--yes"}, ExitError, "start with: ca rotate host begin"},
		{"fail/unknown-project", []string{"ca", "rotate", "nope", "begin"}, ExitError, `project "nope": not found`},
		{"fail/project-without-ca", []string{"ca", "rotate", "db", "begin"}, ExitError, "project db has no user CA yet"},
		{"fail/unknown-step", []string{"ca", "rotate", "web", "frobnicate"}, ExitUsage, "want one of begin, promote, retire, abort, rollback"},
		{"fail/missing-step", []string{"ca", "rotate", "web"}, ExitUsage, "takes PROJECT|host|node-host STEP"},
		{"fail/algorithm-not-begin", []string{"ca", "rotate", "web", "abort", "--algorithm", "rsa-3072"}, ExitUsage, "--algorithm is for begin only"},
		{"fail/unknown-algorithm", []string{"ca", "rotate", "web", "begin", "--algorithm", "dsa"}, ExitUsage, `--algorithm "dsa"`},
		{"fail/bad-flag", []string{"ca", "ls", "--frob"}, ExitUsage, "unknown flag: --frob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("want exit %d and %q: %s", tc.code, tc.want, r)
			}
		})
	}
	if st := rotationState(t, h, raftstore.CAUser, "web"); st.Phase != rotation.PhaseStable {
		t.Errorf("refusals changed web's CAs: %+v", st)
	}
	if keys.calls != 1 { // only the unknown algorithm reached the key maker
		t.Errorf("%d keys made by refused commands", keys.calls)
	}

	// A second begin is refused before a key is made.
	h.mustRun("ca", "rotate", "web", "begin")
	keys.calls = 0
	if r := h.run("ca", "rotate", "web", "begin"); r.code != ExitError || !strings.Contains(r.stderr, "next is: ca rotate web promote (or abort)") || keys.calls != 0 {
		t.Errorf("second begin (%d keys made): %s", keys.calls, r)
	}

	// A node that gives the shell no key maker.
	h.sh.caKeys = nil
	h.mustRun("ca", "rotate", "web", "abort")
	if r := h.run("ca", "rotate", "web", "begin"); r.code != ExitError || !strings.Contains(r.stderr, "cannot make CA keys") {
		t.Errorf("begin without a key maker: %s", r)
	}
}

func TestInteractiveCARotateConfirmation(t *testing.T) {
	h, _ := newCAHarness(t)
	h.mustRun("ca", "rotate", "web", "begin")
	s := startTerm(t, h)
	s.expect(Prompt)
	s.typ("ca rotate web promote\r")
	// (The terminal wraps the question at 120 columns.)
	s.expect("This will make key user-web-")
	s.expect("Type yes to confirm: ")
	s.typ("no\r")
	s.expect("not confirmed; nothing was changed")
	if st := rotationState(t, h, raftstore.CAUser, "web"); st.Phase != rotation.PhaseStaged {
		t.Fatalf("promoted after no: %+v", st)
	}
	s.typ("ca rotate web promote\r")
	s.expect("Type yes to confirm: ")
	s.typ("yes\r")
	s.expect("signs now")
	if st := rotationState(t, h, raftstore.CAUser, "web"); st.Phase != rotation.PhasePromoted {
		t.Fatalf("not promoted after yes: %+v", st)
	}
	// Completion of the target and the step.
	s.expect(Prompt)
	s.typ("ca rotate ho\t")
	s.expect("host ")
	s.typ("re\t")
	s.expect("retire ")
	s.typ("\x15exit\r")
	s.exit()
}
