package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// ErrReenroll: the cluster no longer accepts this credential here (the server
// was removed, or the credential was copied to another machine).
var ErrReenroll = errors.New("this server must enroll again")

// Puller long-polls the cluster for the server's desired state, failing over
// between the cluster's nodes with backoff and jitter.
type Puller struct {
	id *Identity
	// cluster is the client the renewers share: it asks the nodes in addrs
	// and presents cred's current certificate.
	cluster *client.Client
	wait    time.Duration
	logger  *slog.Logger
	// addrs is where the cluster is, following its state responses.
	addrs *clusterAddrs
	// failed counts the failures since the last success: the first round
	// over the nodes goes quickly, backoff grows after that.
	failed  int
	backoff time.Duration
	// applied is the index of the newest state applied to the server,
	// reported on every poll (Applied).
	applied atomic.Uint64
	// cred presents the current certificate at every handshake (renew.go).
	cred *Credential
}

// NewPuller builds a puller over the agent's mutual-TLS credential. It
// finds the cluster where the last state response said it is (kept in the
// data dir), or at id.Cluster before the first.
func NewPuller(dataDir string, id *Identity, wait time.Duration, logger *slog.Logger) (*Puller, error) {
	return newPuller(dataDir, id, nil, wait, logger)
}

// newPuller is NewPuller with the configuration's cluster addresses, tried
// before the others.
func newPuller(dataDir string, id *Identity, configured []string, wait time.Duration, logger *slog.Logger) (*Puller, error) {
	addrs, err := loadClusterAddrs(dataDir, configured, id.Cluster)
	if err != nil {
		return nil, err
	}
	cred, err := LoadCredential(dataDir)
	if err != nil {
		return nil, err
	}
	cl, err := clusterClient(dataDir, id, cred, addrs.List, wait+30*time.Second)
	if err != nil {
		return nil, err
	}
	return &Puller{id: id, wait: wait, logger: logger, addrs: addrs, cred: cred, cluster: cl}, nil
}

// clusterClient is a client of the cluster over the agent's mutual-TLS
// credential: it trusts the cluster CA in dataDir, presents cred's current
// certificate at each handshake (a renewed one from the next on, pooled
// connections of an older one retired), and asks the nodes list names.
func clusterClient(dataDir string, id *Identity, cred *Credential, list func() []string, timeout time.Duration) (*client.Client, error) {
	roots, err := clusterRoots(dataDir)
	if err != nil {
		return nil, err
	}
	return client.New(nil, client.WithAddrs(list), client.WithRootCAs(roots), client.WithClientCertificate(cred.clientCertificate),
		client.WithCredentialGeneration(cred.generation), client.WithMachineID(id.MachineID), client.WithTimeout(timeout))
}

// Applied sets the index of the newest state applied to the server, which
// every later poll reports: the jump waits for it before it logs a person
// in to an account the cluster has just created.
func (p *Puller) Applied(index uint64) { p.applied.Store(index) }

// Addrs returns the cluster's API addresses as the agent knows them now.
func (p *Puller) Addrs() []string { return p.addrs.List() }

// Next returns the first state with an index above index. It retries
// transient failures itself (rotating nodes: a first round at once, then
// backing off up to 30s) and returns an error only when ctx ends or the
// agent must re-enroll. Each state's list of the cluster's nodes becomes
// the agent's.
func (p *Puller) Next(ctx context.Context, index uint64) (*api.AgentState, error) {
	for {
		node, gen := p.cluster.Current(), p.cred.generation()
		st, err := p.cluster.AgentState(ctx, client.StateQuery{Index: index, Wait: p.wait, Applied: p.applied.Load()})
		if err == nil {
			p.backoff, p.failed = 0, 0
			changed, err := p.addrs.Update(st.Cluster)
			if err != nil {
				p.logger.Warn("could not keep the cluster's addresses", "err", err)
			}
			if changed {
				p.logger.Info("cluster addresses", "nodes", p.addrs.List())
			}
			return st, nil
		}
		var he *client.Error
		if errors.As(err, &he) && (he.Status == http.StatusGone || he.Status == http.StatusConflict) {
			return nil, fmt.Errorf("%w: %s", ErrReenroll, he.Message)
		}
		if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
			// The certificate was replaced (or expired): transient while a
			// renewal is under way, final otherwise; the renewer finds out.
			p.cred.reportRefused(gen)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Another node may well answer: the first round over them goes at
		// once (a little jitter aside), so that a dead node costs an agent
		// no backoff; only a round in which every node failed backs off.
		// (The client has moved on to the next node.)
		p.failed++
		base := 100 * time.Millisecond
		if p.failed >= len(p.addrs.List()) {
			p.backoff = min(max(2*p.backoff, 200*time.Millisecond), 30*time.Second)
			base = p.backoff
		}
		sleep := base/2 + time.Duration(rand.Int64N(int64(base)))
		p.logger.Warn("pull failed; retrying", "node", node, "in", sleep.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(sleep):
		}
	}
}
