//go:build !linux

package recording

import "errors"

// FreeSpace is not measured on this platform: the floor is not enforced.
func FreeSpace(string) (uint64, error) {
	return 0, errors.New("free space is not measured on this platform")
}
