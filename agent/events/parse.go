package events

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Line is one message of sshd's log as a source read it.
type Line struct {
	// Text is sshd's message without the syslog prefix; empty for a line
	// that is not sshd's (it still moves Pos).
	Text string
	// Time is when the line was logged; zero when the log has no times
	// (sshd -E), and the event then takes the time it was read.
	Time time.Time
	// PID is the logging process, 0 when unknown. It ties lines that do not
	// name their connection (a certificate's rejection) to one that does.
	PID int
	// Pos is where reading resumes after this line.
	Pos Position
}

// Position is a place in sshd's log: a file's identity and offset, or a
// journald cursor.
type Position struct {
	Path   string `json:"path,omitempty"`
	Inode  uint64 `json:"inode,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// sshdPrograms are the syslog identifiers of OpenSSH's server: sshd, and
// since OpenSSH 9.8 the per-connection sshd-session (10.0: sshd-auth).
var sshdPrograms = map[string]bool{"sshd": true, "sshd-session": true, "sshd-auth": true}

var (
	// rsyslog's RSYSLOG_FileFormat (Debian, Ubuntu):
	// "2026-05-10T12:00:01.123456+00:00 host sshd[123]: message".
	rfc3339Line = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) \S+ ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$`)
	// The traditional format (RHEL's /var/log/secure):
	// "May 10 12:00:01 host sshd[123]: message".
	bsdLine = regexp.MustCompile(`^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) \S+ ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$`)
)

// syslogLine splits a line of a log file into sshd's message, its time and
// the logging pid. A line in a syslog format from another program gives
// ok false. A line in no syslog format is taken whole as sshd's message: a
// file sshd writes itself (sshd -E) has neither time nor pid. now is the
// reader's clock, which gives a traditional timestamp its year.
func syslogLine(raw string, now time.Time) (msg string, t time.Time, pid int, ok bool) {
	raw = strings.TrimRight(raw, "\r\n")
	if m := rfc3339Line.FindStringSubmatch(raw); m != nil {
		if !sshdPrograms[m[2]] {
			return "", time.Time{}, 0, false
		}
		t, _ = time.Parse(time.RFC3339Nano, m[1])
		pid, _ = strconv.Atoi(m[3])
		return m[4], t, pid, true
	}
	if m := bsdLine.FindStringSubmatch(raw); m != nil {
		if !sshdPrograms[m[2]] {
			return "", time.Time{}, 0, false
		}
		if parsed, err := time.ParseInLocation("Jan _2 15:04:05", m[1], now.Location()); err == nil {
			t = parsed.AddDate(now.Year(), 0, 0)
			// No year in the line: a time more than a day ahead is last
			// year's (read on the 1st of January, logged on the 31st).
			if t.After(now.Add(24 * time.Hour)) {
				t = t.AddDate(-1, 0, 0)
			}
		}
		pid, _ = strconv.Atoi(m[3])
		return m[4], t, pid, true
	}
	if strings.HasPrefix(raw, "==== ") || raw == "" {
		return "", time.Time{}, 0, false
	}
	return raw, time.Time{}, 0, true
}

// recordKind is what a message of sshd says about a connection.
type recordKind int

const (
	recIgnore     recordKind = iota
	recConnect               // a connection starts
	recSeen                  // a line naming the connection and user, nothing more
	recAttempt               // an authentication attempt failed
	recAccepted              // the connection is authenticated
	recReason                // why an attempt failed, connection named only by pid
	recReasonConn            // why, naming the connection
	recEnd                   // the connection ended without being authenticated
	recEndUser               // that, naming only the user (PAM account refusal)
)

// record is one parsed message.
type record struct {
	kind    recordKind
	user    string
	invalid bool // the user does not exist
	addr    string
	port    int
	method  string
	key     keyInfo
	reason  string
}

// keyInfo is the key or certificate an attempt offered.
type keyInfo struct {
	Type, Fingerprint, KeyID, Serial, CAFingerprint string
}

// isCert reports whether the key is a certificate.
func (k keyInfo) isCert() bool { return k.KeyID != "" || k.Serial != "" }

