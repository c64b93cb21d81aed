package jump

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/jump/sftpwatch"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Requests passed through on session channels, client to target. Anything
// else is answered "no" by the bastion itself. auth-agent-req is passed only
// when the project allows agent forwarding; x11 never.
var clientSessionRequests = []string{
	"pty-req", "env", "shell", "exec", "subsystem", "window-change", "signal", "break",
	"keepalive@openssh.com", "eow@openssh.com",
}

// Requests passed through on any channel, target to client (never with
// want-reply: see targetRequest). keepalive@openssh.com is answered by the
// bastion and not passed on.
var targetChannelRequests = []string{"exit-status", "exit-signal", "eow@openssh.com"}

// bridge relays one proxied connection: every channel the person opens is
// opened on the target (and the reverse for -R and agent channels), and
// every request passes through the policy above.
type bridge struct {
	s      *session
	client *gossh.ServerConn
	target *targetConn
	// outerReqs are requests on the person's direct-tcpip channel.
	outerReqs <-chan *gossh.Request

	in, out atomic.Int64 // bytes person→target, target→person

	mu    sync.Mutex
	pairs map[*pair]struct{}
	ended bool
}

// newBridge returns the bridge of session s, which from now on ends through
// it.
func newBridge(s *session, client *gossh.ServerConn, target *targetConn, outerReqs <-chan *gossh.Request) *bridge {
	b := &bridge{s: s, client: client, target: target, outerReqs: outerReqs, pairs: map[*pair]struct{}{}}
	s.touch()
	s.mu.Lock()
	s.shutdown = b.shutdown
	s.mu.Unlock()
	return b
}

func (b *bridge) bytes() (in, out int64) { return b.in.Load(), b.out.Load() }

// run serves until either side goes away. One loop handles the person's
// channel opens and global requests, and the target's channel opens, global
// requests and departure: an idle session costs as few goroutines as it can.
func (b *bridge) run(chans <-chan gossh.NewChannel, greqs <-chan *gossh.Request) {
	var wg sync.WaitGroup
	tchans, treqs, oreqs := b.target.chans, b.target.reqs, b.outerReqs
	// Global requests that wait for the target's reply (remote forwards)
	// are answered by a worker, started at the first one, so the loop keeps
	// taking the target's channel opens meanwhile (x/crypto queues only 16;
	// with more, the target's connection would stop reading, and its reply
	// with it). Once it exists every global request goes through it: replies
	// must keep the requests' order.
	var globalQueue chan *gossh.Request
	for chans != nil {
		select {
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.channel(nc)
			}()
		case r, ok := <-greqs:
			if !ok {
				greqs = nil
				continue
			}
			if globalQueue == nil && !b.waitsOnTarget(r) {
				b.globalRequest(r)
				continue
			}
			if globalQueue == nil {
				globalQueue = make(chan *gossh.Request, 16)
				wg.Add(1)
				go func(q <-chan *gossh.Request) {
					defer wg.Done()
					for r := range q {
						b.globalRequest(r)
					}
				}(globalQueue)
			}
			globalQueue <- r
		case nc, ok := <-tchans:
			if !ok {
				// When the target goes away, so does the person's
				// connection; unless the node ended the session
				// (shutdown), which closed the target itself and closes
				// the person's connection once they have read why.
				tchans = nil
				if !b.hasEnded() {
					b.client.Close()
				}
				continue
			}
			b.targetChannel(&wg, nc)
		case r, ok := <-oreqs:
			if !ok {
				oreqs = nil
				continue
			}
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		case r, ok := <-treqs:
			if !ok {
				treqs = nil
				continue
			}
			// Keepalives and host key announcements from the target's
			// sshd: "no" is an answer (sshd counts it as alive).
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}
	if globalQueue != nil {
		close(globalQueue)
	}
	for _, rs := range []<-chan *gossh.Request{greqs, treqs, oreqs} {
		if rs != nil {
			go gossh.DiscardRequests(rs)
		}
	}
	b.target.Close()
	if tchans != nil {
		go func() {
			for nc := range tchans {
				_ = nc.Reject(gossh.ConnectionFailed, "the session is over")
			}
		}()
	}
	wg.Wait()
}

