package gateway

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestDataDirLock(t *testing.T) {
	d := dataDir(t.TempDir())
	first, err := d.lock()
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open files: a second open in this process
	// conflicts like another process would.
	_, err = d.lock()
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), fmt.Sprintf("data dir in use (pid %d)", os.Getpid())) {
		t.Fatalf("second lock: %v, want data dir in use (pid %d)", err, os.Getpid())
	}
	if err := first.release(); err != nil {
		t.Fatal(err)
	}
	again, err := d.lock()
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	_ = again.release()
}
