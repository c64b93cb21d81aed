package authority

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

func clockAt(t time.Time) func() time.Time { return func() time.Time { return t } }

func newSSHKey(t *testing.T) (gossh.Signer, gossh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, s.PublicKey()
}

// activeCA reads the active CA of kind and project from the leader.
func activeCA(t *testing.T, c *memCluster, kind raftstore.CAKind, project string) *raftstore.CARecord {
	t.Helper()
	_, r, err := c.leader.State().ActiveCA(nil, kind, project)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// casOf reads every CA record of kind and project from the leader.
func casOf(t *testing.T, c *memCluster, kind raftstore.CAKind, project string) []*raftstore.CARecord {
	t.Helper()
	_, recs, err := c.leader.State().CAsFor(nil, kind, project)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// ensure makes the CA of kind exist through the authority's public methods:
// EnsureUserCA for a project's user CA, HostSigners for the two host CAs.
func ensure(ctx context.Context, t *testing.T, a *Authority, kind raftstore.CAKind, project string) (*ca.SSHCA, error) {
	t.Helper()
	switch kind {
	case raftstore.CAUser:
		return a.userCA(ctx, project)
	case raftstore.CAHost:
		return a.hostCA(ctx, kind, HostCAID)
	default:
		return a.hostCA(ctx, kind, NodeHostCAID)
	}
}

var caKinds = []struct {
	kind    raftstore.CAKind
	project string
	idLike  func(string) bool
}{
	{raftstore.CAUser, "web", func(id string) bool { return strings.HasPrefix(id, "user-web-") && len(id) == len("user-web-")+8 }},
	{raftstore.CAHost, "", func(id string) bool { return id == HostCAID }},
	{raftstore.CANodeHost, "", func(id string) bool { return id == NodeHostCAID }},
}

// TestCreateOnFirstUse: the first use creates one active ed25519 CA after a
// consistent read; later uses open it without writing or asking the leader.
func TestCreateOnFirstUse(t *testing.T) {
	kek := testKEK(t)
	for _, k := range caKinds {
		t.Run("ok/"+string(k.kind), func(t *testing.T) {
			c := newMemCluster(t)
			s := c.node()
			a := testAuthority(t, s, kek, clockAt(t0))
			got, err := ensure(context.Background(), t, a, k.kind, k.project)
			if err != nil {
				t.Fatal(err)
			}
			if applies, reads := s.counts(); applies != 1 || reads != 1 {
				t.Fatalf("first use: %d applies, %d consistent reads; want 1, 1", applies, reads)
			}
			recs := casOf(t, c, k.kind, k.project)
			if len(recs) != 1 {
				t.Fatalf("%d CA records, want 1", len(recs))
			}
			r := recs[0]
			if r.State != raftstore.CAActive || !k.idLike(r.ID) || r.Algorithm != gossh.KeyAlgoED25519 || r.PublicKey != got.AuthorizedKey() || !r.CreatedAt.Equal(t0) {
				t.Fatalf("record %s %s %s created %s, key %q; CA returned %s %q", r.ID, r.State, r.Algorithm, r.CreatedAt, r.PublicKey, got.ID, got.AuthorizedKey())
			}
			// Another node opens the same key from the sealed record.
			other := testAuthority(t, c.node(), kek, clockAt(t0))
			again, err := ensure(context.Background(), t, other, k.kind, k.project)
			if err != nil || again.AuthorizedKey() != r.PublicKey {
				t.Fatalf("second node: %v, key %q", err, again.AuthorizedKey())
			}
			if _, err := ensure(context.Background(), t, a, k.kind, k.project); err != nil {
				t.Fatal(err)
			}
			if applies, reads := s.counts(); applies != 1 || reads != 1 {
				t.Fatalf("after later uses: %d applies, %d consistent reads; want 1, 1", applies, reads)
			}
		})
	}
	t.Run("ok/user-ca-per-project", func(t *testing.T) {
		c := newMemCluster(t)
		a := testAuthority(t, c.node(), kek, clockAt(t0))
		for _, p := range []string{"web", "db"} {
			if err := a.EnsureUserCA(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
		web, db := activeCA(t, c, raftstore.CAUser, "web"), activeCA(t, c, raftstore.CAUser, "db")
		if web == nil || db == nil || web.PublicKey == db.PublicKey {
			t.Fatal("two projects do not have two user CAs")
		}
	})
	t.Run("fail/store-refuses", func(t *testing.T) {
		c := newMemCluster(t)
		s := c.node()
		a := testAuthority(t, s, kek, clockAt(time.Time{})) // CAUpsert refuses a zero time
		if err := a.EnsureUserCA(context.Background(), "web"); err == nil || errors.Is(err, raftstore.ErrConflict) {
			t.Fatalf("EnsureUserCA = %v, want the store's refusal", err)
		}
		if recs := casOf(t, c, raftstore.CAUser, "web"); len(recs) != 0 {
			t.Fatalf("%d CA records after a refusal", len(recs))
		}
	})
}

// TestCreateRace: nodes that all find no CA and all try to create one end
// with the one raft kept: the losers get ErrConflict, read again and use the
// winner's key.
func TestCreateRace(t *testing.T) {
	kek := testKEK(t)
	const nodes = 4
	for _, k := range caKinds {
		t.Run("ok/"+string(k.kind), func(t *testing.T) {
			c := newMemCluster(t)
			// Nobody applies before every node is about to: all have seen
			// no CA on the leader.
			var arrived sync.WaitGroup
			arrived.Add(nodes)
			stores := make([]*memStore, nodes)
			for i := range stores {
				stores[i] = c.node()
				var once sync.Once
				stores[i].beforeApply = func(raftstore.Command) {
					once.Do(func() { arrived.Done(); arrived.Wait() })
				}
			}
			keys := make([]string, nodes)
			errs := make([]error, nodes)
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Go(func() {
					got, err := ensure(context.Background(), t, testAuthority(t, s, kek, clockAt(t0)), k.kind, k.project)
					errs[i] = err
					if err == nil {
						keys[i] = got.AuthorizedKey()
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			recs := casOf(t, c, k.kind, k.project)
			if len(recs) != 1 {
				t.Fatalf("%d CA records after the race, want 1", len(recs))
			}
			for i, key := range keys {
				if key != recs[0].PublicKey {
					t.Errorf("node %d uses %q, raft kept %q", i, key, recs[0].PublicKey)
				}
				if applies, _ := stores[i].counts(); applies != 1 {
					t.Errorf("node %d: %d applies, want 1", i, applies)
				}
			}
			losers := 0
			for _, s := range stores {
				if _, reads := s.counts(); reads == 2 {
					losers++ // the check before creating, and the look after ErrConflict
				}
			}
			if losers != nodes-1 {
				t.Fatalf("%d nodes read again after losing, want %d", losers, nodes-1)
			}
		})
	}
	t.Run("ok/outcome-unknown-reads-again", func(t *testing.T) {
		c := newMemCluster(t)
		s := c.node()
		s.unknownOutcome = true
		a := testAuthority(t, s, kek, clockAt(t0))
		got, err := a.userCA(context.Background(), "web")
		if err != nil {
			t.Fatal(err)
		}
		if r := activeCA(t, c, raftstore.CAUser, "web"); r == nil || r.PublicKey != got.AuthorizedKey() {
			t.Fatal("the CA written with an unknown outcome is not the one used")
		}
		if applies, reads := s.counts(); applies != 1 || reads != 2 {
			t.Fatalf("%d applies, %d reads; want 1, 2", applies, reads)
		}
	})
}

// TestLaggingReplicaReadsBeforeCreating: a node whose replica has not caught
// up (after a restart) asks the leader before creating a CA, finds the one
// the cluster has and creates none.
func TestLaggingReplicaReadsBeforeCreating(t *testing.T) {
	kek := testKEK(t)
	for _, k := range caKinds {
		t.Run("ok/"+string(k.kind), func(t *testing.T) {
			c := newMemCluster(t)
			first, err := ensure(context.Background(), t, testAuthority(t, c.node(), kek, clockAt(t0)), k.kind, k.project)
			if err != nil {
				t.Fatal(err)
			}
			late := c.laggingNode()
			if _, r, _ := late.State().ActiveCA(nil, k.kind, k.project); r != nil {
				t.Fatal("the lagging replica already holds the CA")
			}
			got, err := ensure(context.Background(), t, testAuthority(t, late, kek, clockAt(t0)), k.kind, k.project)
			if err != nil {
				t.Fatal(err)
			}
			if got.AuthorizedKey() != first.AuthorizedKey() {
				t.Fatal("the lagging node uses another key than the cluster's")
			}
			if applies, reads := late.counts(); applies != 0 || reads != 1 {
				t.Fatalf("lagging node: %d applies, %d consistent reads; want 0, 1", applies, reads)
			}
			if recs := casOf(t, c, k.kind, k.project); len(recs) != 1 {
				t.Fatalf("%d CA records, want 1", len(recs))
			}
		})
	}
}

// TestMintUser: the jump's per-hop certificate comes from the project's user
// CA, created on first use.
func TestMintUser(t *testing.T) {
	c := newMemCluster(t)
	a := testAuthority(t, c.node(), testKEK(t), clockAt(t0))
	_, pub := newSSHKey(t)
	cert, err := a.MintUser(context.Background(), ca.UserCertRequest{PublicKey: pub, UnixName: "alice", UserLogin: "alice@example.com",
		SessionID: "s1", Server: "web-1", Project: "web", SourceAddresses: []string{"127.0.0.1"}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := activeCA(t, c, raftstore.CAUser, "web")
	if r == nil || authorizedLine(cert.SignatureKey) != r.PublicKey || !slices.Equal(cert.ValidPrincipals, []string{"alice"}) {
		t.Fatalf("certificate for %q signed by %q; web's user CA %v", cert.ValidPrincipals, authorizedLine(cert.SignatureKey), r)
	}
}

func authorizedLine(k gossh.PublicKey) string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))
}

// TestHostCertificates: the node's own host certificate is signed by the
// node host CA for exactly its host names; a target's by the target host CA
// for its names and address; the jump's inner key by the target host CA for
// what was typed too.
func TestHostCertificates(t *testing.T) {
	c := newMemCluster(t)
	a := testAuthority(t, c.node(), testKEK(t), clockAt(t0))
	srv := &raftstore.Server{ID: "srv-1", Name: "web-1", AltNames: []string{"Web-1.prod.example.com"}, Addr: "10.0.0.5:22", ModifyIndex: 7}
	_, k1 := newSSHKey(t)
	if _, _, err := a.TargetHostCerts(srv, []gossh.PublicKey{k1}, time.Hour); err == nil {
		t.Fatal("TargetHostCerts without a host CA succeeded")
	}

	hostKey, _ := newSSHKey(t)
	signers, err := a.HostSigners(context.Background(), hostKey)
	if err != nil {
		t.Fatal(err)
	}
	hostCA, nodeCA := activeCA(t, c, raftstore.CAHost, ""), activeCA(t, c, raftstore.CANodeHost, "")
	if hostCA == nil || nodeCA == nil || hostCA.ID != HostCAID || nodeCA.ID != NodeHostCAID || hostCA.PublicKey == nodeCA.PublicKey {
		t.Fatalf("host CAs after HostSigners: %v, %v", hostCA, nodeCA)
	}
	type want struct {
		keyID      string
		principals []string
		signedBy   string
		validity   time.Duration
	}
	check := func(name string, cert *gossh.Certificate, w want) {
		t.Helper()
		switch {
		case cert.CertType != gossh.HostCert || cert.KeyId != w.keyID:
			t.Errorf("%s: type %d key id %q, want host certificate %q", name, cert.CertType, cert.KeyId, w.keyID)
		case !slices.Equal(cert.ValidPrincipals, w.principals):
			t.Errorf("%s: principals %q, want %q", name, cert.ValidPrincipals, w.principals)
		case authorizedLine(cert.SignatureKey) != w.signedBy:
			t.Errorf("%s: signed by the wrong CA", name)
		case cert.ValidAfter != uint64(t0.Add(-time.Minute).Unix()) || cert.ValidBefore != uint64(t0.Add(w.validity).Unix()):
			t.Errorf("%s: valid %d..%d, want %s from a minute before %s", name, cert.ValidAfter, cert.ValidBefore, w.validity, t0)
		}
	}

	if len(signers) != 2 || authorizedLine(signers[0].PublicKey()) != authorizedLine(hostKey.PublicKey()) {
		t.Fatalf("HostSigners = %d signers, first not the plain host key", len(signers))
	}
	nodeCert, ok := signers[1].PublicKey().(*gossh.Certificate)
	if !ok {
		t.Fatal("the second signer is not a certificate")
	}
	check("node", nodeCert, want{"rampart node n1", testHostNames, nodeCA.PublicKey, NodeHostCertValidity})

	_, k2 := newSSHKey(t)
	lines, caKey, err := a.TargetHostCerts(srv, []gossh.PublicKey{k1, k2}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if caKey != hostCA.PublicKey || len(lines) != 2 {
		t.Fatalf("TargetHostCerts: %d certificates, CA key %q; want 2 and the target host CA", len(lines), caKey)
	}
	targetNames := []string{"web-1", "Web-1.prod.example.com", "web-1.prod.example.com", "10.0.0.5"}
	for i, line := range lines {
		pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		cert := pub.(*gossh.Certificate)
		check("target", cert, want{"rampart host web-1", targetNames, hostCA.PublicKey, 2 * time.Hour})
		if !slices.Equal(cert.Key.Marshal(), []gossh.PublicKey{k1, k2}[i].Marshal()) {
			t.Errorf("certificate %d is for another key", i)
		}
	}
	bad := *srv
	bad.AltNames = []string{"*.prod.example.com"}
	if _, _, err := a.TargetHostCerts(&bad, []gossh.PublicKey{k1}, time.Hour); !errors.Is(err, ca.ErrHostName) {
		t.Fatalf("TargetHostCerts with a wildcard name = %v, want ErrHostName", err)
	}

	inner, err := a.InnerHostSigners(srv, "web-1.prod.example.com")
	if err != nil || len(inner) != 2 {
		t.Fatalf("InnerHostSigners = %d signers, %v", len(inner), err)
	}
	check("inner", inner[1].PublicKey().(*gossh.Certificate),
		want{"rampart jump web-1", []string{"web-1.prod.example.com", "web-1", "Web-1.prod.example.com", "10.0.0.5"}, hostCA.PublicKey, innerHostCertValidity})
	again, err := a.InnerHostSigners(srv, "web-1.prod.example.com")
	if err != nil || again[1] != inner[1] {
		t.Fatal("a second jump within the cache window signed again")
	}
	hostKeys, err := a.HostCAKeys()
	if err != nil || len(hostKeys) != 1 || authorizedLine(hostKeys[0]) != hostCA.PublicKey {
		t.Fatalf("HostCAKeys = %d keys, %v; want the target host CA's only", len(hostKeys), err)
	}
}

// TestIssueTLS: agent and node certificates come from the cluster TLS CA in
// the replica, unsealed with the KEK.
func TestIssueTLS(t *testing.T) {
	kek := testKEK(t)
	c := newMemCluster(t)
	a := testAuthority(t, c.node(), kek, clockAt(t0))
	key, err := ca.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.IssueTLS(api.RoleAgent, "srv-1", key.Public(), nil, nil, time.Hour); !errors.Is(err, errNoClusterCA) {
		t.Fatalf("IssueTLS before bootstrap = %v, want errNoClusterCA", err)
	}
	tca, err := ca.NewTLSCA("c-test", clockAt(t0))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := tca.SealKey(kek)
	if err != nil {
		t.Fatal(err)
	}
	c.mustApply(&raftstore.ClusterInit{ClusterID: "c-test", Now: t0, UIDStart: 10000, UIDEnd: 20000, GIDStart: 10000, GIDEnd: 20000,
		TLSCACert: string(tca.CertPEM), TLSCAKeySealed: sealed})
	pool := x509.NewCertPool()
	pool.AddCert(tca.Cert)
	for _, tc := range []struct {
		name     string
		role, id string
		ips      []net.IP
		validity time.Duration
		usage    x509.ExtKeyUsage
	}{
		{"ok/agent", api.RoleAgent, "srv-1", nil, 90 * 24 * time.Hour, x509.ExtKeyUsageClientAuth},
		{"ok/node", api.RoleNode, "n2", []net.IP{net.IPv4(127, 0, 0, 2)}, 0, x509.ExtKeyUsageServerAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, err := a.IssueTLS(tc.role, tc.id, key.Public(), tc.ips, nil, tc.validity)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := api.ParseCertPEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
				t.Fatal(err)
			}
			validity := tc.validity
			if validity == 0 {
				validity = 2 * 365 * 24 * time.Hour
			}
			role, id, _ := api.Identity(cert)
			if role != tc.role || id != tc.id || !cert.NotAfter.Equal(t0.Add(validity)) || len(cert.IPAddresses) != len(tc.ips) {
				t.Fatalf("certificate for %s %s until %s with %v", role, id, cert.NotAfter, cert.IPAddresses)
			}
		})
	}
	t.Run("fail/bad-request", func(t *testing.T) {
		if _, err := a.IssueTLS("admin", "x", key.Public(), nil, nil, time.Hour); !errors.Is(err, ca.ErrCertRequest) {
			t.Fatalf("IssueTLS(admin) = %v, want ErrCertRequest", err)
		}
	})
	t.Run("fail/other-kek", func(t *testing.T) {
		other, err := ca.NewKEK(make([]byte, ca.KEKSize))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := testAuthority(t, c.node(), other, clockAt(t0)).IssueTLS(api.RoleAgent, "srv-1", key.Public(), nil, nil, time.Hour); err == nil {
			t.Fatal("a node with another KEK issued a certificate")
		}
	})
}

// TestWatchHostCA: when a rotation promotes a new node host CA key (or rolls
// back to the old one), the watcher re-signs the node's host key with it and
// hands the front door the new certificate.
func TestWatchHostCA(t *testing.T) {
	kek := testKEK(t)
	c := newMemCluster(t)
	s := c.node()
	a := testAuthority(t, s, kek, clockAt(t0))
	hostKey, _ := newSSHKey(t)
	signers, err := a.HostSigners(context.Background(), hostKey)
	if err != nil {
		t.Fatal(err)
	}
	first := signers[1].PublicKey().(*gossh.Certificate)
	certs := make(chan *gossh.Certificate, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.WatchHostCA(ctx, hostKey, string(gossh.MarshalAuthorizedKey(first.SignatureKey)), func(cert gossh.Signer) {
			certs <- cert.PublicKey().(*gossh.Certificate)
		})
	}()
	defer func() { cancel(); <-done }()

	step := func(st Step, newKey *raftstore.CARecord) {
		t.Helper()
		cmds, err := Plan(casOf(t, c, raftstore.CANodeHost, ""), raftstore.CANodeHost, "", st, newKey, t0)
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			c.mustApply(cmd)
		}
	}
	next := func(wantSigner string) {
		t.Helper()
		select {
		case cert := <-certs:
			if authorizedLine(cert.SignatureKey) != wantSigner || !slices.Equal(cert.ValidPrincipals, testHostNames) ||
				!slices.Equal(cert.Key.Marshal(), hostKey.PublicKey().Marshal()) || cert.KeyId != "rampart node n1" {
				t.Fatalf("re-signed certificate: signer %q principals %q key id %q", authorizedLine(cert.SignatureKey), cert.ValidPrincipals, cert.KeyId)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the watcher did not re-sign the host certificate")
		}
	}

	pub, sealed, alg, err := a.NewCAKey("node-host-ca-2", ca.SSHAlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	step(Begin, &raftstore.CARecord{ID: "node-host-ca-2", Kind: raftstore.CANodeHost, Algorithm: alg, PublicKey: pub, SealedKey: sealed})
	step(Promote, nil)
	next(pub)
	step(Rollback, nil)
	next(authorizedLine(first.SignatureKey))
	select {
	case cert := <-certs:
		t.Fatalf("an extra re-signing by %q", authorizedLine(cert.SignatureKey))
	default:
	}
}

// TestNoActiveNotRecreated: a chain that has keys but none active (broken
// by hand) is not silently given a fresh, unstaged signing key.
func TestNoActiveNotRecreated(t *testing.T) {
	kek := testKEK(t)
	c := newMemCluster(t)
	_, sealed, pub, err := ca.NewSSHCAKey("user-web-next", kek)
	if err != nil {
		t.Fatal(err)
	}
	c.mustApply(&raftstore.CAUpsert{Record: raftstore.CARecord{ID: "user-web-next", Kind: raftstore.CAUser, Project: "web",
		Algorithm: gossh.KeyAlgoED25519, PublicKey: pub, SealedKey: sealed, State: raftstore.CANext}, Now: t0})
	a := testAuthority(t, c.node(), kek, clockAt(t0))
	if err := a.EnsureUserCA(context.Background(), "web"); !errors.Is(err, ErrNoActiveCA) {
		t.Fatalf("EnsureUserCA = %v, want ErrNoActiveCA", err)
	}
	if recs := casOf(t, c, raftstore.CAUser, "web"); len(recs) != 1 || recs[0].State != raftstore.CANext {
		t.Fatalf("records after the refusal: %d", len(recs))
	}
}
