package e2e

// Addresses. Every test listens on loopback addresses of this run's own
// block, 127.B.0.0/16, so that a `make dev` node (127.0.0.1), a demo target,
// and another `make test` on the same machine never meet a test's
// listeners. B is chosen at random among the blocks no other test run holds:
// each run keeps an exclusive lock on a file named for its block until it
// exits, and the kernel drops the lock with the process, however it ends.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Blocks are 127.B.0.0/16 for B in [blockFirst, blockFirst+blockCount).
const (
	blockFirst = 32
	blockCount = 200
)

// runBlock is this run's B; blockLock holds its lock for the life of the
// process.
var runBlock, blockLock = claimBlock()

// testIP is host n (1-254) of this run's block: 127.B.0.n. Tests name their
// addresses by n, apart from each other's.
func testIP(n int) string {
	if n < 1 || n > 254 {
		panic(fmt.Sprintf("testIP(%d): host must be 1-254", n))
	}
	return fmt.Sprintf("127.%d.0.%d", runBlock, n)
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
