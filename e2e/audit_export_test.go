package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/auditexport"
	"github.com/rampart-ssh/rampart/raftstore"
)

// exportBatch is the cluster's audit_export.batch_size in this test: the
// documented duplicate window is one batch per sink for each exporter that
// stops without a word (docs/audit-export.md).
const exportBatch = 50

// hookReceiver is a webhook endpoint that checks the HMAC and keeps every
// record it acknowledged.
type hookReceiver struct {
	mu      sync.Mutex
	records []auditexport.Record
	bad     []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	ts := req.Header.Get(auditexport.HeaderTimestamp)
	var b auditexport.WebhookBody
	h.mu.Lock()
	defer h.mu.Unlock()
	if !hmac.Equal([]byte(req.Header.Get(auditexport.HeaderSignature)), []byte(auditexport.WebhookSignature([]byte(hookKey), ts, body))) {
		h.bad = append(h.bad, "signature does not verify")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if err := json.Unmarshal(body, &b); err != nil {
		h.bad = append(h.bad, err.Error())
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.records = append(h.records, b.Events...)
}

func (h *hookReceiver) snapshot() ([]auditexport.Record, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]auditexport.Record(nil), h.records...), append([]string(nil), h.bad...)
}

const hookKey = "e2e-webhook-key-5d1e-0123456789abcdef"

