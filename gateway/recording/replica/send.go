package replica

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// connectTimeout bounds connecting to a peer and waiting for its answer
// once the body is sent; the body itself takes as long as the session.
const connectTimeout = 30 * time.Second

// maxLiveBacklog is how much of a live copy may wait for a slow peer before
// the live copy is given up (the whole file is pushed at close instead): a
// session never waits for another node.
const maxLiveBacklog = 8 << 20

// Received is a receiving node's answer: what it checked and now holds.
type Received struct {
	Node    string `json:"node"`
	SHA256  string `json:"sha256"`
	Bytes   int64  `json:"bytes"`
	Partial bool   `json:"partial"`
}

// client returns an HTTP client whose TLS accepts only node nodeID.
func (r *Replicator) client(nodeID string) *http.Client {
	cfg := r.cfg.TLS.Clone()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the node presented no certificate")
		}
		role, id, ok := api.Identity(cs.PeerCertificates[0])
		if !ok || role != api.RoleNode || id != nodeID {
			return fmt.Errorf("the server is %s %q, not node %q", role, id, nodeID)
		}
		return nil
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, TLSHandshakeTimeout: connectTimeout,
		ResponseHeaderTimeout: connectTimeout, DialContext: (&net.Dialer{Timeout: connectTimeout}).DialContext, DisableKeepAlives: true}}
}

// send PUTs body to peer as recording name of session, with sha (read once
// body has ended) as the trailer, and returns the peer's answer.
func (r *Replicator) send(ctx context.Context, peer *raftstore.Node, name, session string, body io.Reader, sha *[]string) (*Received, error) {
	u := "https://" + peer.APIAddr + InternalPath + url.PathEscape(name) + "?session=" + url.QueryEscape(session)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1 // chunked: the trailer follows the body
	// The transport reads the trailer's value only once body has ended,
	// so the sender fills in (*sha)[0] before it ends the body.
	req.Trailer = http.Header{TrailerSHA256: *sha}
	req.Header.Set("Content-Type", "application/x-asciicast")
	resp, err := r.client(peer.ID).Do(req)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", peer.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return nil, fmt.Errorf("node %s: %s: %s", peer.ID, resp.Status, e.Error)
	}
	var got Received
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&got); err != nil {
		return nil, fmt.Errorf("node %s: %w", peer.ID, err)
	}
	return &got, nil
}

// push copies a closed recording file to peer.
func (r *Replicator) push(ctx context.Context, peer *raftstore.Node, c Closed) error {
	root, err := os.OpenRoot(r.cfg.Dir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.Open(c.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	sha := []string{c.SHA256}
	got, err := r.send(ctx, peer, c.Name, c.Session, f, &sha)
	if err != nil {
		return err
	}
	if got.Partial || got.SHA256 != c.SHA256 {
		return fmt.Errorf("node %s holds %s (partial %v), not %s", peer.ID, got.SHA256, got.Partial, c.SHA256)
	}
	return nil
}

// Live is a recording streamed to another node as it is written. Its
// Write never blocks: bytes wait in a bounded buffer for a sender
// goroutine, and a peer too slow for it loses the live copy.
type Live struct {
	peer string
	sha  []string // the trailer's value, set by Finish

	mu     sync.Mutex
	buf    []byte
	wake   chan struct{}
	ending bool  // Finish was called: send what is left, then the trailer
	failed error // the live copy was given up
	cancel context.CancelFunc
	// started is closed when the transport first reads the body: past
	// the point where it reads the trailer's (empty) value once, so the
	// value may be set.
	started chan struct{}
	done    chan struct{} // closed when the request has returned
	got     *Received
	err     error
}

// Live starts streaming recording name of session to the first other
// node; nil when there is none or replication is off.
func (r *Replicator) Live(name, session string) *Live {
	if r.cfg.Replicas < 2 {
		return nil
	}
	peers := r.peers(name)
	if len(peers) == 0 {
		return nil
	}
	peer := peers[0]
	ctx, cancel := context.WithCancel(context.Background())
	l := &Live{peer: peer.ID, sha: make([]string, 1), wake: make(chan struct{}, 1), cancel: cancel,
		started: make(chan struct{}), done: make(chan struct{})}
	pr, pw := io.Pipe()
	go l.pump(pw)
	go func() {
		defer close(l.done)
		l.got, l.err = r.send(ctx, peer, name, session, &startReader{r: pr, started: l.started}, &l.sha)
		_ = pr.CloseWithError(errors.New("the request ended"))
	}()
	return l
}

// Write queues p for the peer (a recording.Config Tee).
func (l *Live) Write(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil || l.ending {
		return
	}
	if len(l.buf)+len(p) > maxLiveBacklog {
		l.failed = fmt.Errorf("node %s fell %d bytes behind", l.peer, len(l.buf)+len(p))
		l.buf = nil
		l.cancel()
		return
	}
	l.buf = append(l.buf, p...)
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// pump writes the buffer to the request body until Finish or a failure.
func (l *Live) pump(pw *io.PipeWriter) {
	for {
		l.mu.Lock()
		out, ending, failed := l.buf, l.ending, l.failed
		l.buf = nil
		l.mu.Unlock()
		if failed != nil {
			_ = pw.CloseWithError(failed)
			return
		}
		if len(out) > 0 {
			if _, err := pw.Write(out); err != nil {
				l.fail(err)
				return
			}
			continue
		}
		if ending {
			_ = pw.Close() // EOF: the transport sends the trailer
			return
		}
		select {
		case <-l.wake:
		case <-l.done:
			return
		}
	}
}

func (l *Live) fail(err error) {
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	l.mu.Unlock()
	l.cancel()
}

// Abort gives up the live copy (the recording could not start).
func (l *Live) Abort() {
	if l != nil {
		l.fail(errors.New("the recording was abandoned"))
	}
}

// Finish ends the live copy with the recording's SHA-256 and waits for the
// peer's check. It returns the peer's id when the peer holds exactly it.
func (l *Live) Finish(ctx context.Context, sha string) (string, error) {
	// The transport checks the trailer's value before it sends anything:
	// it is set only once the body is being read (or the request is over).
	select {
	case <-l.started:
	case <-l.done:
	case <-ctx.Done():
		l.cancel()
		<-l.done
		return "", ctx.Err()
	}
	l.mu.Lock()
	failed := l.failed
	if failed == nil {
		l.sha[0] = sha // read by the transport only after the body's EOF
		l.ending = true
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	if failed != nil {
		<-l.done
		return "", failed
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		l.cancel()
		<-l.done
		return "", ctx.Err()
	}
	switch {
	case l.err != nil:
		return "", l.err
	case l.got.Partial || l.got.SHA256 != sha:
		return "", fmt.Errorf("node %s holds %s (partial %v), not %s", l.peer, l.got.SHA256, l.got.Partial, sha)
	}
	return l.peer, nil
}

// startReader closes started when it is first read.
type startReader struct {
	r       io.Reader
	started chan struct{}
	once    sync.Once
}

func (s *startReader) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.started) })
	return s.r.Read(p)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// dayDir is where a copy of a session that started at start goes,
// relative to Dir: the session's start day, as on the node that carried it.
func dayDir(start time.Time) string {
	return filepath.Join("replicas", start.UTC().Format(time.DateOnly))
}
