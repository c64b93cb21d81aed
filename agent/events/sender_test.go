package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// fakeCluster records events as the cluster does (each seq once, above the
// last recorded), and fails on demand.
type fakeCluster struct {
	mu       sync.Mutex
	lastSeq  uint64
	recorded []api.LoginEvent
	calls    int
	batches  []int
	// down fails the next n calls without recording anything; loseAnswer
	// records the next n batches and fails anyway (the answer is lost);
	// refuse answers the next n calls with 400.
	down, loseAnswer, refuse int
}

func (f *fakeCluster) PostEvents(_ context.Context, events []api.LoginEvent) (*api.AgentEventsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down > 0 {
		f.down--
		return nil, errors.New("connection refused")
	}
	if f.refuse > 0 {
		f.refuse--
		return nil, &client.Error{Status: http.StatusBadRequest, Message: "event 0: unknown field"}
	}
	if len(events) > api.MaxLoginEventBatch {
		return nil, &client.Error{Status: http.StatusBadRequest, Message: "batch too big"}
	}
	resp := &api.AgentEventsResponse{}
	if len(events) > 0 {
		f.batches = append(f.batches, len(events))
	}
	for _, e := range events {
		if e.Seq <= f.lastSeq {
			resp.Duplicates++
			continue
		}
		f.recorded = append(f.recorded, e)
		f.lastSeq = e.Seq
		resp.Accepted++
	}
	resp.LastSeq = f.lastSeq
	if f.loseAnswer > 0 && len(events) > 0 {
		f.loseAnswer--
		return nil, errors.New("connection reset by peer")
	}
	return resp, nil
}

// users lists the recorded events' users, in order.
func (f *fakeCluster) users() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.recorded {
		out = append(out, e.User)
	}
	return out
}

func (f *fakeCluster) seqs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint64
	for _, e := range f.recorded {
		out = append(out, e.Seq)
	}
	return out
}

// runSender runs a sender until the spool is empty and returns.
func runSender(t *testing.T, spool *Spool, cluster Poster) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s := &Sender{Spool: spool, Poster: cluster, Logger: slog.New(slog.DiscardHandler), MinBackoff: time.Millisecond}
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := spool.State()
		if err != nil {
			t.Fatal(err)
		}
		if st.Synced && st.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool not delivered: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func spoolUsers(t *testing.T, s *Spool, users ...string) {
	t.Helper()
	for _, u := range users {
		if _, err := s.Append([]api.LoginEvent{testEvent(u)}, Position{}); err != nil {
			t.Fatal(err)
		}
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestSender(t *testing.T) {
	cases := []struct {
		name     string
		cluster  *fakeCluster
		users    []string
		wantSeqs func(n int) []uint64
	}{
		{name: "ok/batches-in-order", cluster: &fakeCluster{}, users: names("u", 450)},
		{name: "ok/outage", cluster: &fakeCluster{down: 7}, users: names("u", 5)},
		{name: "ok/lost-answers-not-recorded-twice", cluster: &fakeCluster{loseAnswer: 3}, users: names("u", 250)},
		{name: "ok/refused-stays-spooled", cluster: &fakeCluster{refuse: 2}, users: names("u", 3)},
		// The cluster has events numbered by an earlier spool of this
		// server (a re-enrollment kept the server, the data dir was new):
		// the new spool numbers after them instead of being skipped.
		{name: "ok/new-spool-numbers-after-cluster", cluster: &fakeCluster{lastSeq: 500}, users: names("u", 3),
			wantSeqs: func(int) []uint64 { return []uint64{501, 502, 503} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spool := openTestSpool(t, t.TempDir(), 1000)
			defer spool.Close()
			spoolUsers(t, spool, tc.users...)
			runSender(t, spool, tc.cluster)
			if got := tc.cluster.users(); fmt.Sprint(got) != fmt.Sprint(tc.users) {
				t.Fatalf("recorded %d events %.200v, want %d %.200v", len(got), got, len(tc.users), tc.users)
			}
			want := make([]uint64, len(tc.users))
			for i := range want {
				want[i] = uint64(i + 1)
			}
			if tc.wantSeqs != nil {
				want = tc.wantSeqs(len(tc.users))
			}
			if got := tc.cluster.seqs(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("recorded seqs %.200v, want %.200v", got, want)
			}
			for _, b := range tc.cluster.batches {
				if b > api.MaxLoginEventBatch {
					t.Fatalf("a batch of %d events", b)
				}
			}
		})
	}
}

// TestSenderClusterAhead: a spool restored from a backup numbers events the
// cluster already has from the spool's later life; the cluster's answer
// shows it (its last seq is one the spool never used), and the spool
// renumbers instead of losing them.
func TestSenderClusterAhead(t *testing.T) {
	spool := openTestSpool(t, t.TempDir(), 100)
	defer spool.Close()
	cluster := &fakeCluster{}
	spoolUsers(t, spool, "a", "b")
	runSender(t, spool, cluster)
	cluster.mu.Lock()
	cluster.lastSeq = 40 // what the lost later life of the spool sent
	cluster.mu.Unlock()
	spoolUsers(t, spool, "c")
	runSender(t, spool, cluster)
	if got := cluster.users(); fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("recorded %v", got)
	}
	if got := cluster.seqs(); fmt.Sprint(got) != "[1 2 41]" {
		t.Fatalf("recorded seqs %v", got)
	}
}
