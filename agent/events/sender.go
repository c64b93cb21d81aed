package events

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// Poster delivers a batch of events to the cluster; an empty batch asks for
// the last seq the cluster recorded.
type Poster interface {
	PostEvents(ctx context.Context, events []api.LoginEvent) (*api.AgentEventsResponse, error)
}

// StatusError is an answer of the cluster other than 2xx.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

// HTTPPoster posts to the cluster's nodes over the agent's mutual-TLS
// credential, moving to the next node after a failure.
type HTTPPoster struct {
	addrs []string
	// follow, when set, gives the cluster's addresses at each post in
	// place of addrs (FollowCluster).
	follow    func() []string
	machineID string
	client    *http.Client
	next      int
	// generation, when set, reports the generation of the agent's
	// credential; gen is the one the pooled connections were made with.
	generation func() uint64
	gen        uint64
}

// RetireConnectionsOn makes the poster close its pooled connections before
// a request whenever generation has changed since the last: the agent's
// certificate was renewed, and the cluster refuses the old one at once.
func (p *HTTPPoster) RetireConnectionsOn(generation func() uint64) {
	p.generation, p.gen = generation, generation()
}

// FollowCluster makes the poster ask list for the cluster's addresses
// before each post, so that it follows the nodes the agent learns of.
func (p *HTTPPoster) FollowCluster(list func() []string) { p.follow = list }

// NewHTTPPoster posts to addrs (host:port) as the agent of machineID.
func NewHTTPPoster(tlsCfg *tls.Config, addrs []string, machineID string) *HTTPPoster {
	return &HTTPPoster{addrs: addrs, machineID: machineID,
		// Idle connections are dropped after a while, so that a renewed
		// agent certificate (presented at each handshake) is soon in use.
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg,
			MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second}}}
}

