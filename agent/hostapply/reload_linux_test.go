package hostapply

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fakeSSHDEnv makes the test binary act as sshd (TestMain): like sshd, it
// writes its pid file at start and again once it has restarted on SIGHUP
// (here 300 ms later). A Go process, not a shell script: a shell started
// with SIGHUP ignored (under nohup) cannot trap it.
const fakeSSHDEnv = "RAMPART_TEST_FAKE_SSHD_PIDFILE"

func TestMain(m *testing.M) {
	if pidFile := os.Getenv(fakeSSHDEnv); pidFile != "" {
		runFakeSSHD(pidFile)
		return
	}
	os.Exit(m.Run())
}

func runFakeSSHD(pidFile string) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	write := func() { _ = os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644) }
	write()
	for range hup {
		time.Sleep(300 * time.Millisecond)
		write()
	}
}

// A reload by SIGHUP returns only once sshd has started again (its pid
// file written anew): until then it takes connections with the old
// settings, and the pass that reloaded it is reported applied as soon as
// the reload returns.
func TestReloadWaitsForSSHDRestart(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Named sshd, as the reload checks the process's name.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "sshd")
	if err := os.Symlink(self, fake); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(root, "run", "sshd.pid")
	cmd := exec.Command(fake)
	cmd.Env = append(os.Environ(), fakeSSHDEnv+"="+pidFile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	var before os.FileInfo
	for before == nil {
		if fi, err := os.Stat(pidFile); err == nil && fi.Size() > 0 {
			before = fi
		} else if time.Now().After(deadline) {
			t.Fatal("the fake sshd wrote no pid file")
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// SingleUser keeps the reload off systemd, as on a machine without it.
	h := &Host{cfg: Config{Root: root, SSHDPidFile: "/run/sshd.pid", SingleUser: "nobody"}, realSystem: true}
	start := time.Now()
	if err := h.defaultReload(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("reload returned after %s, before sshd wrote its pid file again", time.Since(start).Round(time.Millisecond))
	}
	if took := time.Since(start); took > sshdRestartWait {
		t.Errorf("reload took %s", took)
	}
}
