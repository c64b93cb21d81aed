package authority

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testKEK(t *testing.T) *ca.KEK {
	t.Helper()
	k, err := ca.NewKEK(bytes.Repeat([]byte{9}, ca.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newUserCA makes a user CA key of project as a record to upsert.
func newUserCA(t *testing.T, kek *ca.KEK, id, project, alg string, state raftstore.CAState) raftstore.CARecord {
	t.Helper()
	c, sealed, pub, err := ca.NewSSHCAKeyAlg(id, alg, kek)
	if err != nil {
		t.Fatal(err)
	}
	return raftstore.CARecord{ID: id, Kind: raftstore.CAUser, Project: project, Algorithm: c.Signer.PublicKey().Type(),
		PublicKey: pub, SealedKey: sealed, State: state}
}

// fsm is a raftstore FSM driven without raft, as a log replay would.
type fsm struct {
	t *testing.T
	f *raftstoretest.Store
}

func newFSM(t *testing.T) *fsm {
	return &fsm{t: t, f: raftstoretest.New(t)}
}

func (s *fsm) apply(cmds ...raftstore.Command) {
	s.t.Helper()
	for _, cmd := range cmds {
		if err := cmd.Validate(); err != nil {
			s.t.Fatalf("planned command does not validate: %v", err)
		}
		s.f.MustApply(s.t, cmd)
	}
}

func (s *fsm) users(project string) []*raftstore.CARecord {
	s.t.Helper()
	_, recs, err := s.f.State().CAsFor(nil, raftstore.CAUser, project)
	if err != nil {
		s.t.Fatal(err)
	}
	return recs
}

func (s *fsm) plan(project string, step Step, newKey *raftstore.CARecord, now time.Time) {
	s.t.Helper()
	cmds, err := Plan(s.users(project), raftstore.CAUser, project, step, newKey, now)
	if err != nil {
		s.t.Fatalf("%s: %v", step, err)
	}
	for _, c := range cmds {
		s.apply(c)
	}
}

// activeSigner opens the active CA of project from its sealed record, as any
// node would.
func (s *fsm) activeSigner(kek *ca.KEK, project string) *ca.SSHCA {
	s.t.Helper()
	_, rec, err := s.f.State().ActiveCA(nil, raftstore.CAUser, project)
	if err != nil || rec == nil {
		s.t.Fatalf("no active CA for %s: %v", project, err)
	}
	c, err := ca.OpenSSHCA(rec.ID, rec.SealedKey, kek)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

type conn struct{ user string }

func (c conn) User() string          { return c.user }
func (c conn) SessionID() []byte     { return nil }
func (c conn) ClientVersion() []byte { return nil }
func (c conn) ServerVersion() []byte { return nil }
func (c conn) RemoteAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000} }
func (c conn) LocalAddr() net.Addr   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 22} }

// verifies reports whether a target trusting exactly the lines accepts cert
// for alice at now.
func verifies(trusted []string, cert *ssh.Certificate, now time.Time) bool {
	var keys [][]byte
	for _, l := range trusted {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			return false
		}
		keys = append(keys, k.Marshal())
	}
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool {
			return slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, auth.Marshal()) })
		},
		Clock: func() time.Time { return now },
	}
	_, err := checker.Authenticate(conn{user: "alice"}, cert)
	return err == nil
}

