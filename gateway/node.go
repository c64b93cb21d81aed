package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/auditlog"
	"github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/console"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/enroll"
	"github.com/rampart-ssh/rampart/gateway/frontdoor"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/gateway/monitor"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Node is one running bastion node.
type Node struct {
	cfg    *Config
	logger *slog.Logger
	out    io.Writer
	dir    dataDir
	lock   *dirLock
	id     string
	kek    *ca.KEK
	// auditKey signs the audit log's checkpoints (derived from the KEK).
	auditKey ed25519.PrivateKey
	tls      *ca.NodeTLS
	store    *raftstore.Store
	api      *http.Server
	ssh      *frontdoor.Server
	jump     *jump.Proxy
	keys     *authority.Authority
	// consoleIndex is the console's search index (console.go).
	consoleIndex *console.Index
	// bgCtx is cancelled by stopBackground.
	bgCtx context.Context
	audit *auditlog.Writer
	// control makes administrators' changes; the API and the admin shell
	// are surfaces over it.
	control *control.Service
	// revalidation re-validates people with the IdP while this node leads
	// (its Stats feed the metrics).
	revalidation *login.Revalidator
	// stopBackground ends the node's background workers (the audit writer).
	stopBackground context.CancelFunc
	now            func() time.Time
	// metrics is the node's registry and each room's metrics (metrics.go).
	metrics *nodeMetrics
	// replicas copies recordings to other nodes and applies retention
	// (recordings.go).
	replicas *replica.Replicator
}

// Run starts a node and serves until ctx ends, then stops it cleanly. Messages
// meant for the operator (tokens, next steps) go to out.
func Run(ctx context.Context, cfg *Config, logger *slog.Logger, out io.Writer) error {
	n := &Node{cfg: cfg, logger: logger, out: out, dir: dataDir(cfg.DataDir), now: time.Now, metrics: newNodeMetrics(nil)}
	if err := n.start(ctx); err != nil {
		n.stop()
		return err
	}
	applyMemory(ctx, cfg.Memory, n.logger)
	<-ctx.Done()
	n.logger.Info("stopping node")
	return n.stop()
}

