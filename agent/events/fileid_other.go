//go:build !unix

package events

import "os"

// fileID has no inode to offer here: rotation is then noticed by size only.
func fileID(os.FileInfo) uint64 { return 0 }
