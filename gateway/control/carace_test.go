package control

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	rotation "github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// raceCAKeys makes CA keys with a test key-encryption key.
type raceCAKeys struct{ kek *ca.KEK }

func (k raceCAKeys) NewCAKey(id, alg string) (string, []byte, string, error) {
	c, sealed, pub, err := ca.NewSSHCAKeyAlg(id, alg, k.kek)
	if err != nil {
		return "", nil, "", err
	}
	return pub, sealed, c.Signer.PublicKey().Type(), nil
}

// interleave runs its hook once, just before the first CA change reaches
// the store: the step that is applying was planned before the hook's.
type interleave struct {
	Store
	hook func()
}

func (s *interleave) Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error) {
	if _, ok := cmd.(*raftstore.CAUpsert); ok && s.hook != nil {
		h := s.hook
		s.hook = nil
		h()
	}
	return s.Store.Apply(ctx, cmd)
}

// TestRotateCARaces: two rotation steps on one chain planned from the same
// read. The one applied second is refused with 409 conflict and changes
// nothing; the chain keeps one active key, and a retired key does not sign
// again.
func TestRotateCARaces(t *testing.T) {
	kek, err := ca.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys := raceCAKeys{kek: kek}
	cases := []struct {
		name string
		// setup takes the chain from stable to the phase both steps plan
		// from.
		setup         []rotation.Step
		first, second rotation.Step // first is applied first, second was planned before it
		wantPhase     rotation.Phase
	}{
		{name: "fail/promote-overtaken-by-abort", setup: []rotation.Step{rotation.Begin}, first: rotation.Abort, second: rotation.Promote, wantPhase: rotation.PhaseStable},
		{name: "fail/abort-overtaken-by-promote", setup: []rotation.Step{rotation.Begin}, first: rotation.Promote, second: rotation.Abort, wantPhase: rotation.PhasePromoted},
		{name: "fail/retire-overtaken-by-rollback", setup: []rotation.Step{rotation.Begin, rotation.Promote}, first: rotation.Rollback, second: rotation.Retire, wantPhase: rotation.PhaseStaged},
		{name: "fail/rollback-overtaken-by-retire", setup: []rotation.Step{rotation.Begin, rotation.Promote}, first: rotation.Retire, second: rotation.Rollback, wantPhase: rotation.PhaseStable},
		{name: "fail/begin-overtaken-by-begin", first: rotation.Begin, second: rotation.Begin, wantPhase: rotation.PhaseStaged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			pub, sealed, alg, err := keys.NewCAKey("user-web-1", "")
			if err != nil {
				t.Fatal(err)
			}
			h.apply(&raftstore.CAUpsert{Record: raftstore.CARecord{ID: "user-web-1", Kind: raftstore.CAUser, Project: "web", Algorithm: alg,
				PublicKey: pub, SealedKey: sealed, State: raftstore.CAActive}, Now: testNow.Add(-time.Hour)})
			plain := New(Deps{Store: h.store, Auditor: h.audit, Members: h.store, Cluster: fixedCluster{}, CAKeys: keys,
				Now: func() time.Time { return testNow }})
			req := func(s rotation.Step) CARotation { return CARotation{Kind: raftstore.CAUser, Project: "web", Step: s} }
			for _, s := range tc.setup {
				if _, err := plain.RotateCA(context.Background(), testActor, req(s), nil); err != nil {
					t.Fatalf("setup %s: %v", s, err)
				}
			}
			racing := &interleave{Store: h.store}
			racing.hook = func() {
				if _, err := plain.RotateCA(context.Background(), testActor, req(tc.first), nil); err != nil {
					t.Errorf("%s: %v", tc.first, err)
				}
			}
			stale := New(Deps{Store: racing, Auditor: h.audit, Members: h.store, Cluster: fixedCluster{}, CAKeys: keys,
				Now: func() time.Time { return testNow }})
			before := len(h.audit.all())
			_, err = stale.RotateCA(context.Background(), testActor, req(tc.second), nil)
			var fe *fault.Error
			if !errors.As(err, &fe) || fe.Status != http.StatusConflict || fe.Code != "conflict" || !strings.Contains(fe.Msg, "changed while this") {
				t.Fatalf("stale %s: err = %v, want a 409 conflict", tc.second, err)
			}
			if strings.Contains(fe.Msg, "modify index") {
				t.Errorf("message carries internals: %q", fe.Msg)
			}
			if n := len(h.audit.all()) - before; n != 1 {
				t.Errorf("%d events audited, want 1 (the step that was made)", n)
			}
			_, recs, err := h.store.State().CAsFor(nil, raftstore.CAUser, "web")
			if err != nil {
				t.Fatal(err)
			}
			st, err := rotation.StateOf(recs, raftstore.CAUser, "web")
			if err != nil {
				t.Fatalf("chain broken: %v", err)
			}
			if st.Phase != tc.wantPhase {
				t.Fatalf("phase %s, want %s (the first step's)", st.Phase, tc.wantPhase)
			}
		})
	}
}
