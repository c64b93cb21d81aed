package adminshell

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"

	"github.com/rampart-ssh/rampart/raftstore"
)

// How long-running commands (audit tail -f, sessions replay) stop: Ctrl-C,
// the end of the session, or the admin's own account being disabled.

// ctrlC is the byte a terminal sends for Ctrl-C.
const ctrlC = 0x03

// errRevoked ends an interactive session whose admin is no longer active;
// errNotAdmin (which is also an errRevoked) one whose admin left the admin
// group.
var (
	errRevoked        = errors.New("your account is no longer active")
	errNotAdmin error = notAdmin{}
)

type notAdmin struct{}

func (notAdmin) Error() string        { return "you are no longer in the admin group" }
func (notAdmin) Is(target error) bool { return target == errRevoked }

// revocation is closed (done) once the admin may no longer use the shell;
// err, written before done is closed, says why.
type revocation struct {
	done chan struct{}
	err  error
}

// actorRetry is the pause after a failed read of the admin's user record.
const actorRetry = time.Second

// inputPump reads the terminal for the whole interactive session, so that a
// running command can watch for Ctrl-C without taking keys away from the
// line editor that reads after it: whoever is reading (the editor between
// commands, a watcher during one) takes the next chunk.
type inputPump struct {
	chunks  chan []byte
	done    chan struct{}
	revoked *revocation
	// err is the read error that ended the input; it is written before
	// chunks is closed and read only after.
	err error
	// pending is what the line editor has not consumed of its last chunk;
	// only the editor's goroutine touches it.
	pending []byte
	once    sync.Once
}

// newInputPump starts reading r. Its goroutine ends when r fails (the caller
// closes the channel under r when the session ends), or at stop once it is
// not inside a read.
func newInputPump(r io.Reader, revoked *revocation) *inputPump {
	p := &inputPump{chunks: make(chan []byte), done: make(chan struct{}), revoked: revoked}
	go p.run(r)
	return p
}

func (p *inputPump) run(r io.Reader) {
	defer close(p.chunks)
	for {
		buf := make([]byte, 1024)
		n, err := r.Read(buf)
		if n > 0 {
			select {
			case p.chunks <- buf[:n]:
			case <-p.done:
				return
			}
		}
		if err != nil {
			p.err = err
			return
		}
	}
}

// stop releases the reader goroutine from a pending hand-over.
func (p *inputPump) stop() { p.once.Do(func() { close(p.done) }) }

// Read serves the line editor. It fails with errRevoked once the admin is no
// longer active or no longer in the admin group, which ends the session at
// its next prompt.
func (p *inputPump) Read(b []byte) (int, error) {
	for len(p.pending) == 0 {
		select {
		case chunk, ok := <-p.chunks:
			if !ok {
				if p.err == nil {
					return 0, io.EOF
				}
				return 0, p.err
			}
			p.pending = chunk
		case <-p.revoked.done:
			return 0, p.revoked.err
		}
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}

// watch returns a context that ends when the admin presses Ctrl-C, the input
// ends, or the admin is revoked, and the function that stops watching (which
// must be called before the line editor reads again). Keys other than Ctrl-C
// are dropped meanwhile: nothing would read them while output streams.
func (p *inputPump) watch(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case chunk, ok := <-p.chunks:
				if !ok || bytes.IndexByte(chunk, ctrlC) >= 0 {
					cancel()
					return
				}
			case <-p.revoked.done:
				cancel()
				return
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			close(stop)
			<-done
			cancel()
		})
	}
}

// interruptible returns the context a long-running command runs under and
// the function that ends it. Interactively it ends on Ctrl-C; one-shot
// (`ssh -t admin@bastion audit tail -f`) on a Ctrl-C byte on the session's
// input, or when the session ends. Either way it ends when the admin's own
// account stops being active.
func (v *invocation) interruptible() (context.Context, context.CancelFunc) {
	if v.watch != nil {
		return v.watch(v.ctx)
	}
	ctx, cancel := context.WithCancel(v.ctx)
	revoked := v.sh.watchActor(ctx, v.actor)
	go func() {
		select {
		case <-revoked.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	if v.in != nil {
		in := v.in
		// This reader is owned by the session: it ends when the session's
		// input does, at the latest when the session closes.
		go func() {
			buf := make([]byte, 256)
			for {
				n, err := in.Read(buf)
				if bytes.IndexByte(buf[:n], ctrlC) >= 0 {
					cancel()
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	return ctx, cancel
}

// watchActor returns the revocation of the admin actor: closed once their
// user exists and is not active (disabled or deleted), or their last ID
// token no longer names actor.AdminGroup (when set: the IdP took them out
// of the admin group, seen at their re-validation or next sign-in),
// watching the users table until ctx ends. An actor the store does not know
// is never revoked here: the front door only lets active users in.
func (s *Shell) watchActor(ctx context.Context, actor Actor) *revocation {
	revoked := &revocation{done: make(chan struct{})}
	if actor.UserID == "" {
		return revoked
	}
	go func() {
		var index uint64
		for ctx.Err() == nil {
			var u *raftstore.User
			idx, err := raftstore.BlockingQuery(ctx, s.store, index, 0, func(ws memdb.WatchSet, st *raftstore.State) (uint64, error) {
				i, user, err := st.UserByID(ws, actor.UserID)
				u = user
				return i, err
			})
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.logger.Warn("admin session: cannot read the admin's user record", "user_id", actor.UserID, "err", err)
				t := time.NewTimer(actorRetry)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				continue
			}
			switch {
			case u == nil:
			case u.Status != raftstore.UserActive:
				revoked.err = errRevoked
			case actor.AdminGroup != "" && !slices.Contains(u.GroupsFromToken(), actor.AdminGroup):
				revoked.err = errNotAdmin
			}
			if revoked.err != nil {
				s.logger.Info("admin session ends", "user", actor.Login, "user_id", actor.UserID, "reason", revoked.err.Error())
				close(revoked.done)
				return
			}
			index = idx
		}
	}()
	return revoked
}
