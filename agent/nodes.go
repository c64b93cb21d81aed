package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// clusterFile keeps, in the data dir, the cluster's API addresses as the
// last state response listed them.
const clusterFile = "cluster.json"

// clusterAddrs is the agent's address book: where the pull loop, the
// renewers (agent and host certificates) and the login event sender find
// the cluster. It starts from the
// configuration's addresses and the enrollment token's (or the list an
// earlier run kept), and follows the cluster's own list from every state
// response, so that an agent enrolled while the cluster had one node still
// reaches it after that node is gone. Safe for concurrent use.
type clusterAddrs struct {
	path       string
	configured []string

	mu      sync.Mutex
	learned []string
}

// loadClusterAddrs returns the address book of dataDir: configured first
// (the operator's cluster setting), then the list kept from the last state
// response, or enrolled (the token's addresses) before there was one.
func loadClusterAddrs(dataDir string, configured, enrolled []string) (*clusterAddrs, error) {
	c := &clusterAddrs{path: filepath.Join(dataDir, clusterFile), configured: slices.Clone(configured), learned: slices.Clone(enrolled)}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster addresses: %w", err)
	}
	var kept []string
	if err := json.Unmarshal(b, &kept); err != nil {
		return nil, fmt.Errorf("%s: %w", clusterFile, err)
	}
	if len(kept) > 0 {
		c.learned = kept
	}
	return c, nil
}

// List returns the addresses to try, in order.
func (c *clusterAddrs) List() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return dedup(append(slices.Clone(c.configured), c.learned...))
}

// Update takes the cluster's current list from a state response and keeps
// it in the data dir when it changed. An empty list (a node older than this
// agent) changes nothing. It reports whether the list changed.
func (c *clusterAddrs) Update(addrs []string) (bool, error) {
	if len(addrs) == 0 {
		return false, nil
	}
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	c.mu.Lock()
	defer c.mu.Unlock()
	if slices.Equal(addrs, c.learned) {
		return false, nil
	}
	b, err := json.MarshalIndent(addrs, "", "  ")
	if err != nil {
		return false, err
	}
	// In memory first: the agent follows the cluster even if its disk
	// refuses the write (it tries again at the next change).
	c.learned = addrs
	if err := writePrivate(c.path, append(b, '\n')); err != nil {
		return true, fmt.Errorf("keep the cluster's addresses: %w", err)
	}
	return true, nil
}
