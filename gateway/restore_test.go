package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// The secrets of the tokens in writeTestBackup's cluster.
const (
	oldJoinSecret   = "old-cluster-join-secret"
	oldEnrollSecret = "old-cluster-enroll-secret"
)

// writeTestBackup writes a backup of a cluster whose CA keys are sealed
// under kek, with nodes n1 and r1 (an old node of the id the restore uses),
// a join token and an enroll token, authenticated with kek's backup key,
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
		&raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: now, Type: "project.create", Actor: "alice"}}},
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.TokenCreate{Token: raftstore.Token{Hash: api.HashSecret(oldJoinSecret), Kind: raftstore.TokenJoin,
			ExpiresAt: now.Add(7 * 24 * time.Hour), UsesLeft: raftstore.UnlimitedUses, CreatedBy: "rampartd"}, Now: now},
		&raftstore.TokenCreate{Token: raftstore.Token{Hash: api.HashSecret(oldEnrollSecret), Kind: raftstore.TokenEnroll, Project: "web",
			ExpiresAt: now.Add(24 * time.Hour), UsesLeft: 5, CreatedBy: "alice"}, Now: now},
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
	key, err := kek.BackupKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Write(out, backup.Header{ClusterID: "c-test", Node: "n1", Index: 50, Term: 2, CreatedAt: now, Version: api.Version, Size: int64(sink.Len())}, key, &sink); err != nil {
		t.Fatal(err)
	}
	return path, tca
}

// forgeBackup rewrites the backup at path as someone who can write backup
// storage but holds no KEK would: edit changes the snapshot's rows, the
// snapshot's row count, the header's size and the SHA-256 are made to match,
// and the HMAC line is kept. It returns the forged file's path.
func forgeBackup(t *testing.T, path string, edit func(t *testing.T, rows []string) []string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines = lines[:len(lines)-1] // after the last newline: nothing
	var hdr backup.Header
	var tl map[string]string
	if err := errors.Join(json.Unmarshal([]byte(lines[0]), &hdr), json.Unmarshal([]byte(lines[len(lines)-1]), &tl)); err != nil {
		t.Fatal(err)
	}
	snapLines := lines[1 : len(lines)-1]
	var rows []string
	for _, l := range snapLines[1 : len(snapLines)-1] {
		rows = append(rows, strings.TrimSuffix(l, "\n"))
	}
	rows = edit(t, rows)
	var snap strings.Builder
	snap.WriteString(snapLines[0])
	for _, r := range rows {
		snap.WriteString(r + "\n")
	}
	fmt.Fprintf(&snap, `{"end":true,"rows":%d}`+"\n", len(rows))
	hdr.Size = int64(snap.Len())
	hline, _ := json.Marshal(hdr)
	body := string(hline) + "\n" + snap.String()
	sum := sha256.Sum256([]byte(body))
	tl["sha256"] = hex.EncodeToString(sum[:])
	tline, _ := json.Marshal(tl)
	forged := filepath.Join(t.TempDir(), "forged.backup")
	if err := os.WriteFile(forged, []byte(body+string(tline)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return forged
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
	kekText, kek := newKEKText(t)
	path, _ := writeTestBackup(t, kek)
	otherText, _ := newKEKText(t)
	t.Run("fail/other-kek-leaves-nothing", func(t *testing.T) {
		cfg := restoreConfig(t, otherText)
		err := Restore(cfg, nil, io.Discard, path)
		if !errors.Is(err, backup.ErrUnauthentic) || !strings.Contains(err.Error(), "key-encryption key is not the one") || !strings.Contains(err.Error(), "altered") {
			t.Fatalf("Restore with another KEK = %v, want ErrUnauthentic naming both causes", err)
		}
		if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused restore left the data dir behind (%v)", err)
		}
	})
	t.Run("fail/no-kek", func(t *testing.T) {
		cfg := restoreConfig(t, "")
		if err := Restore(cfg, nil, io.Discard, path); err == nil || !strings.Contains(err.Error(), "key-encryption key") {
			t.Fatalf("Restore without a KEK = %v", err)
		}
	})
	// Someone who can write backup storage changes the state and recomputes
	// the SHA-256; without the KEK they cannot recompute the HMAC.
	forgeries := []struct {
		name string
		edit func(t *testing.T, rows []string) []string
	}{
		{"fail/service-token-added", func(t *testing.T, rows []string) []string {
			row, err := json.Marshal(raftstore.ServiceToken{ID: "st-evil", Name: "evil", Hash: api.HashSecret("attacker-secret"), Role: "admin",
				CreatedBy: "alice", CreatedAt: time.Now().UTC()})
			if err != nil {
				t.Fatal(err)
			}
			return append(rows, `{"t":"service_tokens","r":`+string(row)+`}`)
		}},
		{"fail/token-row-changed", func(t *testing.T, rows []string) []string {
			// The enroll token made unlimited and everlasting.
			changed := 0
			for i, r := range rows {
				var rec struct {
					T string          `json:"t"`
					R json.RawMessage `json:"r"`
				}
				var tok raftstore.Token
				if err := json.Unmarshal([]byte(r), &rec); err != nil || rec.T != "tokens" {
					continue
				}
				if err := json.Unmarshal(rec.R, &tok); err != nil {
					t.Fatal(err)
				}
				if tok.Kind != raftstore.TokenEnroll {
					continue
				}
				tok.UsesLeft, tok.ExpiresAt = raftstore.UnlimitedUses, time.Time{}
				row, _ := json.Marshal(tok)
				rows[i] = `{"t":"tokens","r":` + string(row) + `}`
				changed++
			}
			if changed != 1 {
				t.Fatalf("%d enroll token rows changed, want 1", changed)
			}
			return rows
		}},
	}
	for _, fc := range forgeries {
		t.Run(fc.name, func(t *testing.T) {
			forged := forgeBackup(t, path, fc.edit)
			cfg := restoreConfig(t, kekText)
			err := Restore(cfg, nil, io.Discard, forged)
			if !errors.Is(err, backup.ErrUnauthentic) {
				t.Fatalf("Restore of a backup changed and re-summed = %v, want ErrUnauthentic", err)
			}
			if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused restore left the data dir behind (%v)", err)
			}
		})
	}
	t.Run("fail/data-dir-not-empty", func(t *testing.T) {
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
		cfg := restoreConfig(t, kekText)
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
	// The old cluster's join token makes no node of the new one; its
	// enrollment token still enrolls agents.
	if _, tk, _ := st.TokenByHash(nil, api.HashSecret(oldJoinSecret)); tk != nil {
		t.Fatalf("the backup's join token survives the restore: %+v", tk)
	}
	if _, tk, _ := st.TokenByHash(nil, api.HashSecret(oldEnrollSecret)); tk == nil || tk.Kind != raftstore.TokenEnroll || tk.UsesLeft != 5 {
		t.Fatalf("the backup's enrollment token after the restore: %+v", tk)
	}
	_, events, err := st.Audit(nil)
	if err != nil || len(events) != 2 || events[1].Type != EventClusterRestore || events[1].Fields["dropped_nodes"] != "n1" || events[1].Fields["revoked_join_tokens"] != "1" {
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
