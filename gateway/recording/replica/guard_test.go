package replica_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/recording"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
)

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

// A node certificate alone replaces no recording: the session must exist,
// the sender must be the node that carried it, and a complete copy must
// hash to the digest the cluster recorded for it.
func TestForgedCopyRefused(t *testing.T) {
	c := newCluster(t)
	closed := record(t, c, c.dir1, "s-h1", 64<<10)
	c.n1.AfterClose(closed)
	c.n1.Wait()
	c.store.MustApply(t, &raftstore.SessionClose{ID: "s-h1", End: time.Now(), RecordingSHA256: closed.SHA256, RecordingPath: closed.Path})
	want := holder(t, c, "s-h1")
	forged := []byte("{\"version\":2}\n[0.1,\"o\",\"nothing happened\"]\n")
	sent := func() string { return hexSHA(forged) }
	body := func() io.Reader { return strings.NewReader(string(forged)) }

	if _, err := c.n2.Receive(t.Context(), "n3", "s-h1", "s-h1", body(), sent); !errors.Is(err, replica.ErrNotCarrier) {
		t.Fatalf("a copy from a node that did not carry the session: %v, want ErrNotCarrier", err)
	}
	if _, err := c.n2.Receive(shortCtx(t), "n1", "s-none", "s-none", body(), sent); !errors.Is(err, replica.ErrUnknownSession) {
		t.Fatalf("a copy of no session: %v, want ErrUnknownSession", err)
	}
	if _, err := c.n2.Receive(t.Context(), "n1", "s-h1", "s-h1", body(), sent); !errors.Is(err, recording.ErrDigestMismatch) {
		t.Fatalf("a self-consistent copy with another digest: %v, want ErrDigestMismatch", err)
	}
	// A copy of a session n2 carried itself never comes from elsewhere.
	c.store.MustApply(t, &raftstore.SessionOpen{Session: raftstore.Session{ID: "s-own", UserID: "u1", Login: "deploy",
		ServerID: "web-1", Node: "n2", Start: time.Now()}})
	if _, err := c.n2.Receive(t.Context(), "n1", "s-own", "s-own", body(), sent); !errors.Is(err, replica.ErrNotCarrier) {
		t.Fatalf("a copy of n2's own session: %v, want ErrNotCarrier", err)
	}
	_, got, _ := c.store.State().RecordingHolder(nil, "s-h1", "n2")
	if got.SHA256 != want.SHA256 || fileSHA(t, filepath.Join(c.dir2, got.Path)) != closed.SHA256 {
		t.Fatalf("n2's copy changed: %+v", got)
	}
}

// Open checks a copy against the recording's digest, not only its holder
// row, and goes on to the next holder when one does not match.
func TestOpenSkipsCopyNotOfTheSession(t *testing.T) {
	c := newCluster(t)
	closed := record(t, c, c.dir1, "s-open", 64<<10)
	c.n1.AfterClose(closed)
	c.n1.Wait()
	holder(t, c, "s-open")
	c.store.MustApply(t, &raftstore.SessionClose{ID: "s-open", End: time.Now(), RecordingSHA256: closed.SHA256, RecordingPath: closed.Path})
	// n1's copy and its row replaced together by someone with the
	// cluster's credentials: the row matches the file, not the session.
	forged := []byte("{\"version\":2}\n")
	if err := os.WriteFile(filepath.Join(c.dir1, closed.Path), forged, 0o600); err != nil {
		t.Fatal(err)
	}
	c.store.MustApply(t, &raftstore.RecordingHolderDelete{Name: "s-open", Node: "n1"},
		&raftstore.RecordingHolderPut{Holder: raftstore.RecordingHolder{Name: "s-open", Session: "s-open", Node: "n1",
			Path: closed.Path, SHA256: hexSHA(forged), Bytes: int64(len(forged)), At: time.Now()}})
	_, sess, _ := c.store.State().SessionByID(nil, "s-open")
	cp, err := c.n1.Open(t.Context(), sess, "s-open")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer cp.Close()
	data, _ := io.ReadAll(cp)
	if cp.Holder.Node != "n2" || hexSHA(data) != closed.SHA256 {
		t.Fatalf("read %d bytes from %s hashing to %s, want n2's copy %s", len(data), cp.Holder.Node, hexSHA(data), closed.SHA256)
	}
}