// targetChannel relays a channel the target opens (a remote forward's
// connection, the agent) to the person when the project allows it.
func (b *bridge) targetChannel(wg *sync.WaitGroup, nc gossh.NewChannel) {
	s := b.s.settings
	kind := nc.ChannelType()
	allowed := kind == "forwarded-tcpip" && s.AllowRemoteForward || kind == "auth-agent@openssh.com" && s.AllowAgentForward
	if !allowed {
		_ = nc.Reject(gossh.Prohibited, "channel type not allowed through Rampart")
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		cch, creqs, err := b.client.OpenChannel(kind, nc.ExtraData())
		if err != nil {
			_ = nc.Reject(gossh.ConnectionFailed, "the person's client refused the channel")
			return
		}
		tch, treqs, err := nc.Accept()
		if err != nil {
			cch.Close()
			return
		}
		b.pipe(&pair{b: b, s: b.s, person: cch, target: tch}, creqs, treqs)
	}()
}

// channel handles a channel the person opened.
func (b *bridge) channel(nc gossh.NewChannel) {
	s := b.s.settings
	switch nc.ChannelType() {
	case "session":
	case "direct-tcpip":
		var d directTCPIP
		_ = gossh.Unmarshal(nc.ExtraData(), &d)
		if !s.AllowLocalForward {
			b.s.event(EventForwardRefuse, "kind", "local", "destination", raftstore.ClientText(d.DestAddr))
			_ = nc.Reject(gossh.Prohibited, "port forwarding is not allowed in project "+b.s.project)
			return
		}
		b.s.event(EventForwardOpen, "kind", "local", "destination", raftstore.ClientText(d.DestAddr), "port", itoa(int(d.DestPort)))
	default:
		_ = nc.Reject(gossh.UnknownChannelType, "channel type not supported through Rampart")
		return
	}
	tch, treqs, err := b.target.OpenChannel(nc.ChannelType(), nc.ExtraData())
	if err != nil {
		if oe, ok := err.(*gossh.OpenChannelError); ok {
			_ = nc.Reject(oe.Reason, oe.Message)
		} else {
			_ = nc.Reject(gossh.ConnectionFailed, "the target refused the channel")
		}
		return
	}
	cch, creqs, err := nc.Accept()
	if err != nil {
		tch.Close()
		return
	}
	b.pipe(&pair{b: b, s: b.s, person: cch, target: tch, session: nc.ChannelType() == "session"}, creqs, treqs)
}

// waitsOnTarget reports whether answering r means asking the target.
func (b *bridge) waitsOnTarget(r *gossh.Request) bool {
	return (r.Type == "tcpip-forward" || r.Type == "cancel-tcpip-forward") && b.s.settings.AllowRemoteForward
}

// globalRequest answers one of the person's global requests: remote
// forwarding when allowed (passed to the target), and "no" to the rest.
func (b *bridge) globalRequest(r *gossh.Request) {
	switch r.Type {
	case "tcpip-forward", "cancel-tcpip-forward":
		if !b.s.settings.AllowRemoteForward {
			b.s.event(EventForwardRefuse, "kind", "remote")
			_ = r.Reply(false, nil)
			return
		}
		ok, payload, err := b.target.SendRequest(r.Type, r.WantReply, r.Payload)
		if err != nil {
			ok = false
		}
		if ok && r.Type == "tcpip-forward" {
			b.s.event(EventForwardOpen, "kind", "remote")
		}
		_ = r.Reply(ok, payload)
	default:
		_ = r.Reply(false, nil)
	}
}

// pair is one channel relayed between the person and the target.
type pair struct {
	b       *bridge
	s       *session
	person  gossh.Channel
	target  gossh.Channel
	session bool

	mu  sync.Mutex
	rec Recorder
	// recBroken: the recording failed, nothing more goes to it.
	// dropOutput: it failed and the project fails closed, so the target's
	// output is not passed on while the session ends.
	recBroken, dropOutput bool
	recFirst              bool // the connection's first recording (the session record names it)
	recTried              bool // a recording was started (or failed to): one per channel
	// sftp reads the file operations of an sftp subsystem channel from
	// its two streams (nil on other channels).
	sftp atomic.Pointer[sftpwatch.Watcher]
}

