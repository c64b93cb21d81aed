package e2e

// Addresses. Every test listens on loopback addresses of this run's own
// block, 127.B.0.0/16, so that a `make dev` node (127.0.0.1), a demo target,
// and another `make test` on the same machine never meet a test's
// listeners. B is chosen at random among the blocks no other test run holds:
// each run keeps an exclusive lock on a file named for its block until it
// exits, and the kernel drops the lock with the process, however it ends.
//
// Inside the block, addresses come from one allocator: newIP hands each
// caller an address no other caller of this run got, so two tests never
// share one, and a test that runs twice (-count, or two subtests calling
// one setup) meets no listener, and no TIME_WAIT, of its earlier run.
// Nodes listen on the standard ports of their own address; other ports
// come from freePort.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Blocks are 127.B.0.0/16 for B in [blockFirst, blockFirst+blockCount).
const (
	blockFirst = 32
	blockCount = 200
)

// runBlock is this run's B; blockLock holds its lock for the life of the
// process.
var runBlock, blockLock = claimBlock()

// hostsPerSubnet is how many hosts of each 127.B.x.0/24 are handed out:
// .1 to .254, never the subnet's first or last address.
const hostsPerSubnet = 254

// addrAlloc is the run's allocator: handed counts the addresses given out.
var addrAlloc struct {
	mu     sync.Mutex
	handed int
}

// newIP returns an address of the run's block that no other call has
// returned in this run, 127.B.x.y. If t fails, its log names the addresses
// it was given, and for what.
func newIP(t testing.TB, what string) string {
	t.Helper()
	return newIPs(t, what, 1)[0]
}

// newIPs is n addresses of newIP, for a cluster's nodes, say.
func newIPs(t testing.TB, what string, n int) []string {
	t.Helper()
	addrAlloc.mu.Lock()
	first := addrAlloc.handed
	addrAlloc.handed += n
	addrAlloc.mu.Unlock()
	if last := first + n - 1; last >= 256*hostsPerSubnet {
		t.Fatalf("newIP: this run's block 127.%d.0.0/16 has no address left for %s (%d handed out)", runBlock, what, last)
	}
	ips := make([]string, n)
	for i := range ips {
		h := first + i
		ips[i] = fmt.Sprintf("127.%d.%d.%d", runBlock, h/hostsPerSubnet, 1+h%hostsPerSubnet)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("addresses of %s: %s", what, strings.Join(ips, " "))
		}
	})
	return ips
}

// freePort returns a TCP port that was free on ip a moment ago, for a
// listener that a program other than the test opens (a forward of ssh's).
// A listener of the test's own listens on port 0 instead.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	fatalIf(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// claimBlock locks a free block's file and returns the block with the open
// file (closing it would drop the lock).
func claimBlock() (int, *os.File) {
	dir := filepath.Join(os.TempDir(), "rampart-e2e-blocks")
	if err := os.MkdirAll(dir, 0o1777); err != nil {
		panic(fmt.Sprintf("e2e: address blocks: %v", err))
	}
	start := rand.IntN(blockCount)
	for i := range blockCount {
		b := blockFirst + (start+i)%blockCount
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(b)), os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			panic(fmt.Sprintf("e2e: address block %d: %v", b, err))
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return b, f
	}
	panic(fmt.Sprintf("e2e: all %d address blocks under %s are held by other test runs", blockCount, dir))
}