func (n *Node) start(ctx context.Context) error {
	if err := n.dir.ensure(); err != nil {
		return err
	}
	var err error
	if n.lock, err = n.dir.lock(); err != nil {
		return err
	}
	if n.id, err = n.dir.nodeID(n.cfg.NodeID); err != nil {
		return err
	}
	n.logger = n.logger.With("node", n.id)
	if n.kek, err = n.loadKEK(); err != nil {
		return err
	}
	backupKey, err := n.kek.BackupKey()
	if err != nil {
		return err
	}
	if n.auditKey, err = n.kek.AuditKey(); err != nil {
		return err
	}
	if err := n.ensureTLS(ctx); err != nil {
		return err
	}
	n.store, err = raftstore.Open(raftstore.Config{
		NodeID: n.id, Dir: n.dir.path("raft"),
		BindAddr: n.cfg.Listen.Raft, AdvertiseAddr: n.advertise().Raft,
		ServerTLS: n.tls.RaftServer, ClientTLS: n.tls.RaftClient,
		MaxStale: n.cfg.Cluster.MaxStale, Logger: n.logger, Metrics: n.metrics.raft,
		PeerID: func(c *x509.Certificate) (string, bool) {
			role, id, ok := api.Identity(c)
			return id, ok && role == api.RoleNode
		},
	})
	if err != nil {
		return err
	}
	n.watchStore()
	n.keys = authority.New(authority.Config{NodeID: n.id, Store: n.store, KEK: n.kek, HostNames: n.sshHostNames(), Now: n.now, Logger: n.logger,
		Metrics: n.metrics.authority})
	bg, cancel := context.WithCancel(context.Background())
	n.stopBackground, n.bgCtx = cancel, bg
	n.audit = auditlog.New(n.store, n.logger)
	n.audit.SetMetrics(n.metrics.audit)
	spillKey, spillErr := n.kek.AuditSpillKey()
	if spillErr == nil {
		spillErr = n.audit.SetSpill(n.dir.path("audit-spill"), n.cfg.Audit.SpillMaxBytes, spillKey)
	}
	go n.audit.Run(bg) // stop waits for it, also when the spill failed
	if spillErr != nil {
		return spillErr
	}
	if err := n.startAuditExport(bg); err != nil {
		return err
	}
	n.replicas = n.newReplicator()
	go n.replicas.Run(bg)
	go enroll.NewTokenSweeper(n.store, n.now, n.logger).Run(bg)
	go auditlog.NewPruner(n.store, n.auditKey, auditlog.Retention{MaxAge: n.cfg.Audit.Retention.MaxAge,
		MaxEvents: n.cfg.Audit.Retention.MaxEvents, Interval: n.cfg.Audit.Retention.Interval, ExportSinks: n.exportSinkNames()}, n.id, n.logger).Run(bg)
	go n.newNodeCertRenewer().Run(bg)
	n.control = control.New(control.Deps{Store: n.store, Members: n.store, Cluster: adminCluster{n}, Snapshots: n.store, BackupKey: backupKey, CAKeys: n.keys,
		Auditor: control.StoreAuditor{Store: n.store, Now: n.now}, Targets: n.targetRule(), Logger: n.logger, Now: n.now,
		AdminGroup: n.cfg.OIDC.AdminGroup, Notifier: n.requestNotifier(bg)})
	go n.control.RunAccessRequestExpiry(bg, n.store.IsLeader)
	if err := n.startPprof(); err != nil {
		return err
	}
	if err := n.startAPI(); err != nil {
		return err
	}
	if err := n.startMonitor(); err != nil {
		return err
	}
	if n.dir.exists("tls", "ca.key.sealed") {
		if err := n.bootstrap(ctx); err != nil {
			return err
		}
	}
	if n.dir.exists("join.json") {
		if err := n.becomeVoter(ctx); err != nil {
			return err
		}
	}
	go n.recordSelf(bg)
	if n.cfg.DevIdP.Enabled {
		if err := n.startDevIdP(bg); err != nil {
			return err
		}
	}
	if err := n.startFrontDoor(ctx); err != nil {
		return err
	}
	if n.cfg.Dev {
		n.printDevWelcome()
	}
	n.logger.Info("node started", "raft", n.advertise().Raft, "api", n.advertise().API, "ssh", n.advertise().SSH)
	return nil
}

func (n *Node) stop() error {
	var errs []error
	if n.ssh != nil {
		errs = append(errs, n.ssh.Close())
	}
	if n.replicas != nil {
		n.replicas.Close() // copies in flight are given up; peers keep them as partial
	}
	if n.stopBackground != nil {
		n.stopBackground()
		<-n.audit.Done()
	}
	if n.api != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errs = append(errs, n.api.Shutdown(sctx))
	}
	if n.consoleIndex != nil {
		errs = append(errs, n.consoleIndex.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	// Last: the next node on this directory may start once raft.db is shut.
	errs = append(errs, n.lock.release())
	return errors.Join(errs...)
}

// advertise returns the addresses other nodes dial, defaulting to the listen
// addresses.
func (n *Node) advertise() Addresses {
	a := n.cfg.Advertise
	if a.SSH == "" {
		a.SSH = n.cfg.Listen.SSH
	}
	if a.API == "" {
		a.API = n.cfg.Listen.API
	}
	if a.Raft == "" {
		a.Raft = n.cfg.Listen.Raft
	}
	return a
}

func (n *Node) loadKEK() (*ca.KEK, error) {
	switch {
	case n.cfg.KEK != "":
		k, err := ca.ParseKEK(n.cfg.KEK)
		if err != nil {
			return nil, fmt.Errorf("RAMPART_KEK: %w", err)
		}
		return k, nil
	case n.cfg.KEKFile != "":
		return ca.LoadKEKFile(n.cfg.KEKFile)
	}
	// Dev only (Validate refuses a production config without a KEK).
	path := n.dir.path("kek")
	if n.dir.exists("kek") {
		return ca.LoadKEKFile(path)
	}
	n.logger.Warn("dev mode: generated a key-encryption key in the data dir; production nodes take it from kek_file or RAMPART_KEK", "path", path)
	return ca.GenerateKEKFile(path, rand.Reader)
}

// ensureTLS loads the node's certificate, or makes the cluster CA (bootstrap)
// or obtains a certificate with the join token.
func (n *Node) ensureTLS(ctx context.Context) error {
	caPEM, err1 := n.dir.readFile("tls", "ca.crt")
	certPEM, err2 := n.dir.readFile("tls", "node.crt")
	keyPEM, err3 := n.dir.readFile("tls", "node.key")
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("read node TLS files: %w", err)
	}
	var err error
	if caPEM == nil || certPEM == nil || keyPEM == nil {
		switch {
		case n.cfg.Cluster.Bootstrap:
			caPEM, certPEM, keyPEM, err = n.createCluster()
		case n.cfg.Cluster.Join != "" || n.cfg.Cluster.JoinFile != "":
			caPEM, certPEM, keyPEM, err = n.join(ctx)
		default:
			return errors.New("this node belongs to no cluster yet: start the first node with --bootstrap and the others with --join TOKEN")
		}
		if err != nil {
			return err
		}
	}
	n.tls, err = ca.NewNodeTLS(caPEM, certPEM, keyPEM)
	return err
}

