package gateway

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// describing registers with a registry and notes the name of every metric
// a collector describes (a vector with no series yet is in no scrape, but
// it is described).
type describing struct {
	reg   *prometheus.Registry
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describing) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return d.reg.Register(c)
}

func (d *describing) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := d.Register(c); err != nil {
			panic(err)
		}
	}
}

func (d *describing) Unregister(c prometheus.Collector) bool { return d.reg.Unregister(c) }

// nodeMetricNames are the names of every metric a node registers: each
// room's, the scrape-time collectors', the Go runtime's and the process's.
func nodeMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	d := &describing{reg: prometheus.NewRegistry(), names: map[string]bool{}}
	newNodeMetricsOn(d.reg, d)
	// Describing needs no store: the collectors' descriptions are fixed.
	d.MustRegister(scrapeCollectors(nil, nil, nil)...)
	if len(d.names) < 30 {
		t.Fatalf("only %d metrics described: %v", len(d.names), d.names)
	}
	return d.names
}

// documented are the metric names docs/metrics.md lists in its tables (the
// first cell of a row, in backquotes); a name ending in * is a prefix.
func documented(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+\\*?)` \\|")
	var out []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		out = append(out, m[1])
	}
	return out
}

func isDocumented(docs []string, name string) bool {
	return slices.ContainsFunc(docs, func(d string) bool {
		p, isPrefix := strings.CutSuffix(d, "*")
		return d == name || isPrefix && strings.HasPrefix(name, p)
	})
}

// Every metric a node registers is documented in docs/metrics.md, and
// every metric documented there exists.
func TestMetricsDocumented(t *testing.T) {
	names := nodeMetricNames(t)
	docs := documented(t)
	for name := range names {
		if !isDocumented(docs, name) {
			t.Errorf("metric %s is not documented in docs/metrics.md", name)
		}
	}
	for _, d := range docs {
		p, isPrefix := strings.CutSuffix(d, "*")
		found := false
		for name := range names {
			if name == d || isPrefix && strings.HasPrefix(name, p) {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/metrics.md documents %s, which no node registers", d)
		}
	}
}

// The example alert rules parse as a Prometheus rule file, and every
// rampart metric their expressions name exists (a histogram's _bucket,
// _sum and _count series are its own).
func TestAlertRulesNameRealMetrics(t *testing.T) {
	raw, err := os.ReadFile("../configs/rampart-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("configs/rampart-alerts.yaml: %v", err)
	}
	names := nodeMetricNames(t)
	metric := regexp.MustCompile(`\brampart_[a-z_]+`)
	rules := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || r.Annotations["summary"] == "" {
				t.Errorf("group %s: rule %+v lacks its alert name, expression or summary", g.Name, r)
			}
			found := metric.FindAllString(r.Expr, -1)
			if len(found) == 0 {
				t.Errorf("alert %s names no rampart metric", r.Alert)
			}
			for _, m := range found {
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suffix); ok && names[b] {
						base = b
					}
				}
				if !names[base] {
					t.Errorf("alert %s names %s, which no node registers", r.Alert, m)
				}
			}
		}
	}
	for _, want := range []string{"rampart_raft_has_leader", "rampart_agent_state_lag_max", "rampart_recording_failures_total",
		"rampart_ssh_refusals_total", "rampart_idp_request_errors_total"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the example rules have no alert on %s", want)
		}
	}
	if rules == 0 {
		t.Fatal("no rules")
	}
}