// TestAuditExportFailover: a three-node cluster exports its audit log to a
// webhook and a JSON-lines file while events are written without pause;
// the leader is killed (SIGKILL) twice, then every node at once, and
// restarted. Every event reaches both sinks, as written (the hash chain
// verifies over what they got), and each sink got at most one batch again
// per exporter killed.
func TestAuditExportFailover(t *testing.T) {
	hook := &hookReceiver{}
	srv := httptest.NewTLSServer(hook)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile, keyFile, filePath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "hook.key"), filepath.Join(dir, "export", "audit.jsonl")
	fatalIf(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	fatalIf(t, os.WriteFile(keyFile, []byte(hookKey+"\n"), 0o600))
	cfgFile := filepath.Join(dir, "rampartd.yaml")
	fatalIf(t, os.WriteFile(cfgFile, fmt.Appendf(nil, `audit_export:
  batch_size: %d
  retry_min: 100ms
  retry_max: 1s
  sinks:
    - {name: hook, type: webhook, url: "%s/audit", hmac_key_file: %s, ca_file: %s}
    - {name: file, type: file, path: %s, max_size_mib: 1, max_files: 100}
`, exportBatch, srv.URL, keyFile, caFile, filePath), 0o600))

	c := NewCluster(t, "ae", newIPs(t, "audit export cluster", 3)...)
	c.ConfigFile = cfgFile
	fatalIf(t, c.Start(), "start the cluster")

	// Writers: project updates, each an audit event, through whichever
	// node answers, without pause until the end.
	var written atomic.Int64
	ctx, stopWriting := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				for _, n := range c.Running() {
					rctx, cancel := context.WithTimeout(ctx, requestTimeout)
					_, err := n.API().PutProject(rctx, fmt.Sprintf("p%d", w), &api.Project{Description: fmt.Sprintf("update %d", i)})
					cancel()
					if err == nil {
						written.Add(1)
						break
					}
				}
			}
		})
	}
	t.Cleanup(func() { stopWriting(); wg.Wait() })

	received := func() int { r, _ := hook.snapshot(); return len(r) }
	flowing := func(what string) {
		t.Helper()
		from := received()
		fatalIf(t, waitFor(waitLong, func() error {
			if n := received(); n < from+3*exportBatch {
				return fmt.Errorf("the webhook got %d events since %s, want %d", n-from, what, 3*exportBatch)
			}
			return nil
		}), "export flowing "+what)
	}
	kills := 0
	for round := 1; round <= 2; round++ {
		flowing(fmt.Sprintf("before kill %d", round))
		leader, err := c.WaitLeader(waitLong, c.Running()...)
		fatalIf(t, err)
		t.Logf("kill %d: SIGKILL the leader %s mid-stream (%d events received)", round, leader.ID, received())
		fatalIf(t, leader.Kill())
		kills++
		_, err = c.WaitLeader(waitLong, c.Others(leader)...)
		fatalIf(t, err, "a new leader")
		flowing(fmt.Sprintf("failover %d", round))
		fatalIf(t, leader.Restart(), "restart "+leader.ID)
	}
	flowing("before killing every node")
	t.Logf("SIGKILL every node mid-stream (%d events received)", received())
	for _, n := range c.Nodes {
		fatalIf(t, n.Kill())
	}
	kills++
	for _, n := range c.Nodes {
		_, err := n.spawn(n.BaseArgs())
		fatalIf(t, err, "restart "+n.ID)
	}
	for _, n := range c.Nodes {
		fatalIf(t, n.WaitHealthy(waitLong), n.ID+" healthy after the restart")
	}
	flowing("after restarting every node")
	stopWriting()
	wg.Wait()

	leader, err := c.WaitLeader(waitLong, c.Nodes...)
	fatalIf(t, err)
	vctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	v, err := leader.API().VerifyAudit(vctx)
	cancel()
	fatalIf(t, err, "audit verify")
	if !v.OK || v.LastSeq == 0 {
		t.Fatalf("audit verify: %+v", v)
	}
	head := v.LastSeq
	t.Logf("%d project updates written; the log holds %d events", written.Load(), head)

	check := func(sink string, get func() ([]auditexport.Record, error)) {
		t.Helper()
		var recs []auditexport.Record
		fatalIf(t, waitFor(waitLong, func() error {
			var err error
			if recs, err = get(); err != nil {
				return stopWaiting(err)
			}
			if seen := distinct(recs, head); seen < int(head) {
				return fmt.Errorf("%s holds %d of the %d events", sink, seen, head)
			}
			return nil
		}), "every event exported to "+sink)
		bySeq := map[uint64]auditexport.Record{}
		dups := 0
		for _, r := range recs {
			if prev, dup := bySeq[r.Seq]; dup {
				dups++
				if prev.Hash != r.Hash {
					t.Errorf("%s: seq %d came twice with different hashes", sink, r.Seq)
				}
			}
			bySeq[r.Seq] = r
		}
		chain := make([]*raftstore.AuditEvent, 0, head)
		for seq := uint64(1); seq <= head; seq++ {
			r := bySeq[seq]
			chain = append(chain, r.Event())
		}
		if err := raftstore.VerifyAuditChain(chain); err != nil {
			t.Errorf("%s: the exported events do not verify: %v", sink, err)
		}
		t.Logf("%s: %d records for %d events, %d duplicates (window: %d kills × %d)", sink, len(recs), head, dups, kills, exportBatch)
		if dups > kills*exportBatch {
			t.Errorf("%s: %d duplicates, more than one batch per kill (%d)", sink, dups, kills*exportBatch)
		}
	}
	check("webhook", func() ([]auditexport.Record, error) {
		recs, bad := hook.snapshot()
		if len(bad) > 0 {
			return nil, fmt.Errorf("the webhook refused requests: %q", bad)
		}
		return recs, nil
	})
	check("file", func() ([]auditexport.Record, error) { return readExportFiles(filePath, 100) })
}

// distinct counts the distinct sequence numbers 1..head in recs.
func distinct(recs []auditexport.Record, head uint64) int {
	seen := map[uint64]bool{}
	for _, r := range recs {
		if r.Seq >= 1 && r.Seq <= head {
			seen[r.Seq] = true
		}
	}
	return len(seen)
}

// readExportFiles reads the file sink's JSON lines, rotated files first.
func readExportFiles(path string, files int) ([]auditexport.Record, error) {
	var out []auditexport.Record
	for i := files; i >= 0; i-- {
		name := path
		if i > 0 {
			name = fmt.Sprintf("%s.%d", path, i)
		}
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for line := range bytes.Lines(b) {
			if !bytes.HasSuffix(line, []byte("\n")) {
				continue // being written now
			}
			var r auditexport.Record
			if err := json.Unmarshal(line, &r); err != nil {
				return nil, fmt.Errorf("%s: a line is not a record: %w", name, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}
