package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rampart-ssh/rampart/api"
)

// The operator's instruments on real nodes: /metrics read with the
// Prometheus text parser after a real OpenSSH sign-in and jump, and
// /readyz following a node's quorum.

// opsHTTP is a plain HTTPS client trusting n's cluster CA, for the
// operator's endpoints (/metrics, /healthz, /readyz), which are not JSON API
// calls.
func opsHTTP(n *Node) *http.Client {
	return &http.Client{Timeout: requestTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.c.CAPool(), MinVersion: tls.VersionTLS12}}}
}

// scrape reads n's /metrics (on the API listener, no credentials) and
// parses it as Prometheus does.
func scrape(t testing.TB, n *Node) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := opsHTTP(n).Get("https://" + n.APIAddr() + "/metrics")
	fatalIf(t, err, "GET /metrics on "+n.ID)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on %s: HTTP %d", n.ID, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	fatalIf(t, err, "parse /metrics of "+n.ID)
	return mfs
}

// sample is the value of the series of family name whose labels include
// labels (k, v, k, v...): a counter's or gauge's value, a histogram's count;
// 0 when there is none.
func sample(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	total := 0.0
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// readyz is n's GET /readyz: the status and the answer.
func readyz(n *Node) (int, *readiness, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+n.APIAddr()+"/readyz", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := opsHTTP(n).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r readiness
	if err := json.Unmarshal(b, &r); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("readyz %q: %w", b, err)
	}
	return resp.StatusCode, &r, nil
}

// readiness is the /readyz answer (gateway/monitor.Readiness).
type readiness struct {
	Ready  bool `json:"ready"`
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	} `json:"checks"`
}

func (r *readiness) failed() string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Reason)
		}
	}
	return strings.Join(out, "; ")
}

