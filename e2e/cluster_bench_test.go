package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// BenchmarkFailover measures how long a three-node cluster is without writes
// after its leader is killed with SIGKILL: from the kill until the first write
// through a survivor succeeds (election included). Each b.N iteration is one
// failover, and the killed node is restarted and caught up, untimed, before
// the next. Run a few: go test -run '^$' -bench Failover -benchtime 5x ./e2e/
func BenchmarkFailover(b *testing.B) {
	c := NewCluster(b, "a", newIPs(b, "cluster a", 3)...)
	fatalIf(b, c.Start(), "start the cluster")
	var total, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		leader, err := c.WaitLeader(waitLong, c.Nodes...)
		fatalIf(b, err)
		survivor := c.Others(leader)[0]
		b.StartTimer()

		killed := time.Now()
		fatalIf(b, leader.Kill())
		// Retry at once: the first answer, not the poll interval, is measured.
		for deadline := killed.Add(waitLong); ; {
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			_, err = survivor.API().PutProject(ctx, "failover", &api.Project{Description: fmt.Sprintf("after failover %d", i)})
			cancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(killed)
		fatalIf(b, err, "write through "+survivor.ID+" after killing "+leader.ID)

		b.StopTimer()
		total += took
		worst = max(worst, took)
		b.Logf("failover %d: killed leader %s, first write through %s after %s", i+1, leader.ID, survivor.ID, took.Round(time.Millisecond))
		fatalIf(b, leader.Restart(), "restart "+leader.ID)
		_, err = c.WaitConverged(waitLong, c.Nodes...)
		fatalIf(b, err, "catch up after restart")
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
	b.ReportMetric(float64(worst.Milliseconds()), "ms/worst-failover")
}