// certIPs lists the IPs the node certificate must name: those of every
// address other nodes or agents dial.
func (n *Node) certIPs() []net.IP {
	seen := map[string]bool{}
	var ips []net.IP
	a := n.advertise()
	for _, addr := range []string{a.Raft, a.API, n.cfg.Listen.Raft, n.cfg.Listen.API} {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err == nil && ip != nil && !ip.IsUnspecified() && !seen[ip.String()] {
			seen[ip.String()] = true
			ips = append(ips, ip)
		}
	}
	return ips
}

// issueOwnCert makes a key and has ca sign a node certificate for it.
func (n *Node) issueOwnCert(tca *ca.TLSCA) (certPEM, keyPEM []byte, err error) {
	key, err := ca.NewNodeKey()
	if err != nil {
		return nil, nil, err
	}
	if certPEM, err = tca.Issue(api.RoleNode, n.id, key.Public(), n.certIPs(), nil, n.nodeCertTTL()); err != nil {
		return nil, nil, err
	}
	keyPEM, err = api.EncodeKeyPEM(key)
	return certPEM, keyPEM, err
}

func (n *Node) saveTLS(caPEM, certPEM, keyPEM []byte) error {
	return errors.Join(n.dir.writeFile(caPEM, "tls", "ca.crt"), n.dir.writeFile(certPEM, "tls", "node.crt"), n.dir.writeFile(keyPEM, "tls", "node.key"))
}

// createCluster makes the cluster CA and this node's certificate. The CA key
// waits sealed in the data dir until bootstrap has written it to raft.
func (n *Node) createCluster() (caPEM, certPEM, keyPEM []byte, err error) {
	clusterID := "c-" + randomHex(6)
	tca, err := ca.NewTLSCA(clusterID, n.now)
	if err != nil {
		return nil, nil, nil, err
	}
	if certPEM, keyPEM, err = n.issueOwnCert(tca); err != nil {
		return nil, nil, nil, err
	}
	sealed, err := tca.SealKey(n.kek)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := n.dir.writeFile([]byte(clusterID+"\n"), "tls", "cluster-id"); err != nil {
		return nil, nil, nil, err
	}
	if err := n.dir.writeFile(sealed, "tls", "ca.key.sealed"); err != nil {
		return nil, nil, nil, err
	}
	return tca.CertPEM, certPEM, keyPEM, n.saveTLS(tca.CertPEM, certPEM, keyPEM)
}