// pipe relays data, stderr and requests both ways, and closes each side in
// the right order: the person's side closes only after everything the target
// sent (data, stderr, exit-status) has been passed on.
func (b *bridge) pipe(p *pair, creqs, treqs <-chan *gossh.Request) {
	b.mu.Lock()
	b.pairs[p] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pairs, p)
		b.mu.Unlock()
		p.closeRecording()
		if w := p.sftp.Load(); w != nil {
			w.End()
		}
	}()

	// The person gets EOF once both of the target's streams have ended:
	// after EOF x/crypto refuses stderr, so the last lines of a command that
	// fails at once would be lost if stdout's end sent it first.
	// The EOF itself is sent by the request loop (eofReady), after the
	// requests the target sent before its EOF: sshd sends exit-status
	// first, and a client that gets EOF first may lose it (OpenSSH's
	// ControlMaster then reports exit 255 for a session that exited 0).
	var fromTarget sync.WaitGroup
	var streams atomic.Int32
	streams.Store(1)
	eofReady := make(chan struct{})
	streamEnded := func() {
		if streams.Add(-1) == 0 {
			close(eofReady)
		}
		fromTarget.Done()
	}
	fromTarget.Add(1)
	// Only session channels carry stderr (extended data); a forwarded
	// connection's goroutine would wait on it for nothing.
	if p.session {
		streams.Add(1)
		fromTarget.Add(1)
		go func() {
			defer streamEnded()
			// Recorded too: an exec session's stderr is part of what it
			// showed (a pty session's comes on stdout).
			n, _ := relay(p.person.Stderr(), &recordingReader{r: p.target.Stderr(), s: p.s, p: p})
			b.out.Add(n)
		}()
	}
	go func() {
		defer streamEnded()
		n, _ := relay(p.person, &recordingReader{r: p.target, s: p.s, p: p, stdout: true})
		b.out.Add(n)
	}()
	go func() {
		n, _ := relay(p.target, &inputReader{r: p.person, s: p.s, p: p})
		b.in.Add(n)
		_ = p.target.CloseWrite()
	}()
	// One loop serves the requests of both sides, so an idle channel costs
	// no goroutine for them. It never waits on the person: the target's
	// requests are passed on without asking the person to reply (see
	// targetRequest), and the wait for the target's output to drain runs
	// apart, so the person's requests, and the window adjusts queued behind
	// them in the person's connection, keep moving. It waits only for the
	// target's reply to a request of the person's; a target that floods
	// requests meanwhile stalls its own connection, as one that never
	// replies would. reqMu keeps the person's side open until the reply to a
	// request in flight (exec of a command that exits at once) has been sent.
	var reqMu sync.Mutex
	closed := make(chan struct{})
	// On a session the person gets EOF after the exit status too, whatever
	// order the target sent them in (sshd with a pty may send EOF first):
	// OpenSSH's ControlMaster closes a channel as soon as both sides have
	// sent EOF, and x/crypto answers that close at once, so an exit status
	// sent after it is lost and the multiplexed session reports 255.
	eofHeld, exitSeen := false, !p.session
	sendEOF := func() {
		eofHeld = false
		_ = p.person.CloseWrite()
	}
	fromTargetRequest := func(r *gossh.Request) {
		p.targetRequest(r)
		if r.Type == "exit-status" || r.Type == "exit-signal" {
			exitSeen = true
			if eofHeld {
				sendEOF()
			}
		}
	}
	targetClosed := func() {
		// The target closed the channel: pass on what it sent, then close.
		treqs = nil
		if eofHeld {
			sendEOF()
		}
		go func() {
			defer close(closed)
			fromTarget.Wait()
			reqMu.Lock()
			p.person.Close()
			reqMu.Unlock()
		}()
	}
	for creqs != nil || treqs != nil {
		select {
		case <-eofReady:
			eofReady = nil
			// x/crypto queues a channel request before it reads the
			// packets after it, so what the target sent before its EOF
			// is queued by now: pass it on first.
			for drained := false; !drained && treqs != nil; {
				select {
				case r, ok := <-treqs:
					if !ok {
						targetClosed()
						continue
					}
					fromTargetRequest(r)
				default:
					drained = true
				}
			}
			if exitSeen || treqs == nil {
				sendEOF()
			} else {
				eofHeld = true
			}
		case r, ok := <-creqs:
			if !ok {
				// The person closed the channel.
				creqs = nil
				p.target.Close()
				continue
			}
			reqMu.Lock()
			p.personRequest(r)
			reqMu.Unlock()
		case r, ok := <-treqs:
			if !ok {
				targetClosed()
				continue
			}
			fromTargetRequest(r)
		}
	}
	<-closed
}

