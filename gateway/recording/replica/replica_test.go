package replica_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// audits collects audit events.
type audits struct {
	mu      sync.Mutex
	events  []string
	changed chan struct{} // closed and replaced at each event
}

func (a *audits) Record(typ, _ string, f map[string]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, typ+" "+f["recording"]+" "+f["reason"]+f["partial"])
	if a.changed != nil {
		close(a.changed)
	}
	a.changed = make(chan struct{})
}

// wait waits for event ev (as all lists it): a copy is audited once its
// file is in place.
func (a *audits) wait(tb testing.TB, ev string) {
	tb.Helper()
	timeout := time.After(30 * time.Second)
	for {
		a.mu.Lock()
		found := slices.Contains(a.events, ev)
		if a.changed == nil {
			a.changed = make(chan struct{})
		}
		ch := a.changed
		a.mu.Unlock()
		if found {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			tb.Fatalf("no audit event %q: %v", ev, a.all())
		}
	}
}

func (a *audits) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// cluster is two nodes, n1 and n2, sharing one replicated state: each a
// Replicator over its own directory, n2 serving the internal route with a
// node certificate of the cluster CA, as the API does.
type cluster struct {
	store      *raftstoretest.Store
	n1, n2     *replica.Replicator
	dir1, dir2 string
	audit      *audits
	// cut, when set, makes n2's handler stop reading after that many
	// bytes and drop the connection, as a lost sender would look.
	cut int
}

func newCluster(tb testing.TB) *cluster {
	tb.Helper()
	tlsCA, err := ca.NewTLSCA("c-test", time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	nodeTLS := func(id string) *ca.NodeTLS {
		key, err := ca.NewNodeKey()
		if err != nil {
			tb.Fatal(err)
		}
		certPEM, err := tlsCA.Issue(api.RoleNode, id, key.Public(), []net.IP{net.IPv4(127, 0, 0, 1)}, nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		keyPEM, err := api.EncodeKeyPEM(key)
		if err != nil {
			tb.Fatal(err)
		}
		n, err := ca.NewNodeTLS(tlsCA.CertPEM, certPEM, keyPEM)
		if err != nil {
			tb.Fatal(err)
		}
		return n
	}
	c := &cluster{store: raftstoretest.New(tb), audit: &audits{}, dir1: tb.TempDir(), dir2: tb.TempDir()}
	logger := slog.New(slog.DiscardHandler)
	t1, t2 := nodeTLS("n1"), nodeTLS("n2")
	c.n2 = replica.New(replica.Config{Dir: c.dir2, NodeID: "n2", Store: c.store, TLS: t2.RaftClient, Replicas: 2,
		Audit: c.audit, Logger: logger, MaxBytes: 64 << 20})
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, replica.InternalPath)
		if r.Method == http.MethodGet {
			_, h, _ := c.store.State().RecordingHolder(nil, name, "n2")
			if h == nil {
				http.NotFound(w, r)
				return
			}
			f, err := c.n2.OpenHeld(*h)
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer f.Close()
			_, _ = io.Copy(w, f)
			return
		}
		body := io.Reader(r.Body)
		if c.cut > 0 {
			body = &cutReader{r: r.Body, left: c.cut, conn: w}
		}
		got, err := c.n2.Receive(r.Context(), "n1", name, r.URL.Query().Get("session"), body,
			func() string { return r.Trailer.Get(replica.TrailerSHA256) })
		if err != nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = json.NewEncoder(w).Encode(api.Error{Error: err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(got)
	}))
	cur, err := t2.API.GetCertificate(nil)
	if err != nil {
		tb.Fatal(err)
	}
	ts.TLS = t2.API.Clone()
	ts.TLS.Certificates, ts.TLS.GetCertificate = []tls.Certificate{*cur}, nil
	ts.StartTLS()
	tb.Cleanup(ts.Close)
	c.store.MustApply(tb,
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n1", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:1"}, Now: time.Now()},
		&raftstore.NodeUpsert{Node: raftstore.Node{ID: "n2", RaftAddr: "127.0.0.1:2", APIAddr: ts.Listener.Addr().String()}, Now: time.Now()})
	c.n1 = replica.New(replica.Config{Dir: c.dir1, NodeID: "n1", Store: c.store, TLS: t1.RaftClient, Replicas: 2,
		Audit: c.audit, Logger: logger})
	return c
}

// cutReader reads left bytes, then closes the connection under the handler.
type cutReader struct {
	r    io.Reader
	left int
	conn http.ResponseWriter
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n, err := c.r.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}