// bootstrap makes this node a one-member cluster and writes the cluster's
// identity, its first join token and the bootstrap service token.
func (n *Node) bootstrap(ctx context.Context) error {
	if err := n.store.Bootstrap(); err != nil {
		return err
	}
	if err := n.store.WaitForLeader(30 * time.Second); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	sealed, err := n.dir.readFile("tls", "ca.key.sealed")
	if err != nil {
		return err
	}
	idBytes, err := n.dir.readFile("tls", "cluster-id")
	if err != nil {
		return err
	}
	caPEM, err := n.dir.readFile("tls", "ca.crt")
	if err != nil {
		return err
	}
	uidStart, uidEnd, _ := ParseRange(n.cfg.Cluster.UIDRange)
	gidStart, gidEnd, _ := ParseRange(n.cfg.Cluster.GIDRange)
	now := n.now().UTC()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := n.store.Apply(actx, &raftstore.ClusterInit{
		ClusterID: strings.TrimSpace(string(idBytes)), Now: now,
		UIDStart: uidStart, UIDEnd: uidEnd, GIDStart: gidStart, GIDEnd: gidEnd,
		TLSCACert: string(caPEM), TLSCAKeySealed: sealed,
		AuditKey: base64.StdEncoding.EncodeToString(n.auditKey.Public().(ed25519.PublicKey)),
	}); err != nil {
		return fmt.Errorf("bootstrap: record cluster identity: %w", err)
	}
	a := n.advertise()
	keyHash, err := n.ownKeyHash()
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if _, err := n.store.Apply(actx, &raftstore.NodeUpsert{Node: raftstore.Node{ID: n.id, RaftAddr: a.Raft, APIAddr: a.API, SSHAddr: a.SSH, KeyHash: keyHash}, Now: now}); err != nil {
		return fmt.Errorf("bootstrap: record node: %w", err)
	}
	if err := n.writeBootstrapSecrets(actx, caPEM); err != nil {
		return err
	}
	if err := os.Remove(n.dir.path("tls", "ca.key.sealed")); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	n.logger.Info("bootstrapped a new cluster")
	return nil
}

// writeBootstrapSecrets creates the first join token and an admin service
// token, and leaves each in a 0600 file in the data dir for the operator.
func (n *Node) writeBootstrapSecrets(ctx context.Context, caPEM []byte) error {
	caCert, err := api.ParseCertPEM(caPEM)
	if err != nil {
		return err
	}
	now := n.now().UTC()
	jt, err := api.NewToken(api.TokenJoin, []string{n.advertise().API}, api.Pin(caCert), rand.Reader)
	if err != nil {
		return err
	}
	if _, err := n.store.Apply(ctx, &raftstore.TokenCreate{Token: raftstore.Token{
		Hash: api.HashSecret(jt.Secret), Kind: raftstore.TokenKind(api.TokenJoin),
		Description: "bootstrap join token", ExpiresAt: now.Add(7 * 24 * time.Hour), UsesLeft: -1, CreatedBy: "bootstrap",
	}, Now: now}); err != nil {
		return fmt.Errorf("bootstrap: create join token: %w", err)
	}
	svc, err := api.NewSecret("rps_")
	if err != nil {
		return err
	}
	if _, err := n.store.Apply(ctx, &raftstore.ServiceTokenCreate{Token: raftstore.ServiceToken{
		ID: "bootstrap", Name: "bootstrap", Hash: api.HashSecret(svc), Role: "admin", CreatedBy: "bootstrap",
	}, Now: now}); err != nil {
		return fmt.Errorf("bootstrap: create service token: %w", err)
	}
	if err := errors.Join(n.dir.writeFile([]byte(jt.String()+"\n"), "join-token"), n.dir.writeFile([]byte(svc+"\n"), "bootstrap-token")); err != nil {
		return err
	}
	fmt.Fprintf(n.out, "rampartd: new cluster bootstrapped.\n  join token (valid 7 days):     %s\n  admin API token:              %s\n",
		n.dir.path("join-token"), n.dir.path("bootstrap-token"))
	return nil
}

