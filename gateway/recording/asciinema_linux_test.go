package recording

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// asciinemaBin finds Debian's asciinema, or skips the test.
func asciinemaBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		t.Skip("asciinema not installed (.ci/run installs it: apt-get install asciinema)")
	}
	return bin
}

// runAsciinema runs `asciinema args...` with a pseudo-terminal as its
// controlling terminal and returns its standard output. asciinema 2.x `cat`
// opens /dev/tty and fails without one (as under CI, with no stdin); `play`
// falls back to no keyboard control.
func runAsciinema(t *testing.T, bin string, args ...string) string {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "ASCIINEMA_CONFIG_HOME="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		slave.Close()
		t.Fatal(err)
	}
	slave.Close()
	// Whatever asciinema writes to the terminal is drained; the read ends
	// with EIO once the last holder of the slave exits.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, master)
	}()
	err := cmd.Wait()
	master.Close()
	<-drained
	if err != nil {
		t.Fatalf("asciinema %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// openPTY opens a pseudo-terminal pair with the standard library alone.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), req, uintptr(arg)); e != 0 {
			return e
		}
		return nil
	}
	var unlock int32
	if err := ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		master.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	var n uint32
	if err := ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		master.Close()
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open pty slave: %v", err)
	}
	return master, slave
}

// TestAsciinemaAcceptsRecording: Debian's asciinema prints (`cat`) and plays
// (`play`) what a Recorder wrote, UTF-8 split across writes included.
func TestAsciinemaAcceptsRecording(t *testing.T) {
	bin := asciinemaBin(t)
	clk := newClock()
	r, err := New(Config{
		Dir: t.TempDir(), SessionID: "s-asciinema", Width: 100, Height: 30,
		Term: "xterm-256color", Shell: "/bin/bash", Title: `alice on "web-1"`,
		RecordInput: true, Now: clk.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	writes := []string{
		"alice@web-1:~$ ", "echo h\xc3", "\xa9llo w\xc3\xb6rld \xe2\x9c", "\x93\r\n",
		"h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9f\x98", "\x80\r\n",
		"\x1b[1;31mred\x1b[0m \"quoted\" back\\slash\ttab\r\n", "alice@web-1:~$ ",
	}
	var want strings.Builder
	for _, w := range writes {
		clk.advance(ms(40))
		if err := r.Output([]byte(w)); err != nil {
			t.Fatal(err)
		}
		if err := r.Input([]byte("x")); err != nil {
			t.Fatal(err)
		}
		want.WriteString(w)
	}
	if err := r.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	sum, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := runAsciinema(t, bin, "cat", sum.Path); got != want.String() {
		t.Errorf("asciinema cat printed %q\nwant %q", got, want.String())
	}
	if got := runAsciinema(t, bin, "play", "-s", "20", sum.Path); !strings.Contains(got, "h\u00e9llo w\u00f6rld \u2713 \U0001F600") {
		t.Errorf("asciinema play printed %q", got)
	}
}
