package gateway

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/backup"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Audit event types of the offline maintenance commands; their actor is the
// command.
const (
	EventClusterRestore = "cluster.restore"
	EventClusterRecover = "cluster.recover"
)

// ErrKEKMismatch: the key-encryption key does not open the CA keys of the
// state being restored.
var ErrKEKMismatch = errors.New("the key-encryption key does not open the CA keys in the backup")

// Restore builds a new one-node cluster in cfg.DataDir from the backup at
// from (docs/operations.md): before anything else it authenticates the
// backup with the backup key derived from cfg's key-encryption key (and
// checks its SHA-256), then refuses a data dir that is not empty, checks
// that the KEK opens the cluster CA and every SSH CA key in it, issues this
// node a certificate from the cluster CA, forgets every node of the old
// cluster (their certificates open nothing on the new one; they join again
// with a join token and an empty data dir), records this node, deletes the
// old cluster's join tokens and writes a new one. Enrollment tokens are
// kept. Then `rampartd` started over the same configuration serves the
// restored cluster. Nothing is left in the data dir when it fails.
func Restore(cfg *Config, logger *slog.Logger, out io.Writer, from string) (err error) {
	if from == "" {
		return errors.New("restore: name the backup file with --from FILE")
	}
	if cfg.Cluster.Join != "" || cfg.Cluster.JoinFile != "" {
		return errors.New("restore: a restored node starts a cluster of its own: drop --join (grow it with join tokens afterwards)")
	}
	if cfg.KEK == "" && cfg.KEKFile == "" {
		return errors.New("restore: give the key-encryption key of the cluster the backup was taken from (kek_file, --kek-file or RAMPART_KEK): the backup is authenticated with a key derived from it")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := dataDir(cfg.DataDir)
	n := &Node{cfg: cfg, logger: logger, out: out, dir: d, now: time.Now}
	if n.kek, err = n.loadKEK(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	key, err := n.kek.BackupKey()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	b, err := backup.Open(from, key)
	if errors.Is(err, backup.ErrUnauthentic) {
		return fmt.Errorf("restore: %w; nothing was restored: run restore with the KEK of the cluster that took the backup, and if it is that KEK, do not trust this file", err)
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer b.Close()
	undo, err := claimEmptyDir(d)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			undo()
		}
	}()
	if err := d.ensure(); err != nil {
		return err
	}
	if n.lock, err = d.lock(); err != nil {
		return err
	}
	defer n.lock.release()
	if n.id, err = d.nodeID(cfg.NodeID); err != nil {
		return err
	}
	var caPEM, certPEM, keyPEM []byte
	var joinToken string
	edit := func(st *raftstore.State) ([]raftstore.Command, error) {
		tca, err := openCAs(st, n.kek, n.now)
		if err != nil {
			return nil, err
		}
		if certPEM, keyPEM, err = n.issueOwnCert(tca); err != nil {
			return nil, err
		}
		caPEM = tca.CertPEM
		cmds, revoked, err := revokeJoinTokens(st)
		if err != nil {
			return nil, err
		}
		more, tok, err := n.takeOver(st, certPEM, api.Pin(tca.Cert), EventClusterRestore, map[string]string{
			"backup_index": strconv.FormatUint(b.Header.Index, 10), "backup_sha256": b.SHA256, "backup_node": b.Header.Node,
			"revoked_join_tokens": strconv.Itoa(revoked),
		})
		if err != nil {
			return nil, err
		}
		joinToken = tok
		return append(cmds, more...), nil
	}
	snap, err := b.Snapshot()
	if err != nil {
		return err
	}
	a := n.advertise()
	idx, err := raftstore.RestoreBackup(raftstore.Seed{Dir: d.path("raft"), NodeID: n.id, RaftAddr: a.Raft, Edit: edit, Logger: logger}, b.Header.Index, snap)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := errors.Join(n.saveTLS(caPEM, certPEM, keyPEM), d.writeFile([]byte(joinToken+"\n"), "join-token")); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	logger.Info("restored a backup as a new cluster", "node", n.id, "backup_index", b.Header.Index, "index", idx, "sha256", b.SHA256)
	fmt.Fprintf(out, "rampartd: restored cluster %s from %s (raft index %d, SHA-256 %s) as node %s, the only member.\n"+
		"  start it with rampartd and the same configuration; grow it with the join token in %s\n",
		b.Header.ClusterID, from, b.Header.Index, b.SHA256, n.id, d.path("join-token"))
	return nil
}

// Recover makes a stopped node whose cluster has lost its quorum the only
// member of its cluster, with all of its data (docs/operations.md): raft's
// configuration becomes this node alone, every other node's record is
// forgotten (their certificates open nothing; they join again with a join
// token and an empty data dir), and a new join token is written. Then
// `rampartd` started over the same configuration serves the cluster alone.
func Recover(cfg *Config, logger *slog.Logger, out io.Writer) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := dataDir(cfg.DataDir)
	if !d.exists("raft") || !d.exists("tls", "node.crt") {
		return fmt.Errorf("recover: %s holds no node (no raft state or node certificate): recover runs on the data dir of a node that was a member", d.path())
	}
	n := &Node{cfg: cfg, logger: logger, out: out, dir: d, now: time.Now}
	var err error
	if n.lock, err = d.lock(); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	defer n.lock.release()
	if n.id, err = d.nodeID(cfg.NodeID); err != nil {
		return err
	}
	caPEM, err := d.readFile("tls", "ca.crt")
	if err != nil {
		return err
	}
	certPEM, err := d.readFile("tls", "node.crt")
	if err != nil {
		return err
	}
	caCert, err := api.ParseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("recover: %s: %w", d.path("tls", "ca.crt"), err)
	}
	var joinToken string
	edit := func(st *raftstore.State) ([]raftstore.Command, error) {
		cmds, tok, err := n.takeOver(st, certPEM, api.Pin(caCert), EventClusterRecover, nil)
		joinToken = tok
		return cmds, err
	}
	a := n.advertise()
	idx, err := raftstore.Recover(raftstore.Seed{Dir: d.path("raft"), NodeID: n.id, RaftAddr: a.Raft, Edit: edit, Logger: logger})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := d.writeFile([]byte(joinToken+"\n"), "join-token"); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	logger.Info("recovered as the only member of the cluster", "node", n.id, "index", idx)
	fmt.Fprintf(out, "rampartd: node %s is now the only member of its cluster, with all of its data (raft index %d).\n"+
		"  start it with rampartd and the same configuration; grow it with the join token in %s\n",
		n.id, idx, d.path("join-token"))
	return nil
}

