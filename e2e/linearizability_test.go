package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// Parameters of the linearizability run.
const (
	linClients = 6
	// linDuration is how long the clients run at least; the run lasts until
	// the nemesis has also done linMinRounds rounds.
	linDuration  = 20 * time.Second
	linMinRounds = 2
	// linRequestTimeout bounds one client request; it outlasts an election.
	linRequestTimeout = 4 * time.Second
	// linMinOKWrites is how many acknowledged writes make the history worth
	// checking: fewer, and a pass would say little.
	linMinOKWrites = 100
	// linCheckTimeout bounds the checker; running out is a failure, not a pass.
	linCheckTimeout = 2 * time.Minute
)

// linKeys are the projects the clients write and read; each is a register.
var linKeys = []string{"lin-a", "lin-b", "lin-c", "lin-d"}

// linInput is one operation on a register: a write of Value, or a read.
type linInput struct {
	Write bool
	Key   string
	Value string
}

// linOutput is what a read returned: the description, "" when the project
// does not exist. Writes have no output.
type linOutput struct {
	Value string
}

// registerModel is a set of independent registers, one per key, each
// starting out absent (""). Partitioning by key lets the checker take each
// register alone.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(linInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(linInput)
		if in.Write {
			return true, in.Value
		}
		return output.(linOutput).Value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		if in.Write {
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, output.(linOutput).Value)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// history records operations as clients complete them. Times are nanoseconds
// since start on the monotonic clock.
type history struct {
	start time.Time

	mu            sync.Mutex
	ops           []porcupine.Operation
	nextClient    int
	okWrites      int
	unknownWrites int
	okReads       int
	failedReads   int
	annotations   []porcupine.Annotation
	// failures counts failed requests by kind, for the log.
	failures map[string]int
}

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

// newClient returns a fresh porcupine client id. A client whose write has an
// unknown outcome carries on under a new id, as a crashed process would be
// replaced: porcupine expects one client's operations not to overlap, and
// the unknown write stays open until the end of time.
func (h *history) newClient() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextClient++
	return h.nextClient - 1
}

func (h *history) add(op porcupine.Operation, count *int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
	*count++
}

// failed counts a failed request of op ("put", "get") by the kind of error.
func (h *history) failed(op string, err error) {
	kind := "other"
	var ne net.Error
	switch s := client.StatusOf(err); {
	case s != 0:
		kind = strconv.Itoa(s)
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = "timeout"
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures == nil {
		h.failures = map[string]int{}
	}
	h.failures[op+" "+kind]++
}

func (h *history) annotate(desc string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.annotations = append(h.annotations, porcupine.Annotation{Tag: "nemesis", Start: h.now(), Description: desc})
}

func (h *history) writesOK() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.okWrites
}

// writeOutcome sorts a write's error into what the client knows of it.
type writeOutcome int

const (
	writeOK      writeOutcome = iota
	writeRefused              // certainly not applied
	writeUnknown              // may have been applied, now or at any later time
)

func classifyWrite(err error) writeOutcome {
	switch s := client.StatusOf(err); {
	case err == nil:
		return writeOK
	case s >= 400 && s < 500:
		// The API refused the request before proposing it (a 401 from a
		// replica still catching up, say).
		return writeRefused
	case s == 0 && errors.Is(err, syscall.ECONNREFUSED):
		// The node was down: the request never left the client.
		return writeRefused
	}
	// A timeout, a broken connection, a 5xx (a lost leader, a forward that
	// failed after it was sent): the command may yet commit.
	return writeUnknown
}

