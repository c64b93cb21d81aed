package events

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// summary is an event in one line, for comparing with what is expected.
func summary(e *api.LoginEvent) string {
	s := fmt.Sprintf("%s %s %s:%d", e.Outcome, e.User, e.Source, e.Port)
	if e.KeyType != "" {
		s += " " + e.KeyType
	}
	if e.KeyID != "" {
		s += fmt.Sprintf(" id=%q serial=%s", e.KeyID, e.Serial)
	}
	if e.Reason != "" {
		s += " reason=" + e.Reason
	}
	return s
}

// feedFile runs a log file through syslogLine and a tracker.
func feedFile(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := newTracker()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		msg, at, pid, ok := syslogLine(sc.Text(), time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC))
		if !ok {
			continue
		}
		if at.IsZero() {
			at = time.Unix(1, 0)
		}
		if e := tr.feed(Line{Text: msg, PID: pid}, at); e != nil {
			probe := *e
			probe.Seq = 1
			if err := probe.Validate(); err != nil {
				t.Errorf("event the cluster would refuse: %v: %+v", err, e)
			}
			out = append(out, summary(e))
		}
	}
	if !tr.idle() {
		t.Errorf("%d connections still pending at the end of the log", len(tr.conns))
	}
	return out
}

const rampartKeyID = `"rampart user=alice@example.com session=s-01 server=web-1 project=web"`

