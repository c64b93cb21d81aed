package authority

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Every issuance is counted by kind, with its latency; a failed one is
// counted as an error and not as minted.
func TestMintMetrics(t *testing.T) {
	kek := testKEK(t)
	c := newMemCluster(t)
	a := testAuthority(t, c.node(), kek, clockAt(t0))
	m := a.metrics
	srv := &raftstore.Server{ID: "srv-1", Name: "web-1", Addr: "10.0.0.5", ModifyIndex: 7}
	_, k1 := newSSHKey(t)
	if _, _, err := a.TargetHostCerts(srv, []gossh.PublicKey{k1}, time.Hour); err == nil {
		t.Fatal("TargetHostCerts without a host CA succeeded")
	}
	hostKey, _ := newSSHKey(t)
	if _, err := a.HostSigners(context.Background(), hostKey); err != nil {
		t.Fatal(err)
	}
	_, pub := newSSHKey(t)
	for range 2 {
		if _, err := a.MintUser(context.Background(), ca.UserCertRequest{PublicKey: pub, UnixName: "alice", UserLogin: "alice",
			SessionID: "s1", Server: "web-1", Project: "web", SourceAddresses: []string{"127.0.0.1"}, TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.InnerHostSigners(srv, "web-1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.TargetHostCerts(srv, []gossh.PublicKey{k1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	key, err := ca.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.IssueTLS(api.RoleAgent, "srv-1", key.Public(), nil, nil, time.Hour); err == nil {
		t.Fatal("IssueTLS before bootstrap succeeded")
	}
	for _, tc := range []struct {
		kind           string
		minted, errors float64
	}{{"user", 2, 0}, {"inner_host", 1, 0}, {"target_host", 1, 0}, {"tls", 0, 1}} {
		if got := testutil.ToFloat64(m.Minted.WithLabelValues(tc.kind)); got != tc.minted {
			t.Errorf("rampart_certificates_minted_total{kind=%q} = %v, want %v", tc.kind, got, tc.minted)
		}
		if got := testutil.ToFloat64(m.MintErrors.WithLabelValues(tc.kind)); got != tc.errors {
			t.Errorf("rampart_certificate_mint_errors_total{kind=%q} = %v, want %v", tc.kind, got, tc.errors)
		}
	}
	// One histogram series per kind minted (user, inner_host, target_host).
	if got := testutil.CollectAndCount(m.MintSeconds); got != 3 {
		t.Fatalf("rampart_certificate_mint_seconds has %d series, want 3", got)
	}
}

// Unsealed says why a node does not hold its CA keys: none in the replica
// yet, or keys sealed with another KEK; and nil once they all open.
func TestUnsealed(t *testing.T) {
	kek := testKEK(t)
	c := newMemCluster(t)
	a := testAuthority(t, c.node(), kek, clockAt(t0))
	if err := a.Unsealed(); err == nil || !strings.Contains(err.Error(), "cluster CA is not in the replica") {
		t.Fatalf("Unsealed before bootstrap = %v", err)
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
	if err := a.Unsealed(); err == nil || !strings.Contains(err.Error(), "no active host CA") {
		t.Fatalf("Unsealed without SSH CAs = %v", err)
	}
	hostKey, _ := newSSHKey(t)
	if _, err := a.HostSigners(context.Background(), hostKey); err != nil {
		t.Fatal(err)
	}
	if err := a.EnsureUserCA(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unsealed(); err != nil {
		t.Fatalf("Unsealed with every CA in place = %v", err)
	}
	// Another node of the same cluster started with the wrong KEK.
	other, err := ca.NewKEK(bytes.Repeat([]byte{7}, ca.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	wrong := New(Config{NodeID: "n2", Store: c.node(), KEK: other, Now: clockAt(t0), Logger: slog.New(slog.DiscardHandler)})
	if err := wrong.Unsealed(); err == nil || !strings.Contains(err.Error(), "unseal the cluster TLS CA") {
		t.Fatalf("Unsealed with the wrong KEK = %v", err)
	}
}