// takeOver returns the commands that make st this node's one-node cluster:
// every node record goes (the old nodes' certificates open nothing), this
// node's is written with the key of certPEM, a join token (7 days, this
// node's API address, the CA pin) is created, and the audit log says what
// happened (typ, with fields and the nodes forgotten). It returns the join
// token's text.
func (n *Node) takeOver(st *raftstore.State, certPEM []byte, caPin, typ string, fields map[string]string) ([]raftstore.Command, string, error) {
	cert, err := api.ParseCertPEM(certPEM)
	if err != nil {
		return nil, "", err
	}
	keyHash, err := raftstore.HashNodeKey(cert.PublicKey)
	if err != nil {
		return nil, "", err
	}
	_, nodes, err := st.Nodes(nil)
	if err != nil {
		return nil, "", err
	}
	now := n.now().UTC()
	var cmds []raftstore.Command
	var dropped []string
	for _, old := range nodes {
		if old.ID == n.id && old.KeyHash == keyHash {
			continue // a recovered node keeps its own record and key
		}
		cmds = append(cmds, &raftstore.NodeDelete{ID: old.ID})
		if old.ID != n.id {
			dropped = append(dropped, old.ID)
		}
	}
	a := n.advertise()
	cmds = append(cmds, &raftstore.NodeUpsert{Node: raftstore.Node{ID: n.id, RaftAddr: a.Raft, APIAddr: a.API, SSHAddr: a.SSH, KeyHash: keyHash}, Now: now})
	jt, err := api.NewToken(api.TokenJoin, []string{a.API}, caPin, rand.Reader)
	if err != nil {
		return nil, "", err
	}
	cmds = append(cmds, &raftstore.TokenCreate{Token: raftstore.Token{
		Hash: api.HashSecret(jt.Secret), Kind: raftstore.TokenKind(api.TokenJoin),
		Description: "join token of " + typ, ExpiresAt: now.Add(7 * 24 * time.Hour), UsesLeft: -1, CreatedBy: "rampartd",
	}, Now: now})
	f := map[string]string{"node": n.id, "dropped_nodes": strings.Join(dropped, ",")}
	for k, v := range fields {
		f[k] = v
	}
	cmds = append(cmds, &raftstore.AuditAppend{Events: []raftstore.AuditEventInput{{Time: now, Type: typ, Actor: "rampartd", Fields: f}}})
	return cmds, jt.String(), nil
}

