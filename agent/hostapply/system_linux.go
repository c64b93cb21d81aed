package hostapply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procDir is where the process table is read.
const procDir = "/proc"

// procUIDs lists the uids that own a process, by real, effective or audit
// login uid, in one scan of /proc.
func procUIDs() (map[uint32]bool, error) {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil, err
	}
	uids := map[uint32]bool{}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := procDir + "/" + e.Name()
		if b, err := os.ReadFile(dir + "/status"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
					for _, f := range strings.Fields(rest) {
						if id, ok := parseID(f); ok {
							uids[id] = true
						}
					}
				}
			}
		}
		if id, ok := loginUID(dir); ok {
			uids[id] = true
		}
	}
	return uids, nil
}

// loginUID reads a process's audit login uid; false when unset.
func loginUID(dir string) (uint32, bool) {
	b, err := os.ReadFile(dir + "/loginuid")
	if err != nil {
		return 0, false
	}
	id, ok := parseID(string(bytes.TrimSpace(b)))
	return id, ok && id != 1<<32-1
}

// killLoginUID kills every process whose audit login uid is uid, a few
// rounds, in case one forked between the scan and the kill.
func killLoginUID(uid uint32) error {
	self := os.Getpid()
	for range 3 {
		entries, err := os.ReadDir(procDir)
		if err != nil {
			return err
		}
		killed := 0
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			if id, ok := loginUID(procDir + "/" + e.Name()); ok && id == uid {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed++
				}
			}
		}
		if killed == 0 {
			return nil
		}
	}
	return nil
}

// defaultReload reloads sshd: through systemd when it runs and manages an
// active ssh.service or sshd.service, else with SIGHUP to the pid in
// SSHDPidFile. No sshd running is not an error: it reads the new files when
// it starts.
func (h *Host) defaultReload(ctx context.Context) error {
	if !h.realSystem {
		return nil
	}
	// In single-user mode the sshd is the account's own: never the
	// system's, which systemd runs.
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() && h.cfg.SingleUser == "" {
		for _, unit := range []string{"ssh.service", "sshd.service"} {
			if _, err := h.run.Run(ctx, []string{"systemctl", "is-active", "--quiet", unit}); err == nil {
				if _, err := h.run.Run(ctx, []string{"systemctl", "reload", unit}); err != nil {
					return fmt.Errorf("reload sshd: %w", err)
				}
				return nil
			}
		}
	}
	b, err := os.ReadFile(h.path(h.cfg.SSHDPidFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reload sshd: %w", err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("reload sshd: pid file %s holds %q", h.cfg.SSHDPidFile, bytes.TrimSpace(b))
	}
	// A stale pid file may name a pid reused by something else.
	comm, err := os.ReadFile(fmt.Sprintf("%s/%d/comm", procDir, pid))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), "sshd") {
		return fmt.Errorf("reload sshd: pid %d from %s is not sshd", pid, h.cfg.SSHDPidFile)
	}
	pidFile := h.path(h.cfg.SSHDPidFile)
	before, _ := os.Stat(pidFile)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload sshd: %w", err)
	}
	awaitRestart(ctx, pidFile, before)
	return nil
}

// sshdRestartWait bounds how long a reload waits for sshd to come back.
const sshdRestartWait = 5 * time.Second

// awaitRestart returns once sshd, sent SIGHUP, has started again: it
// re-executes itself and writes its pid file anew once it listens with the
// new settings. Until then a connection is still taken with the old ones
// (a person's first login, which the jump lets through once this pass is
// reported applied, would be refused). A pid file that does not change
// within sshdRestartWait (an sshd that writes none) ends the wait; the
// pass goes on as before.
func awaitRestart(ctx context.Context, pidFile string, before os.FileInfo) {
	if before == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sshdRestartWait)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(pidFile); err == nil && !fi.ModTime().Equal(before.ModTime()) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
