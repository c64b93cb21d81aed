//go:build !unix

package gateway

import "os"

// tryLock: no advisory lock on this platform; bolt's own lock still keeps
// a second node from opening raft.db.
func tryLock(*os.File) (bool, error) { return true, nil }
