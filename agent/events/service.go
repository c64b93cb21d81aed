package events

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Values of the agent's login_log setting besides a file path.
const (
	LogAuto     = "auto"
	LogJournald = "journald"
	LogOff      = "off"
)

// DefaultSpoolMax is how many undelivered events the spool holds before the
// tailer pauses.
const DefaultSpoolMax = 100000

// Config is what Start needs.
type Config struct {
	// LoginLog is "auto", "journald", "off" or the path of a log file.
	LoginLog string
	// SpoolDir holds the spool (created 0700).
	SpoolDir string
	// SpoolMax bounds the undelivered events (DefaultSpoolMax if zero).
	SpoolMax int
	Poster   Poster
	Logger   *slog.Logger
}

// Service is a running tailer and sender.
type Service struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	spool  *Spool
}

// ResolveLoginLog says which log "auto" means on this host: journald when
// it runs (its socket directory exists) and journalctl is installed, else
// /var/log/auth.log (Debian, Ubuntu) or /var/log/secure (RHEL) when one of
// them exists, else /var/log/auth.log, waited for. Other values are
// returned as they are.
func ResolveLoginLog(loginLog string) string {
	if loginLog != LogAuto && loginLog != "" {
		return loginLog
	}
	if _, err := os.Stat("/run/systemd/journal"); err == nil {
		if _, err := exec.LookPath("journalctl"); err == nil {
			return LogJournald
		}
	}
	for _, f := range []string{"/var/log/auth.log", "/var/log/secure"} {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return "/var/log/auth.log"
}

// Start opens the spool and starts the tailer and the sender; it returns
// nil (and starts nothing) when login_log is off. They run until Close.
func Start(ctx context.Context, cfg Config) (*Service, error) {
	which := ResolveLoginLog(cfg.LoginLog)
	if which == LogOff {
		cfg.Logger.Info("login events are off (login_log: off)")
		return nil, nil
	}
	var src Source
	switch {
	case which == LogJournald:
		src = &JournalSource{Logger: cfg.Logger}
	case filepath.IsAbs(which):
		src = &FileSource{Path: which, Logger: cfg.Logger}
	default:
		return nil, fmt.Errorf("login_log %q: use auto, journald, off or an absolute path", cfg.LoginLog)
	}
	max := cfg.SpoolMax
	if max <= 0 {
		max = DefaultSpoolMax
	}
	spool, err := OpenSpool(cfg.SpoolDir, max)
	if err != nil {
		return nil, err
	}
	if st, err := spool.State(); err == nil && st.Pending > 0 {
		cfg.Logger.Info("login events waiting in the spool", "pending", st.Pending, "first_seq", st.Acked+1)
	}
	cfg.Logger.Info("reporting logins", "log", which, "spool", filepath.Join(cfg.SpoolDir, SpoolFile))
	ctx, cancel := context.WithCancel(ctx)
	s := &Service{cancel: cancel, spool: spool}
	tailer := &Tailer{Source: src, Spool: spool, Logger: cfg.Logger}
	sender := &Sender{Spool: spool, Poster: cfg.Poster, Logger: cfg.Logger}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); tailer.Run(ctx) }()
	go func() { defer s.wg.Done(); sender.Run(ctx) }()
	return s, nil
}

// Close stops the tailer and the sender, waits for them and closes the
// spool. A nil Service closes as nothing.
func (s *Service) Close() error {
	if s == nil {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	return s.spool.Close()
}