// PostEvents implements Poster.
func (p *HTTPPoster) PostEvents(ctx context.Context, events []api.LoginEvent) (*api.AgentEventsResponse, error) {
	addrs := p.addrs
	if p.follow != nil {
		addrs = p.follow()
	}
	if len(addrs) == 0 {
		return nil, errors.New("no cluster address known")
	}
	if events == nil {
		events = []api.LoginEvent{}
	}
	body, err := json.Marshal(api.AgentEventsRequest{Events: events})
	if err != nil {
		return nil, err
	}
	addr := addrs[p.next%len(addrs)]
	out, err := p.post(ctx, addr, body)
	if err != nil {
		p.next++
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return out, nil
}

func (p *HTTPPoster) post(ctx context.Context, addr string, body []byte) (*api.AgentEventsResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/v1/agents/events", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.MachineIDHeader, p.machineID)
	if p.generation != nil {
		if g := p.generation(); g != p.gen {
			p.client.CloseIdleConnections()
			p.gen = g
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e api.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		return nil, &StatusError{Status: resp.StatusCode, Message: e.Error}
	}
	var out api.AgentEventsResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil {
		return nil, fmt.Errorf("answer: %w", err)
	}
	return &out, nil
}

const (
	// maxBackoff bounds the wait between two failed deliveries; a refusal
	// (4xx: a bug, or an agent newer than the cluster) waits longer.
	maxBackoff        = 30 * time.Second
	maxRefusedBackoff = 5 * time.Minute
	// recheckEvery wakes an idle sender in case a notification was missed.
	recheckEvery = 30 * time.Second
)

// Sender delivers the spool to the cluster in order, in batches, and
// forgets only what the cluster acknowledged. Failures are retried with
// backoff and jitter until ctx ends: nothing is dropped, not even an event
// the cluster refuses (the agent validated it as the cluster does, so a
// refusal is a version mismatch an operator must fix, and the events wait).
type Sender struct {
	Spool  *Spool
	Poster Poster
	Logger *slog.Logger
	// Batch is the most events one request carries (api.MaxLoginEventBatch
	// if zero).
	Batch int
	// MinBackoff is the first wait after a failure (200ms if zero).
	MinBackoff time.Duration

	backoff  time.Duration
	failures int
}

// Run delivers until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	batch := s.Batch
	if batch <= 0 || batch > api.MaxLoginEventBatch {
		batch = api.MaxLoginEventBatch
	}
	for ctx.Err() == nil {
		st, err := s.Spool.State()
		if err != nil {
			s.fail(ctx, "read the event spool", err, false)
			continue
		}
		if !st.Synced {
			s.sync(ctx)
			continue
		}
		pending, err := s.Spool.Pending(batch)
		if err != nil {
			s.fail(ctx, "read the event spool", err, false)
			continue
		}
		if len(pending) == 0 {
			select {
			case <-ctx.Done():
			case <-s.Spool.Notify():
			case <-time.After(recheckEvery):
			}
			continue
		}
		s.deliver(ctx, pending)
	}
}

// sync asks the cluster for the last seq it recorded from this server
// before the spool's first delivery, and numbers the spool after it.
func (s *Sender) sync(ctx context.Context) {
	resp, err := s.Poster.PostEvents(ctx, nil)
	if err != nil {
		s.fail(ctx, "ask the cluster for the last login event it recorded", err, refused(err))
		return
	}
	s.ok()
	changed, err := s.Spool.Rebase(resp.LastSeq)
	if err != nil {
		s.fail(ctx, "renumber the event spool", err, false)
		return
	}
	if changed {
		s.Logger.Info("login events renumbered after those the cluster has", "cluster_last_seq", resp.LastSeq)
	}
}

func (s *Sender) deliver(ctx context.Context, pending []api.LoginEvent) {
	first, last := pending[0].Seq, pending[len(pending)-1].Seq
	resp, err := s.Poster.PostEvents(ctx, pending)
	if err != nil {
		s.fail(ctx, "deliver login events", err, refused(err))
		return
	}
	s.ok()
	// Read after the answer: the tailer numbers events meanwhile, and only
	// a seq beyond all it has numbered is one this spool never used.
	st, err := s.Spool.State()
	if err != nil {
		s.fail(ctx, "read the event spool", err, false)
		return
	}
	if nextSeq := st.NextSeq; resp.LastSeq >= nextSeq {
		// The cluster has seqs this spool never used: it is not the spool
		// the cluster's record was written from. Renumber, send again.
		s.Logger.Warn("the cluster has recorded login events this spool never numbered; renumbering the undelivered ones",
			"cluster_last_seq", resp.LastSeq, "spool_next_seq", nextSeq)
		if _, err := s.Spool.Rebase(resp.LastSeq); err != nil {
			s.fail(ctx, "renumber the event spool", err, false)
		}
		return
	}
	upTo := min(resp.LastSeq, last)
	if upTo < last {
		s.Logger.Error("the cluster acknowledged only part of a batch", "first", first, "last", last, "cluster_last_seq", resp.LastSeq)
	}
	if upTo < first {
		s.fail(ctx, "deliver login events", fmt.Errorf("the cluster acknowledged none of seqs %d-%d", first, last), true)
		return
	}
	if err := s.Spool.Ack(upTo); err != nil {
		s.fail(ctx, "forget delivered login events", err, false)
		return
	}
	s.Logger.Info("login events delivered", "first_seq", first, "last_seq", upTo, "accepted", resp.Accepted, "duplicates", resp.Duplicates)
}

func refused(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status >= 400 && se.Status < 500
}

func (s *Sender) ok() {
	if s.failures > 0 {
		s.Logger.Info("the cluster takes login events again", "after_failures", s.failures)
	}
	s.backoff, s.failures = 0, 0
}

// fail logs a failure (the first of a run as a warning, later ones at
// debug, so that an outage does not flood the log) and waits.
func (s *Sender) fail(ctx context.Context, what string, err error, refused bool) {
	if ctx.Err() != nil {
		return
	}
	s.failures++
	limit, minimum := maxBackoff, s.MinBackoff
	if minimum <= 0 {
		minimum = 200 * time.Millisecond
	}
	if refused {
		limit = maxRefusedBackoff
	}
	s.backoff = min(max(2*s.backoff, minimum), limit)
	sleep := s.backoff/2 + time.Duration(rand.Int64N(int64(s.backoff)/2+1))
	switch {
	case refused:
		s.Logger.Error("the cluster refused login events; they stay spooled", "what", what, "err", err, "retry_in", sleep.Round(time.Millisecond))
	case s.failures == 1:
		s.Logger.Warn("cannot "+what+"; events stay spooled and are retried", "err", err)
	default:
		s.Logger.Debug("cannot "+what, "failures", s.failures, "err", err, "retry_in", sleep.Round(time.Millisecond))
	}
	select {
	case <-ctx.Done():
	case <-time.After(sleep):
	}
}
