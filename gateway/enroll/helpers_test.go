package enroll

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// issued is one IssueTLS call.
type issued struct {
	role, id string
	ips      []net.IP
	validity time.Duration
}

// fakeCertifier issues real TLS certificates from a throwaway cluster CA,
// stands in fake host certificates, and creates user CAs in the store.
type fakeCertifier struct {
	store *raftstoretest.Store
	tca   *ca.TLSCA
	kek   *ca.KEK
	// hostCAKey is the target host CA key TargetHostCerts returns.
	hostCAKey string
	// err, when set, fails every call.
	err error

	mu        sync.Mutex
	issued    []issued
	hostCerts map[string]time.Duration // server name → validity asked for
	userCAs   []string
}

func newFakeCertifier(t *testing.T, store *raftstoretest.Store, now func() time.Time) *fakeCertifier {
	t.Helper()
	tca, err := ca.NewTLSCA("c-test", now)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	kek, err := ca.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	hostCA, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(hostCA)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeCertifier{store: store, tca: tca, kek: kek, hostCAKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub))),
		hostCerts: map[string]time.Duration{}}
}

func (c *fakeCertifier) TargetHostCerts(srv *raftstore.Server, keys []gossh.PublicKey, validity time.Duration) ([]string, string, error) {
	if c.err != nil {
		return nil, "", c.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hostCerts[srv.Name] = validity
	var out []string
	for i := range keys {
		out = append(out, fmt.Sprintf("host-cert %s %d", srv.Name, i))
	}
	return out, c.hostCAKey, nil
}

func (c *fakeCertifier) IssueTLS(role, id string, pub crypto.PublicKey, ips []net.IP, dnsNames []string, validity time.Duration) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	c.mu.Lock()
	c.issued = append(c.issued, issued{role: role, id: id, ips: ips, validity: validity})
	c.mu.Unlock()
	certPEM, err := c.tca.Issue(role, id, pub, ips, dnsNames, validity)
	if err != nil {
		return nil, fault.Errorf(http.StatusBadRequest, "%v", err)
	}
	return certPEM, nil
}

func (c *fakeCertifier) EnsureUserCA(ctx context.Context, project string) error {
	if c.err != nil {
		return c.err
	}
	c.mu.Lock()
	c.userCAs = append(c.userCAs, project)
	c.mu.Unlock()
	if _, rec, err := c.store.State().ActiveCA(nil, raftstore.CAUser, project); err != nil || rec != nil {
		return err
	}
	id := "user-" + project
	_, sealed, pub, err := ca.NewSSHCAKey(id, c.kek)
	if err != nil {
		return err
	}
	_, err = c.store.Apply(ctx, &raftstore.CAUpsert{Record: raftstore.CARecord{
		ID: id, Kind: raftstore.CAUser, Project: project, Algorithm: gossh.KeyAlgoED25519, PublicKey: pub, SealedKey: sealed, State: raftstore.CAActive,
	}, Now: time.Now().UTC()})
	return err
}

// event is one audit record.
type event struct {
	typ, actor string
	fields     map[string]string
}

// recorder keeps audit records.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) Record(typ, actor string, fields map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{typ: typ, actor: actor, fields: fields})
}

// last returns the last record of typ, or nil.
func (r *recorder) last(typ string) *event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.events) - 1; i >= 0; i-- {
		if r.events[i].typ == typ {
			return &r.events[i]
		}
	}
	return nil
}

// fixture is an enrollment service over a cluster with project web, a
// node n1 (10.9.0.1, bastion.example.com), and the clock at now.
type fixture struct {
	store *raftstoretest.Store
	certs *fakeCertifier
	audit *recorder
	svc   *Service
	now   time.Time
}

var testNow = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	fx := &fixture{store: raftstoretest.New(t), audit: &recorder{}, now: testNow}
	clock := func() time.Time { return fx.now }
	fx.certs = newFakeCertifier(t, fx.store, clock)
	sealed, err := fx.certs.tca.SealKey(fx.certs.kek)
	if err != nil {
		t.Fatal(err)
	}
	fx.apply(t,
		&raftstore.ClusterInit{ClusterID: "c-test", Now: testNow, UIDStart: raftstore.DefaultUIDStart, UIDEnd: raftstore.DefaultUIDEnd,
			GIDStart: raftstore.DefaultGIDStart, GIDEnd: raftstore.DefaultGIDEnd, TLSCACert: string(fx.certs.tca.CertPEM), TLSCAKeySealed: sealed},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "10.9.0.1:8300", APIAddr: "10.9.0.1:8443", SSHAddr: "10.9.0.1:2222",
			HostNames: []string{"bastion.example.com"}}, Now: testNow},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: testNow},
	)
	if cfg.NodeID == "" {
		cfg.NodeID = "n1"
	}
	fx.svc = New(fx.store, fx.certs, fx.audit, cfg, clock, slog.New(slog.DiscardHandler))
	return fx
}

func (fx *fixture) apply(t *testing.T, cmds ...raftstore.Command) {
	t.Helper()
	for _, cmd := range cmds {
		if _, err := fx.store.Apply(t.Context(), cmd); err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
	}
}

// token creates an enrollment token for project and returns its secret.
func (fx *fixture) token(t *testing.T, project string, uses int, expires time.Time) string {
	t.Helper()
	secret := fmt.Sprintf("rpe_secret-%d-%s", fx.store.Applied(), project)
	fx.apply(t, &raftstore.TokenCreate{Token: raftstore.Token{Hash: api.HashSecret(secret), Kind: raftstore.TokenEnroll, Project: project,
		UsesLeft: uses, ExpiresAt: expires}, Now: testNow})
	return secret
}

// usesLeft is the uses left of the token of secret, -2 when it is gone.
func (fx *fixture) usesLeft(t *testing.T, secret string) int {
	t.Helper()
	_, tok, err := fx.store.State().TokenByHash(nil, api.HashSecret(secret))
	if err != nil {
		t.Fatal(err)
	}
	if tok == nil {
		return -2
	}
	return tok.UsesLeft
}

// server returns the enrolled server named name, or nil.
func (fx *fixture) server(t *testing.T, name string) *raftstore.Server {
	t.Helper()
	_, srv, err := fx.store.State().ServerByAddress(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// agentKeyPEM is a fresh agent or node public key, PEM-encoded.
func agentKeyPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// hostKeyLine is a fresh host key in authorized_keys form.
func hostKeyLine(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k)))
}