// targetRequest passes on the requests a target may send on a channel
// (exit-status, exit-signal, eow) and answers "no" to the rest. They go on
// without asking the person to reply, so the request loop never waits on
// the person; a target that asks for a reply (sshd's client-alive
// keepalive@openssh.com) gets it from the bastion, which is the target's
// client: the person's own connection is watched by the node.
func (p *pair) targetRequest(r *gossh.Request) {
	ok := false
	if slices.Contains(targetChannelRequests, r.Type) {
		_, err := p.person.SendRequest(r.Type, false, r.Payload)
		ok = err == nil
	}
	if r.WantReply {
		_ = r.Reply(ok, nil)
	}
}

// personRequest applies policy to a request the person sent on a channel.
// Only session channels take requests; on others (forwards, agent) every
// request is refused unseen.
func (p *pair) personRequest(r *gossh.Request) {
	if !p.session {
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
		return
	}
	s := p.s
	pass := p.session && slices.Contains(clientSessionRequests, r.Type)
	switch r.Type {
	case "auth-agent-req@openssh.com":
		pass = p.session && s.settings.AllowAgentForward
		if !pass {
			s.event(EventForwardRefuse, "kind", "agent")
		}
	case "pty-req", "exec", "shell":
		if err := p.startRequestRecording(r.Type, r.Payload); err != nil {
			p.endUnrecorded(r, err)
			return
		}
	case "window-change":
		var wc struct{ W, H, PW, PH uint32 }
		if gossh.Unmarshal(r.Payload, &wc) == nil {
			p.resize(int(wc.W), int(wc.H))
		}
	case "subsystem":
		var e struct{ Name string }
		_ = gossh.Unmarshal(r.Payload, &e)
		s.event(EventSessionSubsystem, "subsystem", raftstore.ClientText(e.Name))
		if e.Name == "sftp" && pass {
			// Watched from its first byte: the request goes on below.
			p.sftp.CompareAndSwap(nil, sftpwatch.New(func(typ string, kv ...string) { s.event(typ, kv...) }))
		} else if pass {
			if err := p.startRequestRecording(r.Type, r.Payload); err != nil {
				p.endUnrecorded(r, err)
				return
			}
		}
	}
	if !pass {
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
		return
	}
	ok, err := p.target.SendRequest(r.Type, r.WantReply, r.Payload)
	if err != nil {
		ok = false
	}
	if r.WantReply {
		_ = r.Reply(ok, nil)
	}
}

// endUnrecorded ends a session whose channel request r could not start
// the recording its project requires. The reason, and no refusal: OpenSSH
// quits as soon as an explicitly requested pty (-t) is refused, without
// printing what came before it. The connection closes at once instead (the
// client waits for this reply, so it would not leave).
func (p *pair) endUnrecorded(r *gossh.Request, err error) {
	p.s.endUnrecorded(err)
	p.b.client.Close()
	if r.WantReply {
		_ = r.Reply(false, nil)
	}
}

// shutdownGrace is how long shutdown waits for the person's client to take
// the message before it closes the connections anyway.
const shutdownGrace = 2 * time.Second

// shutdown tells the person why and ends the connection.
func (b *bridge) shutdown(msg string) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	b.ended = true
	pairs := make([]*pair, 0, len(b.pairs))
	for p := range b.pairs {
		pairs = append(pairs, p)
	}
	b.mu.Unlock()
	// The message needs window from the person's client: one that grants
	// none must not keep the session (or whoever ends it) waiting.
	force := time.AfterFunc(shutdownGrace, func() {
		b.target.Close()
		b.client.Close()
	})
	defer force.Stop()
	for _, p := range pairs {
		if p.session {
			_, _ = p.person.Stderr().Write([]byte("\r\n" + msg + "\r\n"))
			_, _ = p.person.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{255}))
			_ = p.person.CloseWrite()
		}
	}
	b.target.Close()
	// The person's client leaves once it has read the message: closing
	// under it at once can cut it off mid-stream (OpenSSH's ssh -J then
	// fails writing to its proxy before it reads what was sent), and the
	// message is lost. Those that stay are closed when the grace ends. The
	// caller does not wait for either (it may be the handler of a request
	// the client waits on).
	go func() {
		left := make(chan struct{})
		go func() {
			_ = b.client.Wait()
			close(left)
		}()
		select {
		case <-left:
		case <-time.After(shutdownGrace):
		}
		b.client.Close()
	}()
}

// hasEnded reports whether shutdown has run.
func (b *bridge) hasEnded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ended
}

func itoa(n int) string { return strconv.Itoa(n) }