// After a browser sign-in, a bound-key jump with a command and a refused
// jump, the node's /metrics shows each: the logins by method, the jump's
// decisions, the session opened, closed and its bytes, the per-hop
// certificate minted, the IdP requests, the audit events written and raft
// with a leader; and /readyz is 200 with its three checks.
func TestMetricsAfterLoginAndJump(t *testing.T) {
	e := setupJump(t, api.ProjectSettings{}, false)
	node := e.node.Node

	r := e.ssh(t, nil, "alice@web-1", "head -c 100000 /dev/zero")
	if r.code != 0 || len(r.stdout) != 100000 {
		t.Fatalf("jump: exit %d, %d bytes; stderr:\n%s", r.code, len(r.stdout), r.stderr)
	}
	if r := e.ssh(t, nil, "root@web-1", "true"); r.code == 0 {
		t.Fatal("root was let in")
	}

	// The session's close is recorded after ssh has exited.
	var mfs map[string]*dto.MetricFamily
	fatalIf(t, waitFor(waitLong, func() error {
		mfs = scrape(t, node)
		if got := sample(mfs, "rampart_sessions_closed_total"); got < 1 {
			return fmt.Errorf("rampart_sessions_closed_total = %v", got)
		}
		return nil
	}), "the session's close counted")
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"rampart_logins_total", []string{"method", "device_flow_bind", "outcome", "ok"}, 1},
		{"rampart_logins_total", []string{"method", "bound_key", "outcome", "ok"}, 2},
		{"rampart_jump_decisions_total", []string{"outcome", "allowed", "reason", "ok"}, 1},
		{"rampart_jump_decisions_total", []string{"outcome", "refused", "reason", "login_denied"}, 1},
		{"rampart_sessions_opened_total", nil, 1},
		{"rampart_relayed_bytes_total", []string{"direction", "out"}, 100000},
		{"rampart_certificates_minted_total", []string{"kind", "user"}, 1},
		{"rampart_certificate_mint_seconds", []string{"kind", "user"}, 1},
		{"rampart_certificates_minted_total", []string{"kind", "inner_host"}, 1},
		{"rampart_idp_request_seconds", []string{"endpoint", "device_authorization"}, 1},
		{"rampart_idp_request_seconds", []string{"endpoint", "token"}, 1},
		{"rampart_bindings_live", nil, 1},
		{"rampart_audit_events_written_total", nil, 1},
		{"rampart_raft_has_leader", nil, 1},
		{"rampart_raft_state", []string{"state", "leader"}, 1},
		{"rampart_raft_apply_seconds", nil, 1},
		{"rampart_raft_applied_index", nil, 1},
		{"go_goroutines", nil, 1},
	} {
		if got := sample(mfs, c.name, c.labels...); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
	// The person sent no data (an exec without input): the "in" series is
	// there, at 0.
	if n := len(mfs["rampart_relayed_bytes_total"].GetMetric()); n != 2 {
		t.Errorf("rampart_relayed_bytes_total has %d series, want in and out", n)
	}
	for _, name := range []string{"rampart_sessions_live", "rampart_device_flows_pending", "rampart_idp_request_errors_total"} {
		if got := sample(mfs, name); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
	if got := sample(mfs, "rampart_audit_events_dropped_total"); got != 0 {
		t.Errorf("rampart_audit_events_dropped_total = %v", got)
	}

	code, rd, err := readyz(node)
	fatalIf(t, err, "readyz")
	if code != http.StatusOK || !rd.Ready || len(rd.Checks) != 3 {
		t.Fatalf("readyz: HTTP %d %+v", code, rd)
	}
}

// A node cut off from its quorum is not ready, and says why; once the
// others are back it is ready again. /healthz answers all along.
// waitReady waits until n's /readyz answers ready: it has a leader, is
// caught up, and its CA keys are unsealed. A follower that has just joined
// refuses writes (as stale) until then.
func waitReady(t *testing.T, n *Node) {
	t.Helper()
	fatalIf(t, waitFor(waitLong, func() error {
		code, r, err := readyz(n)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !r.Ready {
			return fmt.Errorf("%s: HTTP %d, %s", n.ID, code, r.failed())
		}
		return nil
	}), n.ID+" ready")
}

func TestReadyzFollowsQuorum(t *testing.T) {
	c := NewCluster(t, "ready", newIPs(t, "readyz cluster", 3)...)
	fatalIf(t, c.Start(), "start the cluster")
	for _, n := range c.Nodes {
		waitReady(t, n)
	}
	alone := c.Nodes[0]
	for _, n := range c.Others(alone) {
		fatalIf(t, n.Kill(), "kill "+n.ID)
	}
	var last *readiness
	fatalIf(t, waitFor(waitLong, func() error {
		code, r, err := readyz(alone)
		if err != nil {
			return err
		}
		last = r
		if code != http.StatusServiceUnavailable || r.Ready {
			return fmt.Errorf("HTTP %d, %+v", code, r)
		}
		// A leader lease runs out long before the stale bound: wait for both.
		if !strings.Contains(r.failed(), "leader: no leader known") || !strings.Contains(r.failed(), "fresh: ") {
			return fmt.Errorf("not ready for: %s", r.failed())
		}
		return nil
	}), "readyz fails on "+alone.ID+" without its quorum")
	t.Logf("cut off: %s", last.failed())
	for _, ch := range last.Checks {
		if ch.Name == "ca_unsealed" && !ch.OK {
			t.Errorf("the CA keys are still unsealed on %s, yet readyz says %q", alone.ID, ch.Reason)
		}
	}
	resp, err := opsHTTP(alone).Get("https://" + alone.APIAddr() + "/healthz")
	fatalIf(t, err, "healthz")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz of a live node cut off from its quorum: HTTP %d", resp.StatusCode)
	}
	if mfs := scrape(t, alone); sample(mfs, "rampart_raft_has_leader") != 0 || sample(mfs, "rampart_raft_fresh") != 0 {
		t.Fatalf("raft gauges of the cut-off node: has_leader %v, fresh %v", sample(mfs, "rampart_raft_has_leader"), sample(mfs, "rampart_raft_fresh"))
	}

	for _, n := range c.Others(alone) {
		fatalIf(t, n.Restart(), "restart "+n.ID)
	}
	fatalIf(t, waitFor(waitLong, func() error {
		code, r, err := readyz(alone)
		if err != nil {
			return err
		}
		if code != http.StatusOK || !r.Ready {
			return fmt.Errorf("HTTP %d, %s", code, r.failed())
		}
		return nil
	}), "readyz recovers on "+alone.ID+" once healed")
}
