package auditexport

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	gwca "github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// openBenchStore opens a real one-node raft store (bolt log on disk, an
// fsync per write) on 127.0.0.1, bootstrapped and leading.
func openBenchStore(b *testing.B) *raftstore.Store {
	tca, err := gwca.NewTLSCA("bench", time.Now)
	if err != nil {
		b.Fatal(err)
	}
	key, err := gwca.NewNodeKey()
	if err != nil {
		b.Fatal(err)
	}
	certPEM, err := tca.Issue(api.RoleNode, "n1", key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	keyPEM, err := api.EncodeKeyPEM(key)
	if err != nil {
		b.Fatal(err)
	}
	nt, err := gwca.NewNodeTLS(tca.CertPEM, certPEM, keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	s, err := raftstore.Open(raftstore.Config{NodeID: "n1", Dir: b.TempDir(), BindAddr: "127.0.0.1:0",
		ServerTLS: nt.RaftServer, ClientTLS: nt.RaftClient,
		PeerID: func(c *x509.Certificate) (string, bool) {
			role, id, ok := api.Identity(c)
			return id, ok && role == api.RoleNode
		}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Bootstrap(); err != nil {
		b.Fatal(err)
	}
	if err := s.WaitForLeader(30 * time.Second); err != nil {
		b.Fatal(err)
	}
	for !s.IsLeader() {
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// benchEvents is how many events one iteration writes: 4 writers, batches
// of 500 (as the node's audit writer batches them).
const (
	benchEvents  = 40000
	benchWriters = 4
	benchBatch   = 500
)

// writeEvents writes benchEvents events through raft from benchWriters
// writers and returns when all are committed.
func writeEvents(b *testing.B, s *raftstore.Store) {
	in := make([]raftstore.AuditEventInput, benchBatch)
	for i := range in {
		in[i] = raftstore.AuditEventInput{Time: time.Now().UTC(), Type: "session.open", Actor: "alice",
			Fields: map[string]string{"session": fmt.Sprintf("s-%d", i), "server": "web-1", "login": "alice", "from": "10.0.0.7:51022"}}
	}
	var wg sync.WaitGroup
	for range benchWriters {
		wg.Go(func() {
			for range benchEvents / benchWriters / benchBatch {
				if _, err := s.Apply(context.Background(), &raftstore.AuditAppend{Events: in}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkExportThroughput measures sustained audit events per second
// written through raft and, with a sink, delivered to it (the time until
// the sink's cursor reaches the last event written), side by side with the
// rate without one. Each iteration writes 40,000 events.
//
//	go test -run '^$' -bench ExportThroughput -benchtime 3x ./gateway/auditexport/
func BenchmarkExportThroughput(b *testing.B) {
	b.Run("no-sink", func(b *testing.B) {
		s := openBenchStore(b)
		var total time.Duration
		for b.Loop() {
			start := time.Now()
			writeEvents(b, s)
			total += time.Since(start)
		}
		b.ReportMetric(float64(benchEvents*b.N)/total.Seconds(), "events/s")
	})
	sinks := map[string]func(b *testing.B) Sink{
		"file": func(b *testing.B) Sink {
			return NewFileSink(filepath.Join(b.TempDir(), "a.jsonl"), 100<<20, 10)
		},
		"splunk-hec": func(b *testing.B) Sink {
			srv, _ := startHEC(b, "tok")
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			cfg := &SinkConfig{}
			tc, _ := cfg.tlsConfig()
			tc.RootCAs = pool
			return NewHECSink(srv.URL, "tok", "n1", "", "rampart:audit", "", tc, 10*time.Second)
		},
	}
	for _, name := range []string{"file", "splunk-hec"} {
		b.Run(name, func(b *testing.B) {
			s := openBenchStore(b)
			ctx, cancel := context.WithCancel(context.Background())
			e := New(Config{Store: s, Auditor: nopAuditor{}, Targets: []Target{{Name: "bench", Kind: name, Sink: sinks[name](b)}},
				NodeID: "n1", BatchSize: DefaultBatchSize})
			var wg sync.WaitGroup
			wg.Go(func() { e.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				writeEvents(b, s)
				_, h, _ := s.State().AuditLast(nil)
				for {
					_, c, _ := s.State().AuditExportCursorOf(nil, "bench")
					if c != nil && c.Seq >= h.Seq {
						break
					}
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
			}
			b.ReportMetric(float64(benchEvents*b.N)/total.Seconds(), "events/s")
		})
	}
}

type nopAuditor struct{}

func (nopAuditor) Record(string, string, map[string]string) {}