func mint(t *testing.T, c *ca.SSHCA, project string, now time.Time) *ssh.Certificate {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.MintUser(ca.UserCertRequest{
		PublicKey: subject, UnixName: "alice", UserLogin: "alice@example.com", SessionID: "s1",
		Server: "web-1", Project: project, SourceAddresses: []string{"127.0.0.1"}, TTL: time.Hour,
	}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestRotationKeepsLoginsWorking walks a full rotation through the real FSM:
// at every stage a certificate from the then-active key verifies against the
// trusted set, the old key's certificates keep verifying until retire, and
// never after.
func TestRotationKeepsLoginsWorking(t *testing.T) {
	for _, algs := range [][2]string{
		{ca.SSHAlgED25519, ca.SSHAlgED25519},
		{ca.SSHAlgED25519, ca.SSHAlgECDSAP256},
		{ca.SSHAlgECDSAP256, ca.SSHAlgRSA3072},
	} {
		t.Run("ok/"+algs[0]+"-to-"+algs[1], func(t *testing.T) {
			if algs[1] == ca.SSHAlgRSA3072 && testing.Short() {
				t.Skip("RSA key generation is slow")
			}
			kek := testKEK(t)
			s := newFSM(t)
			now := t0
			a := newUserCA(t, kek, "payments-1", "payments", algs[0], raftstore.CAActive)
			s.apply(&raftstore.CAUpsert{Record: a, Now: now})
			// Another project's CA is never in payments' trusted set.
			s.apply(&raftstore.CAUpsert{Record: newUserCA(t, kek, "billing-1", "billing", algs[0], raftstore.CAActive), Now: now})
			billingCert := mint(t, s.activeSigner(kek, "billing"), "billing", now)

			phase := func(want Phase) {
				t.Helper()
				st, err := StateOf(s.users("payments"), raftstore.CAUser, "payments")
				if err != nil || st.Phase != want {
					t.Fatalf("phase = %v, %v; want %s", st.Phase, err, want)
				}
			}
			check := func(stage string, certs map[string]*ssh.Certificate, want map[string]bool) {
				t.Helper()
				trusted := TrustedUserCAKeys(s.users("payments"))
				fresh := mint(t, s.activeSigner(kek, "payments"), "payments", now)
				if !verifies(trusted, fresh, now) {
					t.Errorf("%s: a certificate from the active key does not verify", stage)
				}
				if verifies(trusted, billingCert, now) {
					t.Errorf("%s: billing's certificate verifies for payments", stage)
				}
				for name, cert := range certs {
					if got := verifies(trusted, cert, now); got != want[name] {
						t.Errorf("%s: %s's certificate verifies = %v, want %v", stage, name, got, want[name])
					}
				}
			}

			phase(PhaseStable)
			certA := mint(t, s.activeSigner(kek, "payments"), "payments", now)
			check("stable", map[string]*ssh.Certificate{"A": certA}, map[string]bool{"A": true})

			now = now.Add(time.Minute)
			b := newUserCA(t, kek, "payments-2", "payments", algs[1], "")
			s.plan("payments", Begin, &b, now)
			phase(PhaseStaged)
			if got := TrustedUserCAKeys(s.users("payments")); !slices.Equal(got, []string{a.PublicKey, b.PublicKey}) {
				t.Fatalf("staged trusted set = %q", got)
			}
			check("staged", map[string]*ssh.Certificate{"A": certA}, map[string]bool{"A": true})
			if s.activeSigner(kek, "payments").AuthorizedKey() != a.PublicKey {
				t.Fatal("begin changed the signer")
			}

			now = now.Add(time.Minute)
			s.plan("payments", Promote, nil, now)
			phase(PhasePromoted)
			if s.activeSigner(kek, "payments").AuthorizedKey() != b.PublicKey {
				t.Fatal("promote did not make B the signer")
			}
			certB := mint(t, s.activeSigner(kek, "payments"), "payments", now)
			check("promoted", map[string]*ssh.Certificate{"A": certA, "B": certB}, map[string]bool{"A": true, "B": true})

			now = now.Add(time.Minute)
			s.plan("payments", Retire, nil, now)
			phase(PhaseStable)
			if got := TrustedUserCAKeys(s.users("payments")); !slices.Equal(got, []string{b.PublicKey}) {
				t.Fatalf("retired trusted set = %q", got)
			}
			check("retired", map[string]*ssh.Certificate{"A": certA, "B": certB}, map[string]bool{"A": false, "B": true})

			// The retired key stays on record and cannot come back as new.
			again := a
			again.ID, again.State = "payments-3", ""
			if _, err := Plan(s.users("payments"), raftstore.CAUser, "payments", Begin, &again, now); !errors.Is(err, ErrNewKey) {
				t.Fatalf("begin with the retired key = %v, want ErrNewKey", err)
			}
		})
	}
}

// TestRotationAbortAndRollback: a staged key can be dropped before it signs,
// and a promotion undone while the previous key is still trusted.
func TestRotationAbortAndRollback(t *testing.T) {
	kek := testKEK(t)
	s := newFSM(t)
	a := newUserCA(t, kek, "p-1", "p", ca.SSHAlgED25519, raftstore.CAActive)
	s.apply(&raftstore.CAUpsert{Record: a, Now: t0})
	b := newUserCA(t, kek, "p-2", "p", ca.SSHAlgED25519, "")
	s.plan("p", Begin, &b, t0)
	s.plan("p", Promote, nil, t0)
	certB := mint(t, s.activeSigner(kek, "p"), "p", t0)

	s.plan("p", Rollback, nil, t0)
	st, err := StateOf(s.users("p"), raftstore.CAUser, "p")
	if err != nil || st.Phase != PhaseStaged || st.Active.ID != "p-1" || st.Waiting.ID != "p-2" {
		t.Fatalf("after rollback: %+v, %v", st, err)
	}
	if !verifies(TrustedUserCAKeys(s.users("p")), certB, t0) {
		t.Fatal("rollback stopped trusting B's certificates before abort")
	}
	s.plan("p", Abort, nil, t0)
	if got := TrustedUserCAKeys(s.users("p")); !slices.Equal(got, []string{a.PublicKey}) {
		t.Fatalf("after abort trusted = %q", got)
	}
	if verifies(TrustedUserCAKeys(s.users("p")), certB, t0) {
		t.Fatal("B's certificate still verifies after abort")
	}
}

func rec(id string, state raftstore.CAState, createIndex uint64) *raftstore.CARecord {
	return &raftstore.CARecord{ID: id, Kind: raftstore.CAUser, Project: "p", Algorithm: "ssh-ed25519",
		PublicKey: "key-" + id, SealedKey: []byte{1}, State: state, CreateIndex: createIndex, CreatedAt: t0}
}

func TestPlan(t *testing.T) {
	stable := []*raftstore.CARecord{rec("a", raftstore.CAActive, 5), rec("old", raftstore.CARetired, 2)}
	staged := []*raftstore.CARecord{rec("a", raftstore.CAActive, 5), rec("b", raftstore.CANext, 9)}
	promoted := []*raftstore.CARecord{rec("a", raftstore.CANext, 5), rec("b", raftstore.CAActive, 9)}
	newKey := func(edit func(*raftstore.CARecord)) *raftstore.CARecord {
		r := rec("c", "", 0)
		if edit != nil {
			edit(r)
		}
		return r
	}
	byTime := func() []*raftstore.CARecord { // no raft indexes: creation time decides
		a, b := rec("a", raftstore.CAActive, 0), rec("b", raftstore.CANext, 0)
		b.CreatedAt = t0.Add(time.Hour)
		return []*raftstore.CARecord{a, b}
	}
	cases := []struct {
		name       string
		records    []*raftstore.CARecord
		step       Step
		key        *raftstore.CARecord
		want       error
		wantID     string
		wantState  raftstore.CAState
		wantDemote raftstore.CAState
	}{
		{name: "ok/begin-from-stable", records: stable, step: Begin, key: newKey(nil), wantID: "c", wantState: raftstore.CANext},
		{name: "ok/begin-key-marked-next", records: stable, step: Begin, key: newKey(func(r *raftstore.CARecord) { r.State = raftstore.CANext }), wantID: "c", wantState: raftstore.CANext},
		{name: "ok/promote-staged", records: staged, step: Promote, wantID: "b", wantState: raftstore.CAActive, wantDemote: raftstore.CANext},
		{name: "ok/promote-staged-by-time", records: byTime(), step: Promote, wantID: "b", wantState: raftstore.CAActive, wantDemote: raftstore.CANext},
		{name: "ok/retire-promoted", records: promoted, step: Retire, wantID: "a", wantState: raftstore.CARetired},
		{name: "ok/abort-staged", records: staged, step: Abort, wantID: "b", wantState: raftstore.CARetired},
		{name: "ok/rollback-promoted", records: promoted, step: Rollback, wantID: "a", wantState: raftstore.CAActive, wantDemote: raftstore.CANext},

		{name: "fail/begin-while-staged", records: staged, step: Begin, key: newKey(nil), want: ErrStep},
		{name: "fail/begin-while-promoted", records: promoted, step: Begin, key: newKey(nil), want: ErrStep},
		{name: "fail/begin-without-active", records: nil, step: Begin, key: newKey(nil), want: ErrStep},
		{name: "fail/begin-without-key", records: stable, step: Begin, want: ErrNewKey},
		{name: "fail/begin-key-of-other-project", records: stable, step: Begin, key: newKey(func(r *raftstore.CARecord) { r.Project = "q" }), want: ErrNewKey},
		{name: "fail/begin-key-of-other-kind", records: stable, step: Begin, key: newKey(func(r *raftstore.CARecord) { r.Kind = raftstore.CAHost; r.Project = "" }), want: ErrNewKey},
		{name: "fail/begin-id-taken", records: stable, step: Begin, key: newKey(func(r *raftstore.CARecord) { r.ID = "old" }), want: ErrNewKey},
		{name: "fail/begin-retired-key-again", records: stable, step: Begin, key: newKey(func(r *raftstore.CARecord) { r.PublicKey = "key-old" }), want: ErrNewKey},
		{name: "fail/begin-key-already-active", records: stable, step: Begin, key: newKey(func(r *raftstore.CARecord) { r.State = raftstore.CAActive }), want: ErrNewKey},
		{name: "fail/begin-key-without-sealed-key", records: stable, step: Begin, key: newKey(func(r *raftstore.CARecord) { r.SealedKey = nil }), want: ErrNewKey},
		{name: "fail/promote-stable", records: stable, step: Promote, want: ErrStep},
		{name: "fail/promote-promoted", records: promoted, step: Promote, want: ErrStep},
		{name: "fail/promote-with-key", records: staged, step: Promote, key: newKey(nil), want: ErrStep},
		{name: "fail/retire-staged", records: staged, step: Retire, want: ErrStep},
		{name: "fail/retire-stable", records: stable, step: Retire, want: ErrStep},
		{name: "fail/abort-promoted", records: promoted, step: Abort, want: ErrStep},
		{name: "fail/rollback-staged", records: staged, step: Rollback, want: ErrStep},
		{name: "fail/unknown-step", records: stable, step: "restart", want: ErrStep},
		{name: "fail/two-active", records: []*raftstore.CARecord{rec("a", raftstore.CAActive, 5), rec("b", raftstore.CAActive, 9)}, step: Retire, want: ErrRecords},
		{name: "fail/next-without-active", records: []*raftstore.CARecord{rec("a", raftstore.CANext, 5)}, step: Promote, want: ErrRecords},
		{name: "fail/two-waiting", records: []*raftstore.CARecord{rec("a", raftstore.CAActive, 5), rec("b", raftstore.CANext, 9), rec("c", raftstore.CANext, 10)}, step: Promote, want: ErrRecords},
		{name: "fail/waiting-and-previous", records: []*raftstore.CARecord{rec("a", raftstore.CANext, 1), rec("b", raftstore.CAActive, 5), rec("c", raftstore.CANext, 10)}, step: Retire, want: ErrRecords},
		{name: "fail/same-age", records: []*raftstore.CARecord{rec("a", raftstore.CAActive, 0), rec("b", raftstore.CANext, 0)}, step: Promote, want: ErrRecords},
		{name: "fail/unknown-state", records: []*raftstore.CARecord{rec("a", raftstore.CAActive, 5), rec("b", "paused", 9)}, step: Promote, want: ErrRecords},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Records of other projects and kinds never change the answer.
			records := append(slices.Clone(tc.records),
				&raftstore.CARecord{ID: "q-1", Kind: raftstore.CAUser, Project: "q", State: raftstore.CAActive, PublicKey: "key-q1", CreateIndex: 1},
				&raftstore.CARecord{ID: "q-2", Kind: raftstore.CAUser, Project: "q", State: raftstore.CAActive, PublicKey: "key-q2", CreateIndex: 2},
				&raftstore.CARecord{ID: "host", Kind: raftstore.CAHost, State: raftstore.CAActive, PublicKey: "key-h", CreateIndex: 1})
			cmds, err := Plan(records, raftstore.CAUser, "p", tc.step, tc.key, t0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Plan = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			if len(cmds) != 1 {
				t.Fatalf("%d commands, want 1", len(cmds))
			}
			c := cmds[0]
			if c.Record.ID != tc.wantID || c.Record.State != tc.wantState || c.DemoteActiveTo != tc.wantDemote || !c.Now.Equal(t0) {
				t.Fatalf("command = %s→%s demote %q at %s; want %s→%s demote %q", c.Record.ID, c.Record.State, c.DemoteActiveTo, c.Now, tc.wantID, tc.wantState, tc.wantDemote)
			}
			for _, r := range tc.records { // Plan copies; the caller's records stay as read
				if r.ID == c.Record.ID && r.State == c.Record.State && tc.step != Begin {
					t.Fatal("Plan changed the records it was given")
				}
			}
		})
	}
}

func TestTrustedUserCAKeys(t *testing.T) {
	other := func(id string, state raftstore.CAState) *raftstore.CARecord {
		r := rec(id, state, 1)
		r.Project = "q"
		return r
	}
	host := &raftstore.CARecord{ID: "h", Kind: raftstore.CAHost, State: raftstore.CAActive, PublicKey: "key-h"}
	cases := []struct {
		name    string
		records []*raftstore.CARecord
		want    []string
	}{
		{"ok/active-only", []*raftstore.CARecord{rec("a", raftstore.CAActive, 1)}, []string{"key-a"}},
		{"ok/active-first-then-next", []*raftstore.CARecord{rec("a", raftstore.CANext, 1), rec("b", raftstore.CAActive, 2)}, []string{"key-b", "key-a"}},
		{"ok/retired-left-out", []*raftstore.CARecord{rec("a", raftstore.CARetired, 1), rec("b", raftstore.CAActive, 2), rec("c", raftstore.CANext, 3)}, []string{"key-b", "key-c"}},
		{"ok/host-ca-ignored", []*raftstore.CARecord{host, rec("a", raftstore.CAActive, 1)}, []string{"key-a"}},
		{"ok/nil-records-ignored", []*raftstore.CARecord{nil, rec("a", raftstore.CAActive, 1)}, []string{"key-a"}},
		{"fail/none", nil, nil},
		{"fail/only-retired", []*raftstore.CARecord{rec("a", raftstore.CARetired, 1)}, nil},
		{"fail/two-projects-mixed", []*raftstore.CARecord{rec("a", raftstore.CAActive, 1), other("x", raftstore.CAActive)}, nil},
		{"fail/unknown-state-not-trusted", []*raftstore.CARecord{rec("a", raftstore.CAActive, 1), rec("b", "paused", 2)}, []string{"key-a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := TrustedUserCAKeys(tc.records); !slices.Equal(got, tc.want) {
				t.Fatalf("TrustedUserCAKeys = %q, want %q", got, tc.want)
			}
		})
	}
	if got := TrustedCAKeys([]*raftstore.CARecord{host, rec("a", raftstore.CAActive, 1)}, raftstore.CAHost, ""); !slices.Equal(got, []string{"key-h"}) {
		t.Fatalf("TrustedCAKeys(host) = %q", got)
	}
}