// ipRE matches what sshd prints as a remote address (IPv4 or IPv6).
const ipRE = `([0-9A-Fa-f:.]+)`

// The messages of OpenSSH's sshd (9.x, 10.x) about authentication, at
// LogLevel INFO and VERBOSE, checked against a real sshd. User names are
// matched lazily: whatever a client sends is logged, spaces included, and
// the address that follows is sshd's own. A user name (or key id) that
// itself holds " from <ip> port <n>" makes a line ambiguous; the tracker
// then parses it again with the address of a connection sshd announced
// (addressPatterns).
type patterns struct {
	accepted, failed, seen, invalid, maxTries, rootRef          *regexp.Regexp
	closedUser, disconnFrom, disconnecting, closedAddr, timeout *regexp.Regexp
}

// addressPatterns are the patterns with ip and port as given (regular
// expressions, each matching one address or port).
func addressPatterns(ip, port string) *patterns {
	ip, port = "("+ip+")", "("+port+")"
	return &patterns{
		accepted: regexp.MustCompile(`^Accepted (\S+) for (.*?) from ` + ip + ` port ` + port + ` ssh2(?:: (.*))?$`),
		failed:   regexp.MustCompile(`^Failed (\S+) for (invalid user )?(.*?) from ` + ip + ` port ` + port + ` ssh2(?:: (.*))?$`),
		seen:     regexp.MustCompile(`^(?:Postponed|Partial) (\S+) for (invalid user )?(.*?) from ` + ip + ` port ` + port + ` ssh2`),
		invalid:  regexp.MustCompile(`^Invalid user (.*?) from ` + ip + ` port ` + port + `$`),
		maxTries: regexp.MustCompile(`^(maximum authentication attempts exceeded) for (invalid user )?(.*?) from ` + ip + ` port ` + port + ` ssh2$`),
		rootRef:  regexp.MustCompile(`^(ROOT LOGIN REFUSED) FROM ` + ip + ` port ` + port + `$`),
		// Ends of a connection that was never authenticated.
		closedUser:    regexp.MustCompile(`^(Connection closed|Connection reset) by (authenticating|invalid) user (.*?) ` + ip + ` port ` + port + `$`),
		disconnFrom:   regexp.MustCompile(`^(Disconnected) from (authenticating|invalid) user (.*?) ` + ip + ` port ` + port + `$`),
		disconnecting: regexp.MustCompile(`^Disconnecting (authenticating|invalid) user (.*?) ` + ip + ` port ` + port + `: (.*)$`),
		closedAddr:    regexp.MustCompile(`^(?:Connection closed|Connection reset) by ` + ip + ` port ` + port + `$`),
		timeout:       regexp.MustCompile(`^Timeout before authentication for ` + ip + ` port ` + port + `$`),
	}
}

// anyAddress parses every message, whatever its address.
var anyAddress = addressPatterns(`[0-9A-Fa-f:.]+`, `\d+`)

var (
	// "Connection from" names nothing the client chose before the address.
	reConnect = regexp.MustCompile(`^Connection from ` + ipRE + ` port (\d+) on `)
	// Reasons logged without the connection.
	reCertReason = regexp.MustCompile(`^(Certificate .*)$`)
	reNotAllowed = regexp.MustCompile(`^(User \S+ (?:from \S+ )?not allowed because .*)$`)
	reRefused    = regexp.MustCompile(`^(Authentication refused: .*|Account \S+ has expired|Refused by certificate options|cert: .*)$`)
	rePAMDenied  = regexp.MustCompile(`^(Access denied for user (.*) by PAM account configuration)$`)
	// The key an attempt offered: "ED25519 SHA256:…" or, for a
	// certificate, "ED25519-CERT SHA256:… ID key id (serial 12) CA ED25519
	// SHA256:…". The key id is whatever the CA wrote, so the last
	// "(serial N) CA" is sshd's own.
	reCertKey  = regexp.MustCompile(`^(\S+) (\S+) ID (.*) \(serial (\d+)\) CA \S+ ([^\s,]+)(?:, .*)?$`)
	rePlainKey = regexp.MustCompile(`^(\S+) ([^\s,]+)(?:, .*)?$`)
)

