package monitor

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// /readyz is 200 only when every check passes, and says which failed and
// why; /healthz answers whatever the checks say; /metrics is the
// registry's, in the text format; the monitor's paths are taken from the
// API only under its prefix.
func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "rampart_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var leaderErr error
	checks := []Check{
		{Name: "leader", Run: func() error { return leaderErr }},
		{Name: "ca", Run: func() error { return nil }},
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "api") })
	ts := httptest.NewServer(Route("/ops", Handler("n1", "/ops", reg, checks), api))
	defer ts.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	readyz := func() (int, Readiness) {
		t.Helper()
		code, body := get("/ops/readyz")
		var r Readiness
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("readyz %q: %v", body, err)
		}
		return code, r
	}
	if code, r := readyz(); code != 200 || !r.Ready || r.Node != "n1" || len(r.Checks) != 2 {
		t.Fatalf("ready: %d %+v", code, r)
	}
	leaderErr = errors.New("no leader known to this node")
	code, r := readyz()
	if code != http.StatusServiceUnavailable || r.Ready || r.Checks[0].OK || r.Checks[0].Reason != "no leader known to this node" || !r.Checks[1].OK {
		t.Fatalf("not ready: %d %+v", code, r)
	}
	if code, body := get("/ops/healthz"); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz while not ready: %d %s", code, body)
	}
	code, body := get("/ops/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if mf := mfs["rampart_test_total"]; mf == nil || mf.GetMetric()[0].GetCounter().GetValue() != 3 {
		t.Fatalf("metrics: %v", mfs)
	}
	for _, path := range []string{"/metrics", "/readyz", "/v1/health", "/ops/other"} {
		if code, body := get(path); code != 200 || body != "api" {
			t.Fatalf("%s went to the monitor: %d %q", path, code, body)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for p, want := range map[string]bool{"": true, "/ops": true, "/a/b": true, "ops": false, "/ops/": false, "/v1": false, "/v1/x": false, "/a b": false, "/{x}": false} {
		if got := ValidPrefix(p); got != want {
			t.Errorf("ValidPrefix(%q) = %v, want %v", p, got, want)
		}
	}
}

// gatherFunc is a prometheus.Gatherer from a function.
type gatherFunc func() ([]*dto.MetricFamily, error)

func (f gatherFunc) Gather() ([]*dto.MetricFamily, error) { return f() }

// /metrics and /readyz need no credentials and each does the whole node's
// work: beyond MaxInFlight requests at once (each path its own bound) the
// next is 503 at once, and served again once they finish.
func TestHandlerBoundsRequestsInFlight(t *testing.T) {
	inside, release := make(chan struct{}), make(chan struct{})
	block := func() { inside <- struct{}{}; <-release }
	g := gatherFunc(func() ([]*dto.MetricFamily, error) { block(); return nil, nil })
	checks := []Check{{Name: "slow", Run: func() error { block(); return nil }}}
	ts := httptest.NewServer(Handler("n1", "", g, checks))
	defer ts.Close()
	get := func(path string) int {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Error(err)
			return 0
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for _, path := range []string{PathMetrics, PathReadyz} {
		t.Run(path, func(t *testing.T) {
			done := make(chan int, MaxInFlight)
			for range MaxInFlight {
				go func() { done <- get(path) }()
				<-inside // each is in the gatherer or the check before the next starts
			}
			extra := make(chan int, 1)
			go func() { extra <- get(path) }()
			select {
			case code := <-extra:
				if code != http.StatusServiceUnavailable {
					t.Errorf("request %d at once: %d, want 503", MaxInFlight+1, code)
				}
			case <-inside:
				t.Errorf("request %d at once was served", MaxInFlight+1)
				for range MaxInFlight + 1 {
					release <- struct{}{}
				}
				<-extra
				return
			}
			for range MaxInFlight {
				release <- struct{}{}
			}
			for range MaxInFlight {
				if code := <-done; code != http.StatusOK {
					t.Errorf("a request within the bound: %d", code)
				}
			}
			go func() { <-inside; release <- struct{}{} }()
			if code := get(path); code != http.StatusOK {
				t.Errorf("after the others finished: %d", code)
			}
		})
	}
}
