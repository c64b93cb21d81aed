//go:build unix

package events

import (
	"os"
	"syscall"
)

// fileID is a file's inode number: what tells a rotated log from the new
// one of the same name.
func fileID(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