// record writes a recording on n1 the way the archive does, teeing into a
// live copy, and returns what was written and its closing description.
func record(tb testing.TB, c *cluster, dir, name string, size int) replica.Closed {
	tb.Helper()
	openSession(tb, c, name, time.Now())
	live := c.n1.Live(name, name)
	rec, err := recording.New(recording.Config{Dir: dir, SessionID: name, Tee: live.Write, FlushInterval: 50 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	for done := 0; done < size; done += len(chunk) {
		if err := rec.Output(chunk); err != nil {
			tb.Fatal(err)
		}
	}
	sum, err := rec.Close()
	if err != nil {
		tb.Fatal(err)
	}
	rel, _ := filepath.Rel(dir, sum.Path)
	return replica.Closed{Name: name, Session: name, Path: rel, SHA256: sum.SHA256, Bytes: sum.Bytes, Live: live}
}

// openSession records session id as carried by n1 from start.
func openSession(tb testing.TB, c *cluster, id string, start time.Time) {
	tb.Helper()
	c.store.MustApply(tb, &raftstore.SessionOpen{Session: raftstore.Session{ID: id, UserID: "u1", Login: "deploy",
		ServerID: "web-1", Node: "n1", Start: start}})
}

// holder waits for n2's holder row of name.
func holder(tb testing.TB, c *cluster, name string) *raftstore.RecordingHolder {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		ws := memdb.NewWatchSet()
		_, h, err := c.store.State().RecordingHolder(ws, name, "n2")
		if err != nil {
			tb.Fatal(err)
		}
		if h != nil {
			return h
		}
		if err := ws.WatchCtx(ctx); err != nil {
			tb.Fatalf("no copy of %s on n2: %v", name, err)
		}
	}
}

func fileSHA(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestLiveCopyCheckedOnArrival(t *testing.T) {
	c := newCluster(t)
	closed := record(t, c, c.dir1, "s-live", 1<<20)
	c.n1.AfterClose(closed)
	c.n1.Wait()
	h := holder(t, c, "s-live")
	if h.Partial || h.SHA256 != closed.SHA256 || h.Bytes != closed.Bytes {
		t.Fatalf("n2 holds %+v, want the closed recording %s (%d bytes)", h, closed.SHA256, closed.Bytes)
	}
	if got := fileSHA(t, filepath.Join(c.dir2, h.Path)); got != closed.SHA256 {
		t.Fatalf("n2's file hashes to %s", got)
	}
	_, self, _ := c.store.State().RecordingHolder(nil, "s-live", "n1")
	if self == nil || self.SHA256 != closed.SHA256 {
		t.Fatalf("n1 not recorded as a holder: %+v", self)
	}
	// Read back from n1 through n2's copy (n1's own file gone).
	if err := os.Remove(filepath.Join(c.dir1, closed.Path)); err != nil {
		t.Fatal(err)
	}
	c.store.MustApply(t, &raftstore.RecordingHolderDelete{Name: "s-live", Node: "n1"})
	sess := &raftstore.Session{ID: "s-live"}
	cp, err := c.n1.Open(context.Background(), sess, "s-live")
	if err != nil {
		t.Fatalf("open from n2: %v", err)
	}
	data, _ := io.ReadAll(cp)
	cp.Close()
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != closed.SHA256 || cp.Holder.Node != "n2" {
		t.Fatalf("read %d bytes from %s, not the recording", len(data), cp.Holder.Node)
	}
	// Someone edits n2's copy: it is refused, never served.
	if err := os.WriteFile(filepath.Join(c.dir2, h.Path), append(data[:len(data)-2], '!', '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.n1.Open(context.Background(), sess, "s-live"); !errors.Is(err, recording.ErrDigestMismatch) {
		t.Fatalf("open of an edited copy: %v, want ErrDigestMismatch", err)
	}
	if !slices.Contains(c.audit.all(), "recording.replicate s-live false") {
		t.Errorf("audit: %v", c.audit.all())
	}
}

func TestBrokenStreamKeptPartial(t *testing.T) {
	c := newCluster(t)
	c.cut = 100 << 10
	closed := record(t, c, c.dir1, "s-cut", 1<<20)
	c.audit.wait(t, "recording.replicate s-cut true")
	h := holder(t, c, "s-cut")
	if !h.Partial || h.Bytes != int64(c.cut) || fileSHA(t, filepath.Join(c.dir2, h.Path)) != h.SHA256 {
		t.Fatalf("n2 holds %+v, want a partial copy of %d bytes", h, c.cut)
	}
	c.cut = 0
	// At close the whole file replaces it.
	c.n1.AfterClose(closed)
	c.n1.Wait()
	_, h, _ = c.store.State().RecordingHolder(nil, "s-cut", "n2")
	if h.Partial || h.SHA256 != closed.SHA256 {
		t.Fatalf("after the close n2 holds %+v, want the whole recording", h)
	}
}

func TestMismatchRefused(t *testing.T) {
	c := newCluster(t)
	openSession(t, c, "s-bad", time.Now())
	got, err := c.n2.Receive(context.Background(), "n1", "s-bad", "s-bad", strings.NewReader("{\"version\":2}\n"),
		func() string { return strings.Repeat("0", 64) })
	if !errors.Is(err, recording.ErrDigestMismatch) || got != nil {
		t.Fatalf("Receive = %+v, %v; want ErrDigestMismatch", got, err)
	}
	if _, h, _ := c.store.State().RecordingHolder(nil, "s-bad", "n2"); h != nil {
		t.Fatalf("a refused copy is recorded: %+v", h)
	}
	if _, err := c.n2.Receive(context.Background(), "n1", "s-other", "s-bad", strings.NewReader("x"), func() string { return "" }); !errors.Is(err, replica.ErrNotSession) {
		t.Fatalf("a name of another session: %v", err)
	}
}

// Retention deletes by age whatever other nodes hold, and by size only a
// copy another node holds complete.
func TestRetention(t *testing.T) {
	c := newCluster(t)
	now := time.Date(2027, 1, 10, 0, 0, 0, 0, time.UTC)
	r := replica.New(replica.Config{Dir: c.dir2, NodeID: "n2", Store: c.store, Audit: c.audit, Logger: slog.New(slog.DiscardHandler),
		MaxAge: 48 * time.Hour, MaxTotalBytes: 150, Now: func() time.Time { return now }})
	put := func(name, node string, age time.Duration, partial bool) {
		c.store.MustApply(t, &raftstore.RecordingHolderPut{Holder: raftstore.RecordingHolder{Name: name, Session: name, Node: node,
			Path: filepath.Join("replicas", name+".cast"), SHA256: strings.Repeat("ab", 32), Bytes: 100, Partial: partial, At: now.Add(-age)}})
	}
	for i, age := range []time.Duration{72 * time.Hour, 30 * time.Hour, 20 * time.Hour, time.Hour} {
		name := "s" + string(rune('a'+i))
		if err := os.MkdirAll(filepath.Join(c.dir2, "replicas"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.dir2, "replicas", name+".cast"), bytes.Repeat([]byte{'x'}, 100), 0o600); err != nil {
			t.Fatal(err)
		}
		put(name, "n2", age, false)
	}
	put("sb", "n1", time.Hour, false) // another complete copy: sb may go for size
	put("sd", "n1", time.Hour, true)  // only a partial one: sd stays
	n, err := r.Retain(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("Retain = %d, %v; want 2 (sa by age, sb by size)", n, err)
	}
	_, left, _ := c.store.State().RecordingsHeldBy(nil, "n2")
	var names []string
	for _, h := range left {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"sc", "sd"}) {
		t.Fatalf("left %v; want sc and sd, the only complete copies, kept over the budget", names)
	}
	for _, name := range []string{"sa", "sb"} {
		if _, err := os.Stat(filepath.Join(c.dir2, "replicas", name+".cast")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still on disk: %v", name, err)
		}
	}
	for _, name := range []string{"sc", "sd"} {
		if _, err := os.Stat(filepath.Join(c.dir2, "replicas", name+".cast")); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := c.audit.all(); !slices.Equal(got, []string{"recording.delete sa age", "recording.delete sb size"}) {
		t.Errorf("audit %v", got)
	}
}

// BenchmarkCloseToVerifiedReplica measures, for a 10 MiB recording, the
// time from its close to a checked copy recorded on a second node: with
// its live copy (the default path) and as a whole-file push (a live copy
// that failed). Per-op percentiles are reported as p50 and p99.
func BenchmarkCloseToVerifiedReplica(b *testing.B) {
	for _, mode := range []string{"live", "push"} {
		b.Run(mode, func(b *testing.B) {
			c := newCluster(b)
			var times []time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				name := "s-" + mode + "-" + strconv.Itoa(i)
				closed := record(b, c, c.dir1, name, 10<<20)
				if mode == "push" {
					closed.Live.Abort()
					closed.Live = nil
				}
				b.StartTimer()
				start := time.Now()
				c.n1.AfterClose(closed)
				holder(b, c, name)
				times = append(times, time.Since(start))
				c.n1.Wait()
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(times[min(len(times)-1, len(times)*99/100)].Microseconds())/1000, "p99-ms")
		})
	}
}
