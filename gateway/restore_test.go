package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/backup"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// memSink is a raft snapshot sink over a buffer (raft.SnapshotSink).
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

func newKEKText(t *testing.T) (string, *ca.KEK) {
	t.Helper()
	raw := make([]byte, ca.KEKSize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := ca.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw), k
}

// writeTestBackup writes a backup of a cluster whose CA keys are sealed
// under kek, with nodes n1 and r1 (an old node of the id the restore uses),
// and returns its path and the cluster CA.
func writeTestBackup(t *testing.T, kek *ca.KEK) (string, *ca.TLSCA) {
	t.Helper()
	f, err := raftstore.NewFSM(nil)
	if err != nil {
		t.Fatal(err)
	}
	tca, err := ca.NewTLSCA("c-test", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	sealedTLS, err := tca.SealKey(kek)
	if err != nil {
		t.Fatal(err)
	}
	_, sealedSSH, pub, err := ca.NewSSHCAKey("user-web-1", kek)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	oldKey := strings.Repeat("ab", 32)
	cmds := []raftstore.Command{
		&raftstore.ClusterInit{ClusterID: "c-test", Now: now, UIDStart: 70000, UIDEnd: 79999, GIDStart: 90000, GIDEnd: 99999, TLSCACert: string(tca.CertPEM), TLSCAKeySealed: sealedTLS},
		&raftstore.CAUpsert{Record: raftstore.CARecord{ID: "user-web-1", Kind: raftstore.CAUser, Project: "web", Algorithm: "ssh-ed25519", PublicKey: pub, SealedKey: sealedSSH, State: raftstore.CAActive}, Now: now},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "127.0.0.9:8300", KeyHash: oldKey}, Now: now},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "r1", RaftAddr: "127.0.0.8:8300", KeyHash: oldKey}, Now: now},
		&raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: now, Type: "admin.projects.create", Actor: "alice"}}},
	}
	for i, cmd := range cmds {
		buf, err := raftstore.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.ApplyCommand(uint64(i+1), buf); r.Err != nil {
			t.Fatalf("%T: %v", cmd, r.Err)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.backup")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := backup.Write(out, backup.Header{ClusterID: "c-test", Node: "n1", Index: 50, Term: 2, CreatedAt: now, Version: api.Version, Size: int64(sink.Len())}, &sink); err != nil {
		t.Fatal(err)
	}
	return path, tca
}

func restoreConfig(t *testing.T, kekText string) *Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := ln.Addr().String()
	ln.Close()
	return &Config{NodeID: "r1", DataDir: filepath.Join(t.TempDir(), "data"), KEK: kekText,
		Listen:  Addresses{SSH: "127.0.0.1:2222", API: "127.0.0.1:8443", Raft: raftAddr},
		Cluster: Cluster{NodeCertValidity: time.Hour}}
}

func TestRestoreRefuses(t *testing.T) {
	_, kek := newKEKText(t)
	path, _ := writeTestBackup(t, kek)
	otherText, _ := newKEKText(t)
	t.Run("fail/other-kek-leaves-nothing", func(t *testing.T) {
		cfg := restoreConfig(t, otherText)
		err := Restore(cfg, nil, io.Discard, path)
		if !errors.Is(err, ErrKEKMismatch) {
			t.Fatalf("Restore with another KEK = %v, want ErrKEKMismatch", err)
		}
		if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused restore left the data dir behind (%v)", err)
		}
	})
	t.Run("fail/data-dir-not-empty", func(t *testing.T) {
		kekText, _ := newKEKText(t)
		cfg := restoreConfig(t, kekText)
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "node-id"), []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Restore(cfg, nil, io.Discard, path); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("Restore into a used data dir = %v", err)
		}
	})
	t.Run("fail/checksum", func(t *testing.T) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		bad := filepath.Join(t.TempDir(), "bad.backup")
		if err := os.WriteFile(bad, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := restoreConfig(t, otherText)
		if err := Restore(cfg, nil, io.Discard, bad); !errors.Is(err, backup.ErrChecksum) {
			t.Fatalf("Restore of an altered backup = %v, want ErrChecksum", err)
		}
	})
}

func TestRestoreNewCluster(t *testing.T) {
	kekText, kek := newKEKText(t)
	path, tca := writeTestBackup(t, kek)
	cfg := restoreConfig(t, kekText)
	if err := Restore(cfg, nil, io.Discard, path); err != nil {
		t.Fatal(err)
	}
	d := dataDir(cfg.DataDir)
	caPEM, _ := d.readFile("tls", "ca.crt")
	certPEM, _ := d.readFile("tls", "node.crt")
	keyPEM, _ := d.readFile("tls", "node.key")
	if !bytes.Equal(caPEM, tca.CertPEM) {
		t.Fatal("the restored node does not keep the cluster CA")
	}
	nt, err := ca.NewNodeTLS(caPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatalf("the restored node's certificate: %v", err)
	}
	tokText, _ := d.readFile("join-token")
	tok, err := api.ParseToken(strings.TrimSpace(string(tokText)))
	if err != nil || tok.Kind != api.TokenJoin || tok.CAPin != tca.Pin() {
		t.Fatalf("join token %q: %+v, %v", tokText, tok, err)
	}
	s, err := raftstore.Open(raftstore.Config{NodeID: "r1", Dir: d.path("raft"), BindAddr: cfg.Listen.Raft,
		ServerTLS: nt.RaftServer, ClientTLS: nt.RaftClient,
		PeerID: func(c *x509.Certificate) (string, bool) {
			role, id, ok := api.Identity(c)
			return id, ok && role == api.RoleNode
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitForLeader(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	st := s.State()
	_, nodes, _ := st.Nodes(nil)
	ownHash, _ := raftstore.HashNodeKey(nt.Certificate().PublicKey)
	if len(nodes) != 1 || nodes[0].ID != "r1" || nodes[0].KeyHash != ownHash {
		t.Fatalf("restored nodes table = %+v, want r1 alone with its new key", nodes)
	}
	if _, cas, _ := st.CAs(nil); len(cas) != 1 || cas[0].ID != "user-web-1" {
		t.Fatalf("restored CAs = %+v", cas)
	}
	if _, tk, _ := st.TokenByHash(nil, api.HashSecret(tok.Secret)); tk == nil {
		t.Fatal("the join token is not in the restored state")
	}
	_, events, err := st.Audit(nil)
	if err != nil || len(events) != 2 || events[1].Type != EventClusterRestore || events[1].Fields["dropped_nodes"] != "n1" {
		t.Fatalf("restored audit log = %+v, %v", events, err)
	}
	if err := raftstore.VerifyAuditChain(events); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Apply(ctx, &raftstore.GroupUpsert{Name: "ops", Now: time.Now()}); err != nil {
		t.Fatalf("write to the restored cluster: %v", err)
	}
}
