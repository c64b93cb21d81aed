package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// ErrReenroll: the cluster no longer accepts this credential here (the server
// was removed, or the credential was copied to another machine).
var ErrReenroll = errors.New("this server must enroll again")

// Puller long-polls the cluster for the server's desired state, failing over
// between the cluster's nodes with backoff and jitter.
type Puller struct {
	id      *Identity
	client  *http.Client
	wait    time.Duration
	logger  *slog.Logger
	next    int // index of the node to ask next
	backoff time.Duration
	// cred presents the current certificate at every handshake (renew.go);
	// credGen is the generation the pooled connections were made with.
	cred    *Credential
	credGen uint64
}

// NewPuller builds a puller over the agent's mutual-TLS credential.
func NewPuller(dataDir string, id *Identity, wait time.Duration, logger *slog.Logger) (*Puller, error) {
	cred, err := LoadCredential(dataDir)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := clientTLS(dataDir)
	if err != nil {
		return nil, err
	}
	// A renewed certificate is used from the next handshake on.
	tlsCfg.Certificates, tlsCfg.GetClientCertificate = nil, cred.clientCertificate
	return &Puller{id: id, wait: wait, logger: logger, cred: cred, credGen: cred.generation(),
		client: &http.Client{Timeout: wait + 30*time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 1}}}, nil
}

// Next returns the first state with an index above index. It retries
// transient failures itself (rotating nodes, backing off up to 30s) and
// returns an error only when ctx ends or the agent must re-enroll.
func (p *Puller) Next(ctx context.Context, index uint64) (*api.AgentState, error) {
	for {
		st, err := p.once(ctx, index)
		if err == nil {
			p.backoff = 0
			return st, nil
		}
		var he *HTTPError
		if errors.As(err, &he) && (he.Status == http.StatusGone || he.Status == http.StatusConflict) {
			return nil, fmt.Errorf("%w: %s", ErrReenroll, he.Message)
		}
		if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
			// The certificate was replaced (or expired): transient while a
			// renewal is under way, final otherwise; the renewer finds out.
			p.cred.reportRefused(p.credGen)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.backoff = min(max(2*p.backoff, 200*time.Millisecond), 30*time.Second)
		sleep := p.backoff/2 + time.Duration(rand.Int64N(int64(p.backoff)))
		p.logger.Warn("pull failed; retrying", "node", p.id.Cluster[p.next%len(p.id.Cluster)], "in", sleep.Round(time.Millisecond), "err", err)
		p.next++
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(sleep):
		}
	}
}

func (p *Puller) once(ctx context.Context, index uint64) (*api.AgentState, error) {
	if len(p.id.Cluster) == 0 {
		return nil, errors.New("no cluster address known")
	}
	if g := p.cred.generation(); g != p.credGen {
		// Pooled connections still speak with the old certificate.
		p.client.CloseIdleConnections()
		p.credGen = g
	}
	addr := p.id.Cluster[p.next%len(p.id.Cluster)]
	url := "https://" + addr + "/v1/agents/state?index=" + strconv.FormatUint(index, 10) + "&wait=" + p.wait.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(api.MachineIDHeader, p.id.MachineID)
	var st api.AgentState
	if err := doJSON(p.client, req, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
