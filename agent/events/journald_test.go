package events

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeJournalctl writes a journalctl stand-in into dir: it logs its
// arguments to dir/args, answers --lines=1 with the first entry of
// dir/entries, and --follow with the entries after --after-cursor, then
// waits to be killed (or exits, when dir/exit exists).
func fakeJournalctl(t *testing.T, dir string) string {
	t.Helper()
	script := fmt.Sprintf(`#!/bin/sh
D=%q
echo "$*" >> "$D/args"
case " $* " in *" --lines=1 "*) head -n 1 "$D/entries"; exit 0;; esac
after=""
for a in "$@"; do case "$a" in --after-cursor=*) after="${a#--after-cursor=}";; esac; done
if [ -z "$after" ]; then cat "$D/entries"
else awk -v c="\"__CURSOR\":\"$after\"" 'found { print } index($0, c) { found = 1 }' "$D/entries"; fi
[ -f "$D/exit" ] && { echo "journal rotated" >&2; exit 1; }
exec sleep 3600
`, dir)
	path := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// journalEntryJSON is an entry as `journalctl -o json` prints it.
func journalEntryJSON(cursor int, comm, uid string, pid int, message string) string {
	return fmt.Sprintf(`{"__CURSOR":"s=8a3c;i=%x;b=5d1e;m=%x;t=62a1;x=9f%d","__REALTIME_TIMESTAMP":"%d","__MONOTONIC_TIMESTAMP":"123456","_BOOT_ID":"5d1e","PRIORITY":"6","SYSLOG_FACILITY":"4","SYSLOG_IDENTIFIER":"sshd","SYSLOG_PID":"%d","_PID":"%d","_UID":"%s","_GID":"%s","_COMM":"%s","_EXE":"/usr/sbin/sshd","_CMDLINE":"sshd: alice [priv]","_SYSTEMD_UNIT":"ssh.service","MESSAGE":%s}`,
		cursor, cursor, cursor, 1746878400000000+int64(cursor), pid, pid, uid, uid, comm, message)
}

func journalCursor(n int) string {
	return fmt.Sprintf("s=8a3c;i=%x;b=5d1e;m=%x;t=62a1;x=9f%d", n, n, n)
}

func TestJournalSource(t *testing.T) {
	dir := t.TempDir()
	entries := filepath.Join(dir, "entries")
	write := func(lines ...string) {
		f, err := os.OpenFile(entries, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, l := range lines {
			fmt.Fprintln(f, l)
		}
	}
	src := &JournalSource{Journalctl: fakeJournalctl(t, dir), Logger: slog.New(slog.DiscardHandler)}
	write(journalEntryJSON(1, "sshd", "0", 100, `"Server listening on 0.0.0.0 port 22."`))

	// First start: after the newest sshd entry, whose cursor is handed over
	// at once.
	c, stop := runSource(t, src, Position{})
	c.waitLines(t, 1)
	if first := c.last(); first.Text != "" || first.Pos.Cursor != journalCursor(1) {
		t.Fatalf("first line handed over: %+v, want the newest entry's cursor only", first)
	}
	stop()

	write(journalEntryJSON(2, "sshd", "0", 101, `"Accepted publickey for alice from 10.0.0.5 port 50001 ssh2: ED25519 SHA256:abc"`),
		// A local user's `logger -t sshd`: identifier sshd, but not sshd.
		journalEntryJSON(3, "logger", "1000", 666, `"Accepted publickey for root from 6.6.6.6 port 1 ssh2: ED25519 SHA256:forged"`),
		// MESSAGE that is not UTF-8 comes as bytes: "Invalid user \xff".
		journalEntryJSON(4, "sshd-session", "0", 102, `[73,110,118,97,108,105,100,32,117,115,101,114,32,255]`))
	c, stop = runSource(t, src, Position{Cursor: journalCursor(1)})
	c.waitLines(t, 3)
	stop()
	if got := c.texts(); strings.Join(got, "|") != "Accepted publickey for alice from 10.0.0.5 port 50001 ssh2: ED25519 SHA256:abc|Invalid user \xff" {
		t.Fatalf("messages: %q", got)
	}
	l := c.lines[0]
	if l.PID != 101 || !l.Time.Equal(time.UnixMicro(1746878400000002)) || l.Pos.Cursor != journalCursor(2) {
		t.Fatalf("entry 2 handed over as %+v", l)
	}
	if c.last().Pos.Cursor != journalCursor(4) {
		t.Fatalf("last position %+v, want entry 4's cursor", c.last().Pos)
	}

	// journalctl exits: the source starts it again after the last cursor.
	if err := os.WriteFile(filepath.Join(dir, "exit"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, stop = runSource(t, src, Position{Cursor: journalCursor(4)})
	deadline := time.Now().Add(20 * time.Second)
	for {
		args, _ := os.ReadFile(filepath.Join(dir, "args"))
		if strings.Count(string(args), "--after-cursor="+journalCursor(4)) >= 2 {
			break // started, exited, started again
		}
		if time.Now().After(deadline) {
			t.Fatalf("journalctl was not started again after it exited:\n%s", args)
		}
		time.Sleep(10 * time.Millisecond)
	}
	write(journalEntryJSON(5, "sshd", "0", 103, `"Connection closed by authenticating user bob 10.0.0.6 port 50002 [preauth]"`))
	c.waitTexts(t, "Connection closed by authenticating user bob 10.0.0.6 port 50002 [preauth]")
	stop()

	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	for _, want := range []string{"--follow", "--output=json", "--no-tail", "--after-cursor=" + journalCursor(4), "_COMM=sshd _COMM=sshd-session"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("journalctl was never run with %q:\n%s", want, args)
		}
	}
}