// parseMessage reads one message of sshd.
func parseMessage(msg string) record { return parseWith(anyAddress, msg) }

// parseWith reads one message of sshd with the given address patterns.
func parseWith(p *patterns, msg string) record {
	msg = strings.TrimSuffix(msg, " [preauth]")
	for _, p := range []string{"error: ", "fatal: ", "debug1: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	if m := p.accepted.FindStringSubmatch(msg); m != nil {
		return record{kind: recAccepted, method: m[1], user: m[2], addr: m[3], port: atoi(m[4]), key: parseKey(m[5])}
	}
	if m := p.failed.FindStringSubmatch(msg); m != nil {
		return record{kind: recAttempt, method: m[1], invalid: m[2] != "", user: m[3], addr: m[4], port: atoi(m[5]), key: parseKey(m[6])}
	}
	if m := p.seen.FindStringSubmatch(msg); m != nil {
		return record{kind: recSeen, method: m[1], invalid: m[2] != "", user: m[3], addr: m[4], port: atoi(m[5])}
	}
	if m := reConnect.FindStringSubmatch(msg); m != nil {
		return record{kind: recConnect, addr: m[1], port: atoi(m[2])}
	}
	if m := p.invalid.FindStringSubmatch(msg); m != nil {
		return record{kind: recReasonConn, invalid: true, user: m[1], addr: m[2], port: atoi(m[3]), reason: "invalid user"}
	}
	if m := p.maxTries.FindStringSubmatch(msg); m != nil {
		return record{kind: recReasonConn, reason: m[1], invalid: m[2] != "", user: m[3], addr: m[4], port: atoi(m[5])}
	}
	if m := p.rootRef.FindStringSubmatch(msg); m != nil {
		return record{kind: recReasonConn, reason: "root login refused", user: "root", addr: m[2], port: atoi(m[3])}
	}
	if m := p.disconnecting.FindStringSubmatch(msg); m != nil {
		return record{kind: recEnd, invalid: m[1] == "invalid", user: m[2], addr: m[3], port: atoi(m[4]), reason: m[5]}
	}
	if m := p.closedUser.FindStringSubmatch(msg); m != nil {
		return record{kind: recEnd, invalid: m[2] == "invalid", user: m[3], addr: m[4], port: atoi(m[5]), reason: endReason(m[1])}
	}
	if m := p.disconnFrom.FindStringSubmatch(msg); m != nil {
		return record{kind: recEnd, invalid: m[2] == "invalid", user: m[3], addr: m[4], port: atoi(m[5]), reason: endReason(m[1])}
	}
	if m := p.closedAddr.FindStringSubmatch(msg); m != nil {
		return record{kind: recEnd, addr: m[1], port: atoi(m[2]), reason: "connection closed during authentication"}
	}
	if m := p.timeout.FindStringSubmatch(msg); m != nil {
		return record{kind: recEnd, addr: m[1], port: atoi(m[2]), reason: "timeout before authentication"}
	}
	if m := rePAMDenied.FindStringSubmatch(msg); m != nil {
		return record{kind: recEndUser, user: m[2], reason: m[1]}
	}
	for _, re := range []*regexp.Regexp{reCertReason, reNotAllowed, reRefused} {
		if m := re.FindStringSubmatch(msg); m != nil {
			return record{kind: recReason, reason: m[1]}
		}
	}
	return record{kind: recIgnore}
}

func endReason(verb string) string {
	switch verb {
	case "Disconnected from":
		return "client disconnected during authentication"
	case "Connection reset":
		return "connection reset during authentication"
	}
	return "connection closed during authentication"
}

// parseKey reads the key part of an Accepted or Failed line.
func parseKey(s string) keyInfo {
	if s == "" {
		return keyInfo{}
	}
	if m := reCertKey.FindStringSubmatch(s); m != nil {
		return keyInfo{Type: m[1], Fingerprint: m[2], KeyID: m[3], Serial: m[4], CAFingerprint: m[5]}
	}
	if m := rePlainKey.FindStringSubmatch(s); m != nil {
		return keyInfo{Type: m[1], Fingerprint: m[2]}
	}
	return keyInfo{}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0
	}
	return n
}
