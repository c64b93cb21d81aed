package raftstore

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"sync"
	"time"
)

// forwardTimeout bounds one forwarded call, dial included.
const forwardTimeout = 30 * time.Second

// ForwardArgs carries a follower's request to the leader.
type ForwardArgs struct {
	// Data is a framed command (Apply).
	Data []byte
	// ID and Addr name a server (AddVoter, RemoveServer).
	ID, Addr string
}

// ForwardReply carries the leader's answer. Errors travel as a stable code
// plus message so that the follower's caller can still match sentinels.
type ForwardReply struct {
	Index   uint64
	Value   []byte
	ErrCode string
	ErrMsg  string
}

func replyErr(reply *ForwardReply, err error) {
	if err != nil {
		reply.ErrCode, reply.ErrMsg = ErrorCode(err), err.Error()
	}
}

// forwardService is the net/rpc service the leader serves to followers. It
// always answers with a nil rpc error; the outcome is in the reply.
type forwardService struct{ s *Store }

// leading refuses with ErrNotLeader unless this node leads: a follower that
// still holds a connection to a former (or shut down) leader then retries
// with the new one, and nothing entered any log.
func (f *forwardService) leading(reply *ForwardReply) bool {
	if f.s.IsLeader() {
		return true
	}
	replyErr(reply, ErrNotLeader)
	return false
}

// Apply proposes a command a follower received.
func (f *forwardService) Apply(args *ForwardArgs, reply *ForwardReply) error {
	if !f.leading(reply) {
		return nil
	}
	res, err := f.s.applyLocal(args.Data)
	if err == nil {
		reply.Index, reply.Value = res.Index, res.value
	}
	replyErr(reply, err)
	return nil
}

// ReadIndex confirms leadership and returns the index a linearizable read
// must wait for.
func (f *forwardService) ReadIndex(_ *ForwardArgs, reply *ForwardReply) error {
	if !f.leading(reply) {
		return nil
	}
	idx, err := f.s.readIndexLocal()
	reply.Index = idx
	replyErr(reply, err)
	return nil
}

// AddVoter adds a server to the raft configuration as a voter.
func (f *forwardService) AddVoter(args *ForwardArgs, reply *ForwardReply) error {
	if f.leading(reply) {
		replyErr(reply, f.s.addVoterLocal(args.ID, args.Addr))
	}
	return nil
}

// AddNonvoter adds a server that receives the log but does not vote yet.
func (f *forwardService) AddNonvoter(args *ForwardArgs, reply *ForwardReply) error {
	if f.leading(reply) {
		idx, err := f.s.addNonvoterLocal(args.ID, args.Addr)
		reply.Index = idx
		replyErr(reply, err)
	}
	return nil
}

// RemoveServer removes a server from the raft configuration.
func (f *forwardService) RemoveServer(args *ForwardArgs, reply *ForwardReply) error {
	if f.leading(reply) {
		replyErr(reply, f.s.removeServerLocal(args.ID))
	}
	return nil
}

// forwarder keeps one rpc client per leader address. net/rpc multiplexes
// concurrent calls on one connection.
type forwarder struct {
	m *mux

	mu      sync.Mutex
	clients map[string]*rpc.Client
}

func newForwarder(m *mux) *forwarder {
	return &forwarder{m: m, clients: map[string]*rpc.Client{}}
}

// errForwardUnsent marks a forward that failed before the request could have
// reached the leader, so retrying it cannot apply a command twice.
var errForwardUnsent = errors.New("forward not sent")

func (f *forwarder) client(addr string) (*rpc.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[addr]; ok {
		return c, nil
	}
	conn, err := f.m.dial(addr, protoForward, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errForwardUnsent, err)
	}
	var ack [1]byte
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, ack[:]); err != nil || ack[0] != forwardAccepted {
		conn.Close()
		return nil, fmt.Errorf("%w: %w: the leader at %s did not admit this node (yet)", errForwardUnsent, ErrPeerRefused, addr)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := rpc.NewClient(conn)
	f.clients[addr] = c
	return c, nil
}

func (f *forwarder) drop(addr string, c *rpc.Client) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.clients[addr] == c {
		delete(f.clients, addr)
	}
	c.Close()
}

// call invokes method on the leader at addr.
func (f *forwarder) call(addr, method string, args *ForwardArgs) (*ForwardReply, error) {
	c, err := f.client(addr)
	if err != nil {
		return nil, err
	}
	reply := new(ForwardReply)
	call := c.Go("Forward."+method, args, reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
	case <-time.After(forwardTimeout):
		f.drop(addr, c)
		return nil, fmt.Errorf("forward %s to leader %s: timed out: %w", method, addr, ErrOutcomeUnknown)
	}
	if call.Error != nil {
		f.drop(addr, c)
		if errors.Is(call.Error, rpc.ErrShutdown) {
			// The cached connection was already dead: nothing was sent on it.
			return nil, fmt.Errorf("%w: %w", errForwardUnsent, call.Error)
		}
		return nil, fmt.Errorf("forward %s to leader %s: %w (%v)", method, addr, ErrOutcomeUnknown, call.Error)
	}
	return reply, errorFromWire(reply.ErrCode, reply.ErrMsg)
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for addr, c := range f.clients {
		c.Close()
		delete(f.clients, addr)
	}
}

// serveForward serves the forwarding protocol on one accepted connection.
func (s *Store) serveForward(conn net.Conn) {
	s.rpcServer.ServeConn(conn)
}