// brokenBody yields data, then fails as a lost sender's stream does.
type brokenBody struct{ r io.Reader }

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// A late or duplicate live copy never replaces a complete one, on disk or
// in raft.
func TestLateLiveCopyKeepsCompleteOne(t *testing.T) {
	c := newCluster(t)
	closed := record(t, c, c.dir1, "s-late", 64<<10)
	c.n1.AfterClose(closed)
	c.n1.Wait()
	h := holder(t, c, "s-late")
	if h.Partial {
		t.Fatalf("n2 holds %+v", h)
	}
	_, err := c.n2.Receive(t.Context(), "n1", "s-late", "s-late", &brokenBody{strings.NewReader("{\"version\":2}\n[0.1,")},
		func() string { return "" })
	if !errors.Is(err, replica.ErrHeldAlready) {
		t.Fatalf("a partial copy over a complete one: %v, want ErrHeldAlready", err)
	}
	_, after, _ := c.store.State().RecordingHolder(nil, "s-late", "n2")
	if after.Partial || after.SHA256 != closed.SHA256 {
		t.Fatalf("row after: %+v", after)
	}
	if got := fileSHA(t, filepath.Join(c.dir2, h.Path)); got != closed.SHA256 {
		t.Fatalf("n2's file now hashes to %s, want %s", got, closed.SHA256)
	}
	left, _ := filepath.Glob(filepath.Join(c.dir2, filepath.Dir(h.Path), "*.part"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// interruptible is a body whose blocked read Interrupt ends.
type interruptible struct{ *io.PipeReader }

func (b interruptible) Interrupt() { b.CloseWithError(errors.New("interrupted")) }

// A newer copy of one recording supersedes one still arriving: the older
// is interrupted and dropped, the newer kept whole.
func TestNewerCopySupersedesOlder(t *testing.T) {
	c := newCluster(t)
	data := []byte("{\"version\":2}\n[0.1,\"o\",\"hello\"]\n")
	openSession(t, c, "s-dup", time.Now())
	c.store.MustApply(t, &raftstore.RecordingHolderPut{Holder: raftstore.RecordingHolder{Name: "s-dup", Session: "s-dup", Node: "n1",
		Path: "2026-12-07/s-dup.cast", SHA256: hexSHA(data), Bytes: int64(len(data)), At: time.Now()}})
	pr, pw := io.Pipe()
	older := make(chan error, 1)
	go func() {
		_, err := c.n2.Receive(t.Context(), "n1", "s-dup", "s-dup", interruptible{pr}, func() string { return "" })
		older <- err
	}()
	if _, err := pw.Write(data[:10]); err != nil { // the older copy is under way
		t.Fatal(err)
	}
	got, err := c.n2.Receive(t.Context(), "n1", "s-dup", "s-dup", strings.NewReader(string(data)), func() string { return hexSHA(data) })
	if err != nil || got.Partial {
		t.Fatalf("newer copy: %+v, %v", got, err)
	}
	if err := <-older; !errors.Is(err, replica.ErrSuperseded) {
		t.Fatalf("older copy: %v, want ErrSuperseded", err)
	}
	h := holder(t, c, "s-dup")
	if h.Partial || fileSHA(t, filepath.Join(c.dir2, h.Path)) != hexSHA(data) {
		t.Fatalf("n2 holds %+v", h)
	}
}

// Receive keeps to the disk's free-space floor and to a cap on the copies
// one peer sends at once.
func TestReceiveLimits(t *testing.T) {
	c := newCluster(t)
	openSession(t, c, "s-lim", time.Now())
	openSession(t, c, "s-lim2", time.Now())
	free := uint64(0)
	r := replica.New(replica.Config{Dir: t.TempDir(), NodeID: "n2", Store: c.store, Logger: slog.New(slog.DiscardHandler),
		MinFreeBytes: 1 << 20, FreeSpace: func() (uint64, error) { return free, nil }, MaxReceivesPerPeer: 1})
	if _, err := r.Receive(t.Context(), "n1", "s-lim", "s-lim", strings.NewReader("x"), func() string { return "" }); !errors.Is(err, replica.ErrNoSpace) {
		t.Fatalf("below the floor: %v, want ErrNoSpace", err)
	}
	free = 1 << 30
	pr, pw := io.Pipe()
	first := make(chan error, 1)
	go func() {
		_, err := r.Receive(t.Context(), "n1", "s-lim", "s-lim", pr, func() string { return "" })
		first <- err
	}()
	if _, err := pw.Write([]byte("{")); err != nil { // the first copy is under way
		t.Fatal(err)
	}
	if _, err := r.Receive(t.Context(), "n1", "s-lim2", "s-lim2", strings.NewReader("x"), func() string { return "" }); !errors.Is(err, replica.ErrBusy) {
		t.Fatalf("a second copy from the same peer: %v, want ErrBusy", err)
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-first; err != nil {
		t.Fatalf("first copy: %v", err)
	}
}

// A copy goes in the folder of its session's start day, whenever it lands.
func TestCopyInSessionStartDay(t *testing.T) {
	c := newCluster(t)
	start := time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC)
	openSession(t, c, "s-day", start)
	r := replica.New(replica.Config{Dir: t.TempDir(), NodeID: "n2", Store: c.store, Logger: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return start.Add(2 * time.Minute) }})
	if _, err := r.Receive(t.Context(), "n1", "s-day", "s-day", &brokenBody{strings.NewReader("{")}, func() string { return "" }); err != nil {
		t.Fatal(err)
	}
	h := holder(t, c, "s-day")
	if want := filepath.Join("replicas", "2026-12-31", "s-day.cast"); h.Path != want {
		t.Fatalf("copy at %s, want %s", h.Path, want)
	}
}

// A node that has carried no session yet has no recordings directory: its
// free-space floor is checked on the filesystem it will be made on.
func TestFirstCopyOnANewNode(t *testing.T) {
	c := newCluster(t)
	openSession(t, c, "s-new", time.Now())
	dir := filepath.Join(t.TempDir(), "recordings")
	r := replica.New(replica.Config{Dir: dir, NodeID: "n2", Store: c.store, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: 1})
	if _, err := r.Receive(t.Context(), "n1", "s-new", "s-new", &brokenBody{strings.NewReader("{")}, func() string { return "" }); err != nil {
		t.Fatalf("first copy on a node without a recordings directory: %v", err)
	}
}