// startAPI listens on the API address and serves the HTTPS API.
func (n *Node) startAPI() error {
	ln, err := net.Listen("tcp", n.cfg.Listen.API)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w", n.cfg.Listen.API, err)
	}
	handler := httpapi.New(n.store, n.newEnrollment(), n.logger)
	handler.SetRecordings(n.recordingFiles())
	handler.SetAdminEntitlement(n.cfg.Agents.AdminEntitlement)
	handler.SetClientSetup(n.jumpHost(), n.cfg.SSH.ClientHostPatterns)
	handler.SetAgentBinaryDir(n.cfg.Agents.BinaryDir)
	handler.SetControl(n.control)
	handler.SetAuditKey(n.auditKey.Public().(ed25519.PublicKey))
	handler.SetMetrics(n.metrics.api)
	handler.SetTokenLimit(n.cfg.API.TokenFailures.Every, n.cfg.API.TokenFailures.Burst)
	if err := handler.MountSCIM(n.control, n.cfg.SCIM.CreatesPerMinute); err != nil {
		return fmt.Errorf("scim: %w", err)
	}
	n.api = handler.HTTPServer(n.tls.API, httpapi.DefaultTimeouts, slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn))
	if n.api.Handler, err = n.startConsole(handler, n.api.Handler); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if n.cfg.Metrics.Listen == "" {
		// metrics, healthz and readyz share the API's listener.
		n.api.Handler = monitor.Route(n.cfg.Metrics.PathPrefix, n.monitorHandler(), n.api.Handler)
	}
	go func() {
		if err := n.api.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("API server stopped", "err", err)
		}
	}()
	return nil
}

// newEnrollment builds the node's enrollment and join service (one per
// node: it keeps the cloud identity verifiers between enrollments).
func (n *Node) newEnrollment() *enroll.Service {
	a := n.cfg.Agents
	return enroll.New(n.store, n.keys, n.audit, enroll.Config{
		NodeID: n.id, AgentCertValidity: a.CertValidity, HostCertValidity: a.HostCertValidity, NodeCertValidity: n.nodeCertTTL(),
		AWS: enroll.AWS(a.AWS), GCP: enroll.GCP(a.GCP), NodeHostNames: n.sshHostNames(), Targets: n.targetRule(),
	}, n.now, n.logger)
}

func randomHex(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// ownKeyHash is raftstore.HashNodeKey of this node's TLS certificate's key.
func (n *Node) ownKeyHash() (string, error) {
	leaf := n.tls.Certificate()
	if leaf == nil {
		return "", errors.New("the node certificate is not parsed")
	}
	return raftstore.HashNodeKey(leaf.PublicKey)
}

// recordSelf records this node's key in its node record when the record
// has none (a node that joined before keys were recorded), so that from then
// on only certificates for this key speak for it, and the names its front
// door's host certificate is for, which enrollment refuses to targets.
// Joins and bootstrap record the key themselves. It runs once per start,
// until it has written what was missing or ctx ends.
func (n *Node) recordSelf(ctx context.Context) {
	keyHash, err := n.ownKeyHash()
	if err != nil {
		n.logger.Error("record the node's key", "err", err)
		return
	}
	names := n.sshHostNames()
	slices.Sort(names)
	for ctx.Err() == nil {
		err := n.store.WaitForLeader(time.Minute)
		if err == nil {
			err = n.store.ConsistentRead(ctx)
		}
		var rec *raftstore.Node
		if err == nil {
			_, rec, err = n.store.State().NodeByID(nil, n.id)
		}
		if err == nil {
			if rec == nil || (rec.KeyHash != "" && slices.Equal(rec.HostNames, names)) {
				return // not a member (yet), or recorded already
			}
			up := *rec
			if up.KeyHash == "" {
				up.KeyHash = keyHash
			}
			up.HostNames = names
			_, err = n.store.Apply(ctx, &raftstore.NodeUpsert{Node: up, Existing: true, Now: n.now().UTC()})
			if err == nil {
				n.logger.Info("recorded the node's key and host names in its node record", "host_names", names)
				return
			}
			if errors.Is(err, raftstore.ErrNotFound) {
				return // removed meanwhile: the removal stands
			}
		}
		n.logger.Warn("record the node's key and host names; trying again", "err", err)
		t := time.NewTimer(10 * time.Second)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}