// TestLinearizability runs concurrent clients against a three-node cluster
// while a nemesis kills the leader with SIGKILL and restarts it, records
// every operation, and checks with porcupine that the writes and consistent
// reads of each project form a linearizable register.
func TestLinearizability(t *testing.T) {
	c := NewCluster(t, "a", newIPs(t, "cluster a", 3)...)
	fatalIf(t, c.Start(), "start the cluster")

	h := &history{start: time.Now()}
	ctx, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	var clients sync.WaitGroup
	for i := range linClients {
		clients.Go(func() { runClient(ctx, c, h, uint64(i)) })
	}

	rounds, nemesisErr := runNemesis(c, h)
	stopClients()
	clients.Wait()
	fatalIf(t, nemesisErr, "nemesis")

	h.mu.Lock()
	ops := h.ops
	t.Logf("%d rounds of kill -9 and restart; %d operations: %d writes acknowledged, %d writes of unknown outcome, %d reads, %d reads failed (dropped)",
		rounds, len(ops), h.okWrites, h.unknownWrites, h.okReads, h.failedReads)
	okWrites, okReads := h.okWrites, h.okReads
	annotations := h.annotations
	t.Logf("failed requests by kind: %v", h.failures)
	h.mu.Unlock()
	if okWrites < linMinOKWrites || okReads < linMinOKWrites {
		t.Errorf("only %d writes and %d reads succeeded, want at least %d of each for a meaningful check", okWrites, okReads, linMinOKWrites)
	}

	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, linCheckTimeout)
	if res != porcupine.Ok {
		info.AddAnnotations(annotations)
		path := artifactPath(t, "linearizability.html")
		if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
			t.Errorf("write the visualization: %v", err)
		}
		verdict := "NOT linearizable"
		if res == porcupine.Unknown {
			verdict = fmt.Sprintf("not proven linearizable: the checker ran out of time (%s)", linCheckTimeout)
		}
		t.Errorf("history of %d operations is %s; visualization: %s", len(ops), verdict, path)
	}
}

