package authority

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

func TestNodeCertWait(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	twoYears := 2 * 365 * 24 * time.Hour
	for _, tc := range []struct {
		name     string
		obtained time.Time
		notAfter time.Time
		now      time.Time
		failures int
		want     time.Duration
	}{
		{"ok/fresh-two-years", t0, t0.Add(twoYears), t0, 0, twoYears * 2 / 3},
		{"ok/one-third-in", t0, t0.Add(30 * time.Second), t0.Add(10 * time.Second), 0, 10 * time.Second},
		{"due/two-thirds-in", t0, t0.Add(30 * time.Second), t0.Add(20 * time.Second), 0, 0},
		{"due/expired", t0, t0.Add(30 * time.Second), t0.Add(time.Hour), 0, 0},
		{"retry/first", t0, t0.Add(twoYears), t0.Add(twoYears * 3 / 4), 1, time.Second},
		{"retry/capped", t0, t0.Add(twoYears), t0.Add(twoYears * 3 / 4), 20, nodeCertRetryMax},
		{"retry/quarter-of-what-is-left", t0, t0.Add(30 * time.Second), t0.Add(26 * time.Second), 5, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nodeCertWait(tc.obtained, tc.notAfter, tc.now, tc.failures); got != tc.want {
				t.Errorf("nodeCertWait = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestNodeCertRenewalHotSwap: a listener built from the node's TLS
// configuration before the renewal presents the renewed certificate at the
// next handshake, and a client presents it too.
func TestNodeCertRenewalHotSwap(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	kek, err := ca.NewKEK(bytes.Repeat([]byte{7}, 32))
	fatal(t, err)
	tca, err := ca.NewTLSCA("c-test", clock)
	fatal(t, err)
	sealed, err := tca.SealKey(kek)
	fatal(t, err)
	key, err := ca.NewNodeKey()
	fatal(t, err)
	keyPEM, err := api.EncodeKeyPEM(key)
	fatal(t, err)
	certPEM, err := tca.Issue(api.RoleNode, "n1", key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, nil, 30*time.Second)
	fatal(t, err)
	dir := &memFiles{key: keyPEM, cert: certPEM}
	nt, err := ca.NewNodeTLS(tca.CertPEM, certPEM, keyPEM)
	fatal(t, err)
	first := nt.Certificate()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", nt.RaftServer)
	fatal(t, err)
	defer ln.Close()
	seen := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				seen <- tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
			}
			tc.Close()
		}
	}()
	handshake := func() (server, client string) {
		t.Helper()
		c, err := tls.Dial("tcp", ln.Addr().String(), nt.RaftClient.Clone())
		fatal(t, err)
		defer c.Close()
		fatal(t, c.Handshake())
		_, _ = io.ReadAll(c)
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), <-seen
	}
	if s, c := handshake(); s != first.SerialNumber.String() || c != s {
		t.Fatalf("before renewal: server presented %s, client %s; want %s", s, c, first.SerialNumber)
	}

	cluster := newMemCluster(t)
	cluster.mustApply(&raftstore.ClusterInit{ClusterID: "c-test", Now: now, UIDStart: 10000, UIDEnd: 20000, GIDStart: 10000, GIDEnd: 20000,
		TLSCACert: string(tca.CertPEM), TLSCAKeySealed: sealed})
	a := testAuthority(t, cluster.node(), kek, func() time.Time { return now.Add(25 * time.Second) })
	r := a.NodeCertRenewer(nt, dir, 30*time.Second, now, func(string, map[string]string) {})
	fatal(t, r.renewOnce())
	renewed := nt.Certificate()
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 || !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate: serial %s until %s; first %s until %s", renewed.SerialNumber, renewed.NotAfter, first.SerialNumber, first.NotAfter)
	}
	if !renewed.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(first.PublicKey) {
		t.Error("the renewed certificate is not for the node's key")
	}
	if s, c := handshake(); s != renewed.SerialNumber.String() || c != s {
		t.Fatalf("after renewal: server presented %s, client %s; want %s", s, c, renewed.SerialNumber)
	}
	stored := dir.stored()
	if c, err := api.ParseCertPEM(stored); err != nil || c.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("tls/node.crt holds %v (%v), want the renewed certificate", c.SerialNumber, err)
	}
	if !r.obtained.Equal(now.Add(25 * time.Second)) {
		t.Errorf("obtained = %s, want the renewal time", r.obtained)
	}
}

// memFiles holds the node's key and certificate as the data directory would.
type memFiles struct {
	mu        sync.Mutex
	key, cert []byte
}

func (f *memFiles) ReadKey() ([]byte, error) { return f.key, nil }

func (f *memFiles) WriteCert(certPEM []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cert = certPEM
	return nil
}

func (f *memFiles) stored() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cert
}

func fatal(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
