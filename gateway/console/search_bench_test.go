package console

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkSearch10kSessions: search over 10,000 indexed sessions, each
// 60 lines of shell output and a few exec commands, for a phrase in a few
// of them and for one in most of them. It reports the p50 and p99 of one
// search (docs/benchmarks.md; the goal is p50 < 200 ms).
func BenchmarkSearch10kSessions(b *testing.B) {
	const sessions, linesEach = 10_000, 60
	idx, err := OpenIndex(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer idx.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"ls", "-la", "cd", "/var/log", "grep", "error", "systemctl", "status", "nginx", "docker", "ps", "kubectl",
		"get", "pods", "tail", "-f", "syslog", "cat", "/etc/hosts", "vim", "config.yaml", "sudo", "apt", "upgrade", "git", "pull"}
	t0 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]Doc, 0, 500)
	for i := range sessions {
		d := Doc{Session: fmt.Sprintf("s-%05d", i), User: fmt.Sprintf("user%d", i%50), Server: fmt.Sprintf("web-%d", i%200),
			Project: fmt.Sprintf("p%d", i%10), Start: t0.Add(time.Duration(i) * time.Minute)}
		for l := range linesEach {
			n := 3 + rng.IntN(8)
			line := "alice@web:~$"
			for range n {
				line += " " + words[rng.IntN(len(words))]
			}
			d.Lines = append(d.Lines, Line{T: float64(l), Text: line})
		}
		if i%1000 == 7 {
			d.Lines = append(d.Lines, Line{T: linesEach, Text: "$ kubectl delete namespace payments"})
		}
		d.Commands = []string{"uptime", "df -h"}
		batch = append(batch, d)
		if len(batch) == cap(batch) {
			if err := idx.AddBatch(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := idx.AddBatch(batch); err != nil {
		b.Fatal(err)
	}
	for _, q := range []struct{ name, text string }{{"rare-phrase", "kubectl delete namespace"}, {"common-phrase", "grep error"}} {
		b.Run(q.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				hits, err := idx.Search(q.text, Filter{}, 100)
				took = append(took, time.Since(start))
				if err != nil || len(hits) == 0 {
					b.Fatalf("%d hits, %v", len(hits), err)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