// runClient writes unique values and reads consistently, each time on a
// random project through a random node, until ctx ends.
func runClient(ctx context.Context, c *Cluster, h *history, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	client := h.newClient()
	for seq := 0; ctx.Err() == nil; seq++ {
		n := c.Nodes[rng.IntN(len(c.Nodes))]
		key := linKeys[rng.IntN(len(linKeys))]
		// Each request has its own deadline, not ctx: ending the run must not
		// turn requests in flight into failures.
		rctx, cancel := context.WithTimeout(context.Background(), linRequestTimeout)
		var err error
		isWrite := rng.IntN(2) == 0
		if isWrite {
			in := linInput{Write: true, Key: key, Value: fmt.Sprintf("c%d-%d", client, seq)}
			call := h.now()
			_, err = n.API().PutProject(rctx, key, &api.Project{Description: in.Value})
			ret := h.now()
			switch classifyWrite(err) {
			case writeOK:
				h.add(porcupine.Operation{ClientId: client, Input: in, Output: linOutput{}, Call: call, Return: ret}, &h.okWrites)
			case writeUnknown:
				h.add(porcupine.Operation{ClientId: client, Input: in, Output: linOutput{}, Call: call, Return: math.MaxInt64}, &h.unknownWrites)
				client = h.newClient()
			}
		} else {
			in := linInput{Key: key}
			call := h.now()
			var value string
			value, err = readDescription(rctx, n, key)
			ret := h.now()
			if err == nil {
				h.add(porcupine.Operation{ClientId: client, Input: in, Output: linOutput{Value: value}, Call: call, Return: ret}, &h.okReads)
			} else {
				// A read that failed returned nothing to check.
				h.mu.Lock()
				h.failedReads++
				h.mu.Unlock()
			}
		}
		cancel()
		if err != nil {
			op := "get"
			if isWrite {
				op = "put"
			}
			h.failed(op, err)
			// Pace retries against a node that is down or electing.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// readDescription reads a project's description with a consistent read; a
// project that does not exist reads as "".
func readDescription(ctx context.Context, n *Node, key string) (string, error) {
	p, err := n.API().Project(ctx, key, client.Consistent())
	switch {
	case err == nil:
		return p.Description, nil
	case client.StatusOf(err) == http.StatusNotFound:
		return "", nil
	}
	return "", err
}

// runNemesis kills the leader with SIGKILL, waits for the others to elect a
// new one, restarts the killed node, and lets traffic flow again before the
// next round; it stops after linMinRounds rounds once linDuration has passed.
func runNemesis(c *Cluster, h *history) (rounds int, err error) {
	start := time.Now()
	for rounds < linMinRounds || time.Since(start) < linDuration {
		// Let the clients get work done before each fault.
		base := h.writesOK()
		if err := waitFor(waitLong, func() error {
			if got := h.writesOK() - base; got < 20 {
				return fmt.Errorf("%d writes acknowledged since the last fault", got)
			}
			return nil
		}); err != nil {
			return rounds, err
		}
		leader, err := c.WaitLeader(waitLong, c.Nodes...)
		if err != nil {
			return rounds, err
		}
		h.annotate("kill -9 " + leader.ID)
		if err := leader.Kill(); err != nil {
			return rounds, err
		}
		next, err := c.WaitLeader(waitLong, c.Others(leader)...)
		if err != nil {
			return rounds, err
		}
		h.annotate(next.ID + " leads")
		if err := leader.Restart(); err != nil {
			return rounds, err
		}
		h.annotate("restarted " + leader.ID)
		if _, err := c.WaitLeader(waitLong, c.Nodes...); err != nil {
			return rounds, err
		}
		rounds++
	}
	// Traffic again after the last restart, so the restarted node serves too.
	base := h.writesOK()
	return rounds, waitFor(waitLong, func() error {
		if got := h.writesOK() - base; got < 20 {
			return fmt.Errorf("%d writes acknowledged since the last restart", got)
		}
		return nil
	})
}

// TestRegisterModel checks the model and checker on small histories, so that
// TestLinearizability's pass means something: a stale read must fail.
func TestRegisterModel(t *testing.T) {
	put := func(client int, key, value string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: linInput{Write: true, Key: key, Value: value}, Output: linOutput{}, Call: call, Return: ret}
	}
	get := func(client int, key, value string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: linInput{Key: key}, Output: linOutput{Value: value}, Call: call, Return: ret}
	}
	cases := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{name: "ok/absent-then-written", history: []porcupine.Operation{
			get(0, "a", "", 0, 1), put(0, "a", "x", 2, 3), get(1, "a", "x", 4, 5)}, want: porcupine.Ok},
		{name: "ok/concurrent-read-sees-either", history: []porcupine.Operation{
			put(0, "a", "x", 0, 1), put(0, "a", "y", 2, 10), get(1, "a", "x", 3, 4), get(2, "a", "y", 5, 6)}, want: porcupine.Ok},
		{name: "ok/unknown-write-lands-late", history: []porcupine.Operation{
			put(0, "a", "x", 0, math.MaxInt64), get(1, "a", "", 1, 2), get(1, "a", "x", 100, 101)}, want: porcupine.Ok},
		{name: "ok/keys-independent", history: []porcupine.Operation{
			put(0, "a", "x", 0, 1), get(1, "b", "", 2, 3)}, want: porcupine.Ok},
		{name: "fail/stale-read", history: []porcupine.Operation{
			put(0, "a", "x", 0, 1), put(0, "a", "y", 2, 3), get(1, "a", "x", 4, 5)}, want: porcupine.Illegal},
		{name: "fail/read-goes-back", history: []porcupine.Operation{
			put(0, "a", "x", 0, 1), put(0, "a", "y", 2, 10), get(1, "a", "y", 3, 4), get(2, "a", "x", 5, 6)}, want: porcupine.Illegal},
		{name: "fail/value-never-written", history: []porcupine.Operation{
			put(0, "a", "x", 0, 1), get(1, "a", "z", 2, 3)}, want: porcupine.Illegal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(registerModel, tc.history, 10*time.Second); got != tc.want {
				t.Errorf("check = %v, want %v", got, tc.want)
			}
		})
	}
}
