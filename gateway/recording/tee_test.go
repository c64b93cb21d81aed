package recording

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestTeeIsTheFile: what Tee is given is the file, byte for byte, header
// included, and the exec command goes into the header.
func TestTeeIsTheFile(t *testing.T) {
	var mu sync.Mutex
	var copied bytes.Buffer
	clk := newClock()
	r, err := New(Config{Dir: t.TempDir(), SessionID: "s1", Now: clk.now, Command: "uname -a",
		Tee: func(p []byte) { mu.Lock(); copied.Write(p); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		clk.advance(10_000_000)
		if err := r.Output([]byte(strings.Repeat("x", i) + "\r\n")); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	sum, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(sum.Path)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(file, copied.Bytes()) {
		t.Fatalf("tee got %d bytes, the file has %d", copied.Len(), len(file))
	}
	if !strings.Contains(string(file[:bytes.IndexByte(file, '\n')]), `"command":"uname -a"`) {
		t.Fatalf("header without the command: %s", file[:bytes.IndexByte(file, '\n')])
	}
}