// TestTrackerRealLogs runs logs captured from Debian's OpenSSH 9.2 sshd
// (sshd -D -e, as the e2e target harness runs it) at LogLevel VERBOSE and
// INFO, with UsePAM yes and no. The client offered, in turn: a valid
// certificate (after the plain key, which fails first), one from an
// untrusted CA, one without the user's principal, an expired one, the plain
// key alone, the valid certificate for a user that does not exist and for
// root, a valid certificate for an expired account (bob), and three plain
// keys.
func TestTrackerRealLogs(t *testing.T) {
	accepted := "accepted alice 127.0.0.1:%d ED25519-CERT id=" + rampartKeyID + " serial=1234567890123"
	closed := "connection closed during authentication"
	cases := []struct {
		file string
		want []string
	}{
		{"sshd-e-verbose-pam-true.log", []string{
			fmt.Sprintf(accepted, 56946),
			"failed alice 127.0.0.1:56950 ED25519-CERT id=" + rampartKeyID + " serial=42 reason=" + closed,
			"failed alice 127.0.0.1:56956 ED25519-CERT id=" + rampartKeyID + " serial=43 reason=Certificate does not contain an authorized principal; " + closed,
			"failed alice 127.0.0.1:56972 ED25519-CERT id=" + rampartKeyID + " serial=44 reason=Certificate invalid: expired; " + closed,
			"failed alice 127.0.0.1:56980 ED25519 reason=" + closed,
			"failed nosuchuser 127.0.0.1:56988 reason=invalid user; " + closed,
			"failed root 127.0.0.1:56998 ED25519-CERT id=" + rampartKeyID + " serial=1234567890123 reason=Certificate does not contain an authorized principal; " + closed,
			"failed bob 127.0.0.1:57012 ED25519-CERT id=" + rampartKeyID + " serial=45 reason=Access denied for user bob by PAM account configuration",
			"failed alice 127.0.0.1:57020 ED25519 reason=" + closed,
		}},
		{"sshd-e-verbose-pam-false.log", []string{
			fmt.Sprintf(accepted, 57550),
			"failed alice 127.0.0.1:57562 ED25519-CERT id=" + rampartKeyID + " serial=42 reason=" + closed,
			"failed alice 127.0.0.1:57566 ED25519-CERT id=" + rampartKeyID + " serial=43 reason=Certificate does not contain an authorized principal; " + closed,
			"failed alice 127.0.0.1:57578 ED25519-CERT id=" + rampartKeyID + " serial=44 reason=Certificate invalid: expired; " + closed,
			"failed alice 127.0.0.1:57582 ED25519 reason=" + closed,
			"failed nosuchuser 127.0.0.1:57594 reason=invalid user; " + closed,
			"failed root 127.0.0.1:57602 ED25519-CERT id=" + rampartKeyID + " serial=1234567890123 reason=Certificate does not contain an authorized principal; " + closed,
			"failed bob 127.0.0.1:57616 reason=Account bob has expired; User bob not allowed because account is locked; " + closed,
			"failed alice 127.0.0.1:57622 ED25519 reason=" + closed,
		}},
		// At INFO sshd logs neither the keys of failed attempts nor the
		// connection of a PAM account refusal (bob's is not reported).
		{"sshd-e-info-pam-true.log", []string{
			fmt.Sprintf(accepted, 35158),
			"failed alice 127.0.0.1:35160 reason=" + closed,
			"failed alice 127.0.0.1:35172 reason=Certificate does not contain an authorized principal; " + closed,
			"failed alice 127.0.0.1:35176 reason=Certificate invalid: expired; " + closed,
			"failed alice 127.0.0.1:35182 reason=" + closed,
			"failed nosuchuser 127.0.0.1:35198 reason=invalid user; " + closed,
			"failed root 127.0.0.1:35212 reason=Certificate does not contain an authorized principal; " + closed,
			"failed alice 127.0.0.1:35226 reason=" + closed,
		}},
		{"sshd-e-info-pam-false.log", []string{
			fmt.Sprintf(accepted, 35234),
			"failed alice 127.0.0.1:35246 reason=" + closed,
			"failed alice 127.0.0.1:35256 reason=Certificate does not contain an authorized principal; " + closed,
			"failed alice 127.0.0.1:35270 reason=Certificate invalid: expired; " + closed,
			"failed alice 127.0.0.1:35276 reason=" + closed,
			"failed nosuchuser 127.0.0.1:35282 reason=invalid user; " + closed,
			"failed root 127.0.0.1:35294 reason=Certificate does not contain an authorized principal; " + closed,
			"failed bob 127.0.0.1:35304 reason=Account bob has expired; User bob not allowed because account is locked; " + closed,
			"failed alice 127.0.0.1:35312 reason=" + closed,
		}},
	}
	for _, tc := range cases {
		t.Run("ok/"+strings.TrimSuffix(tc.file, ".log"), func(t *testing.T) {
			got := feedFile(t, "testdata/"+tc.file)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestTrackerInterleavedSyslog: with pids (syslog, journald) lines of
// concurrent connections are told apart even when a reason names no
// connection. The messages are real sshd's, the prefixes rsyslog's.
func TestTrackerInterleavedSyslog(t *testing.T) {
	log := `2026-05-10T12:00:01.000001+00:00 web-1 sshd[101]: Connection from 10.0.0.5 port 50001 on 10.0.0.1 port 22 rdomain ""
2026-05-10T12:00:01.000002+00:00 web-1 sshd[102]: Connection from 10.0.0.6 port 50002 on 10.0.0.1 port 22 rdomain ""
2026-05-10T12:00:01.000003+00:00 web-1 sshd[102]: Certificate invalid: expired
2026-05-10T12:00:01.000004+00:00 web-1 sshd[101]: Failed publickey for alice from 10.0.0.5 port 50001 ssh2: ED25519 SHA256:PegaGR2Z4MIzr0XPynXqgU1oECmFlr6gYnmtU1f2CaI
2026-05-10T12:00:01.000005+00:00 web-1 CRON[99]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
2026-05-10T12:00:01.000006+00:00 web-1 sshd[102]: Failed publickey for bob from 10.0.0.6 port 50002 ssh2: ED25519-CERT SHA256:PegaGR2Z4MIzr0XPynXqgU1oECmFlr6gYnmtU1f2CaI ID rampart user=bob@example.com session=s-02 server=web-1 project=web (serial 7) CA ED25519 SHA256:pW4Tc9t5tbRvThv6Fc61NcfkTOYWRFNu9trJGOxnvm0
2026-05-10T12:00:01.000007+00:00 web-1 sshd[101]: Accepted publickey for alice from 10.0.0.5 port 50001 ssh2: ED25519-CERT SHA256:PegaGR2Z4MIzr0XPynXqgU1oECmFlr6gYnmtU1f2CaI ID rampart user=alice@example.com session=s-01 server=web-1 project=web (serial 1234567890123) CA ED25519 SHA256:pW4Tc9t5tbRvThv6Fc61NcfkTOYWRFNu9trJGOxnvm0
2026-05-10T12:00:01.000008+00:00 web-1 sshd[103]: Certificate does not contain an authorized principal
2026-05-10T12:00:01.000009+00:00 web-1 sshd[102]: Connection closed by authenticating user bob 10.0.0.6 port 50002 [preauth]
2026-05-10T12:00:01.000010+00:00 web-1 sshd[103]: Connection closed by authenticating user carol 10.0.0.7 port 50003 [preauth]
May 10 12:00:02 web-1 sshd-session[104]: Invalid user admin from 2001:db8::9 port 50004
May 10 12:00:02 web-1 sshd-session[104]: Disconnecting invalid user admin 2001:db8::9 port 50004: Too many authentication failures [preauth]
May 10 12:00:03 web-1 sshd[105]: Connection closed by 10.0.0.8 port 50005 [preauth]
`
	tr := newTracker()
	var got []string
	for _, raw := range strings.Split(strings.TrimSpace(log), "\n") {
		msg, at, pid, ok := syslogLine(raw, time.Date(2026, 5, 10, 13, 0, 0, 0, time.UTC))
		if !ok {
			continue
		}
		if e := tr.feed(Line{Text: msg, PID: pid}, at); e != nil {
			got = append(got, e.Time.Format(time.StampMicro)+" "+summary(e))
		}
	}
	want := []string{
		`May 10 12:00:01.000007 accepted alice 10.0.0.5:50001 ED25519-CERT id="rampart user=alice@example.com session=s-01 server=web-1 project=web" serial=1234567890123`,
		`May 10 12:00:01.000009 failed bob 10.0.0.6:50002 ED25519-CERT id="rampart user=bob@example.com session=s-02 server=web-1 project=web" serial=7 reason=Certificate invalid: expired; connection closed during authentication`,
		`May 10 12:00:01.000010 failed carol 10.0.0.7:50003 reason=Certificate does not contain an authorized principal; connection closed during authentication`,
		`May 10 12:00:02.000000 failed admin 2001:db8::9:50004 reason=invalid user; Too many authentication failures`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSyslogLine(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)
	cases := []struct {
		name string
		raw  string
		ok   bool
		msg  string
		time string
		pid  int
	}{
		{"ok/rfc3339", "2026-05-10T12:00:01.123456+02:00 web-1 sshd[123]: Accepted x", true, "Accepted x", "2026-05-10T10:00:01.123456Z", 123},
		{"ok/bsd", "May  9 23:59:59 web-1 sshd[7]: Invalid user x from 1.2.3.4 port 5", true, "Invalid user x from 1.2.3.4 port 5", "2025-05-09T23:59:59Z", 7},
		{"ok/bsd-last-year", "Dec 31 23:59:59 web-1 sshd[7]: m", true, "m", "2025-12-31T23:59:59Z", 7},
		{"ok/sshd-session", "2026-05-10T12:00:01Z web-1 sshd-session[9]: m", true, "m", "2026-05-10T12:00:01Z", 9},
		{"ok/bare-sshd-e", "Connection closed by 1.2.3.4 port 5 [preauth]\r", true, "Connection closed by 1.2.3.4 port 5 [preauth]", "", 0},
		{"skip/other-program", "May 10 12:00:01 web-1 sudo[5]: alice : TTY=pts/0 ; COMMAND=/bin/true", false, "", "", 0},
		{"skip/harness-marker", "==== harness: run 1 of sshd on 127.0.0.71:22", false, "", "", 0},
		{"skip/empty", "", false, "", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg, at, pid, ok := syslogLine(tc.raw, now)
			if ok != tc.ok || msg != tc.msg || pid != tc.pid {
				t.Fatalf("syslogLine = %q, %d, %v; want %q, %d, %v", msg, pid, ok, tc.msg, tc.pid, tc.ok)
			}
			got := ""
			if !at.IsZero() {
				got = at.UTC().Format(time.RFC3339Nano)
			}
			if got != tc.time {
				t.Fatalf("time = %s, want %s", got, tc.time)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want keyInfo
	}{
		{"ok/plain", "ED25519 SHA256:abc", keyInfo{Type: "ED25519", Fingerprint: "SHA256:abc"}},
		{"ok/cert", "ED25519-CERT SHA256:abc ID rampart user=a session=s (serial 12) CA ED25519 SHA256:ca",
			keyInfo{Type: "ED25519-CERT", Fingerprint: "SHA256:abc", KeyID: "rampart user=a session=s", Serial: "12", CAFingerprint: "SHA256:ca"}},
		// A key id is whatever its CA wrote: the last "(serial N) CA" is
		// sshd's own.
		{"ok/key-id-forging-a-serial", "ED25519-CERT SHA256:abc ID evil (serial 1) CA RSA SHA256:x (serial 99) CA ED25519 SHA256:ca",
			keyInfo{Type: "ED25519-CERT", Fingerprint: "SHA256:abc", KeyID: "evil (serial 1) CA RSA SHA256:x", Serial: "99", CAFingerprint: "SHA256:ca"}},
		{"ok/fido-extra", "ED25519-SK SHA256:abc, verified", keyInfo{Type: "ED25519-SK", Fingerprint: "SHA256:abc"}},
		{"ok/none", "", keyInfo{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseKey(tc.in); got != tc.want {
				t.Fatalf("parseKey(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// TestTrackerBounds: connections that never end are forgotten, by count
// and by age, so a flood of half-open connections cannot grow the agent.
func TestTrackerBounds(t *testing.T) {
	tr := newTracker()
	start := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	for i := range maxPending + 10 {
		tr.feed(Line{Text: fmt.Sprintf("Failed publickey for u from 10.0.%d.%d port 22 ssh2: ED25519 SHA256:x", i/250, i%250)}, start)
	}
	if len(tr.conns) != maxPending {
		t.Fatalf("%d connections followed, want at most %d", len(tr.conns), maxPending)
	}
	later := start.Add(maxPendingAge + time.Minute)
	for range sweepEvery {
		tr.feed(Line{Text: "Server listening on 0.0.0.0 port 22."}, later)
	}
	if !tr.idle() {
		t.Fatalf("%d connections older than %s still followed", len(tr.conns), maxPendingAge)
	}
}

// A client chooses the user name and its certificate's key id, both logged
// around sshd's own address: a name holding " from <ip> port <n>" must not
// choose the source the attempt is reported with, once sshd announced the
// connection (VERBOSE).
func TestTrackerSourceNotChosenByTheClient(t *testing.T) {
	fake := "x 10.9.9.9 port 22: z"
	lines := []string{
		`Connection from 198.51.100.7 port 40022 on 10.0.0.1 port 22 rdomain ""`,
		"Invalid user " + fake + " from 198.51.100.7 port 40022",
		"Failed none for invalid user " + fake + " from 198.51.100.7 port 40022 ssh2",
		"Disconnecting invalid user " + fake + " 198.51.100.7 port 40022: Too many authentication failures",
	}
	tr := newTracker()
	var events []string
	for _, l := range lines {
		if e := tr.feed(Line{Text: l}, time.Unix(1, 0)); e != nil {
			events = append(events, fmt.Sprintf("%s user=%q source=%s:%d", e.Outcome, e.User, e.Source, e.Port))
		}
	}
	want := []string{fmt.Sprintf("%s user=%q source=198.51.100.7:40022", api.LoginFailed, fake)}
	if !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}