// revokeJoinTokens returns the commands that delete every join token of st,
// and how many there are. A restored cluster is a new cluster: the old
// one's join tokens (its bootstrap token is valid for 7 days) must not make
// nodes of it; restore writes a join token of its own. Enrollment tokens are
// kept: they enroll agents into one project, operators bake them into
// provisioning, and the cluster CA their pin names is the same.
func revokeJoinTokens(st *raftstore.State) ([]raftstore.Command, int, error) {
	_, toks, err := st.Tokens(nil)
	if err != nil {
		return nil, 0, err
	}
	var cmds []raftstore.Command
	for _, t := range toks {
		if t.Kind == raftstore.TokenJoin {
			cmds = append(cmds, &raftstore.TokenDelete{Hash: t.Hash})
		}
	}
	return cmds, len(cmds), nil
}

// openCAs unseals the cluster CA and every SSH CA key of st with kek, and
// returns the cluster CA.
func openCAs(st *raftstore.State, kek *ca.KEK, now func() time.Time) (*ca.TLSCA, error) {
	_, meta, err := st.Meta(nil)
	if err != nil {
		return nil, err
	}
	tca, err := ca.LoadTLSCA([]byte(meta.TLSCACert), meta.TLSCAKeySealed, kek, now)
	if err != nil {
		return nil, fmt.Errorf("%w (the cluster CA: %v); start restore with the KEK of the cluster the backup was taken from", ErrKEKMismatch, err)
	}
	_, cas, err := st.CAs(nil)
	if err != nil {
		return nil, err
	}
	for _, r := range cas {
		if r.Kind == raftstore.CATLS {
			continue // the cluster CA, checked above from the meta row
		}
		if _, err := ca.OpenSSHCA(r.ID, r.SealedKey, kek); err != nil {
			return nil, fmt.Errorf("%w (%s CA %s: %v); start restore with the KEK of the cluster the backup was taken from", ErrKEKMismatch, r.Kind, r.ID, err)
		}
	}
	return tca, nil
}

// claimEmptyDir refuses a data dir that holds anything, and returns how to
// undo what a failed restore leaves in it.
func claimEmptyDir(d dataDir) (undo func(), err error) {
	entries, err := os.ReadDir(d.path())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return func() { os.RemoveAll(d.path()) }, nil
	case err != nil:
		return nil, fmt.Errorf("restore: data dir: %w", err)
	case len(entries) > 0:
		return nil, fmt.Errorf("restore: the data dir %s is not empty: restore builds a new node; give it an empty or new directory", d.path())
	}
	return func() {
		entries, _ := os.ReadDir(d.path())
		for _, e := range entries {
			os.RemoveAll(d.path(e.Name()))
		}
	}, nil
}
