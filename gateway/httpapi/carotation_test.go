package httpapi

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	rotation "github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// testCAKeys makes CA keys as a node does, with a test key-encryption key.
type testCAKeys struct {
	kek   *ca.KEK
	calls int
}

func (k *testCAKeys) NewCAKey(id, alg string) (string, []byte, string, error) {
	k.calls++
	c, sealed, pub, err := ca.NewSSHCAKeyAlg(id, alg, k.kek)
	if err != nil {
		return "", nil, "", err
	}
	return pub, sealed, c.Signer.PublicKey().Type(), nil
}

// newCARotationAPI is the v1 harness with a user CA for web, a target host
// CA and a node host CA, and a service that can make CA keys (keys nil:
// one that cannot).
func newCARotationAPI(t *testing.T, withKeys bool) (*v1API, *testCAKeys) {
	t.Helper()
	a := newV1API(t)
	kek, err := ca.NewKEK(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys := &testCAKeys{kek: kek}
	for _, r := range []raftstore.CARecord{
		{ID: "user-web-00000001", Kind: raftstore.CAUser, Project: "web"},
		{ID: "host-ca-1", Kind: raftstore.CAHost},
		{ID: "node-host-ca-1", Kind: raftstore.CANodeHost},
	} {
		pub, sealed, alg, err := keys.NewCAKey(r.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		r.PublicKey, r.SealedKey, r.Algorithm, r.State = pub, sealed, alg, raftstore.CAActive
		a.store.MustApply(t, &raftstore.CAUpsert{Record: r, Now: time.Now().Add(-time.Hour)})
	}
	a.store.MustApply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db", Settings: raftstore.DefaultProjectSettings()}, Now: time.Now()})
	keys.calls = 0
	deps := control.Deps{Store: a.store, Members: a.store, Auditor: control.StoreAuditor{Store: a.store}, Targets: targetaddr.Rule{}}
	if withKeys {
		deps.CAKeys = keys
	}
	a.srv.SetControl(control.New(deps))
	return a, keys
}

// chainState is the rotation state of kind and project in the store.
func chainState(t *testing.T, a *v1API, kind raftstore.CAKind, project string) rotation.State {
	t.Helper()
	_, recs, err := a.store.State().CAsFor(nil, kind, project)
	if err != nil {
		t.Fatal(err)
	}
	st, err := rotation.StateOf(recs, kind, project)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestV1CARotation drives each chain's rotation through the API: every
// step answers the chain as it is after it and writes one audit event
// ca.rotate_<step> by api:<token>; refusals change nothing and write none.
func TestV1CARotation(t *testing.T) {
	a, keys := newCARotationAPI(t, true)
	oldUser := chainState(t, a, raftstore.CAUser, "web").Active
	oldHost := chainState(t, a, raftstore.CAHost, "").Active
	for _, tc := range []struct {
		name, scope, path, body string
		status                  int
		code                    string // of an error
		phase                   string // after a step
		event                   string // audit event type of a step
	}{
		{name: "fail/read-scope", scope: "read", path: "/v1/ca/user/web/rotation/begin", status: 403, code: "insufficient_scope"},
		{name: "fail/auditor-scope", scope: "auditor", path: "/v1/ca/host/rotation/begin", status: 403, code: "insufficient_scope"},
		{name: "fail/provisioning-scope", scope: "provisioning", path: "/v1/ca/node-host/rotation/begin", status: 403, code: "insufficient_scope"},
		{name: "fail/unknown-step", scope: "admin", path: "/v1/ca/user/web/rotation/frobnicate", status: 400, code: "invalid"},
		{name: "fail/unknown-project", scope: "admin", path: "/v1/ca/user/nope/rotation/begin", status: 404, code: "not_found"},
		{name: "fail/project-without-ca", scope: "admin", path: "/v1/ca/user/db/rotation/begin", status: 409, code: "no_ca"},
		{name: "fail/promote-when-stable", scope: "admin", path: "/v1/ca/user/web/rotation/promote", status: 409, code: "wrong_phase"},
		{name: "fail/algorithm-not-begin", scope: "admin", path: "/v1/ca/host/rotation/retire", body: `{"algorithm":"rsa-3072"}`, status: 400, code: "invalid"},
		{name: "fail/unknown-algorithm", scope: "admin", path: "/v1/ca/user/web/rotation/begin", body: `{"algorithm":"dsa"}`, status: 400, code: "invalid_algorithm"},
		{name: "fail/unknown-field", scope: "admin", path: "/v1/ca/user/web/rotation/begin", body: `{"alg":"ed25519"}`, status: 400, code: "invalid"},
		{name: "ok/user-begin", scope: "admin", path: "/v1/ca/user/web/rotation/begin", status: 200, phase: "staged", event: control.EventCARotateBegin},
		{name: "fail/user-begin-again", scope: "admin", path: "/v1/ca/user/web/rotation/begin", status: 409, code: "wrong_phase"},
		{name: "ok/user-promote", scope: "admin", path: "/v1/ca/user/web/rotation/promote", status: 200, phase: "promoted", event: control.EventCARotatePromote},
		{name: "ok/user-rollback", scope: "admin", path: "/v1/ca/user/web/rotation/rollback", status: 200, phase: "staged", event: control.EventCARotateRollback},
		{name: "ok/user-abort", scope: "admin", path: "/v1/ca/user/web/rotation/abort", status: 200, phase: "stable", event: control.EventCARotateAbort},
		{name: "ok/host-begin-ecdsa", scope: "admin", path: "/v1/ca/host/rotation/begin", body: `{"algorithm":"ecdsa-p256"}`, status: 200, phase: "staged", event: control.EventCARotateBegin},
		{name: "ok/host-promote", scope: "admin", path: "/v1/ca/host/rotation/promote", status: 200, phase: "promoted", event: control.EventCARotatePromote},
		{name: "ok/host-retire", scope: "admin", path: "/v1/ca/host/rotation/retire", status: 200, phase: "stable", event: control.EventCARotateRetire},
		{name: "ok/node-host-begin", scope: "admin", path: "/v1/ca/node-host/rotation/begin", body: `{}`, status: 200, phase: "staged", event: control.EventCARotateBegin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seqBefore, calls := a.lastAudit().Seq, keys.calls
			a.srv.touchWG.Wait()
			got := a.call(tc.scope, http.MethodPost, tc.path, tc.body, tc.status < 400)
			if got.status != tc.status || (tc.code != "" && got.code() != tc.code) {
				t.Fatalf("HTTP %d %s, want %d %s", got.status, got.body, tc.status, tc.code)
			}
			e := a.lastAudit()
			if tc.event == "" {
				if e.Seq != seqBefore {
					t.Errorf("a refusal wrote audit event %s", e.Type)
				}
				if strings.HasSuffix(tc.path, "/begin") && tc.code != "invalid_algorithm" && keys.calls != calls {
					t.Errorf("a refused begin made a key")
				}
				return
			}
			r := decode[api.CARotation](t, got.body)
			if r.Phase != tc.phase || r.Active == nil || r.Active.State != "active" {
				t.Fatalf("answer %s, want phase %s", got.body, tc.phase)
			}
			if e.Seq != seqBefore+1 || e.Type != tc.event || e.Actor != "api:admin-bot" || e.Fields["token_id"] != "st-admin" ||
				e.Fields["ca_kind"] != r.Kind || e.Fields["step"] != r.Step || e.Fields["ca"] == "" || !strings.HasPrefix(e.Fields["fingerprint"], "SHA256:") {
				t.Errorf("audit %+v, want one %s by api:admin-bot", e, tc.event)
			}
		})
	}
	if st := chainState(t, a, raftstore.CAUser, "web"); st.Phase != rotation.PhaseStable || st.Active.ID != oldUser.ID {
		t.Errorf("web's user CA after begin, promote, rollback, abort: %+v", st)
	}
	st := chainState(t, a, raftstore.CAHost, "")
	if st.Phase != rotation.PhaseStable || st.Active.ID == oldHost.ID || st.Active.Algorithm != "ecdsa-sha2-nistp256" {
		t.Errorf("host CA after a whole rotation: %+v", st.Active)
	}
	if _, rec, _ := a.store.State().CAByID(nil, oldHost.ID); rec.State != raftstore.CARetired {
		t.Errorf("old host CA %s", rec.State)
	}
	if st := chainState(t, a, raftstore.CANodeHost, ""); st.Phase != rotation.PhaseStaged || !strings.HasPrefix(st.Waiting.ID, "node-host-ca-") {
		t.Errorf("node host CA after begin: %+v", st)
	}
}

// TestV1CARotationNoKeys: a node that cannot make CA keys refuses begin
// with 503 no_ca_keys, and nothing is written.
func TestV1CARotationNoKeys(t *testing.T) {
	a, _ := newCARotationAPI(t, false)
	seq := a.lastAudit().Seq
	got := a.call("admin", http.MethodPost, "/v1/ca/user/web/rotation/begin", "", false)
	if got.status != http.StatusServiceUnavailable || got.code() != "no_ca_keys" {
		t.Fatalf("HTTP %d %s", got.status, got.body)
	}
	if st := chainState(t, a, raftstore.CAUser, "web"); st.Phase != rotation.PhaseStable || a.lastAudit().Seq != seq {
		t.Fatalf("a refused begin changed something: %+v", st)
	}
}
