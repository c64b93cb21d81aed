package auditexport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rampart-ssh/rampart/raftstore"
)

// sdID is the structured-data element every message carries. 32473 is the
// private enterprise number RFC 5612 reserves for documentation; a
// receiver keys on the element's name, and Rampart has no number of its
// own.
const sdID = "rampart@32473"

// SyslogSink sends each event as an RFC 5424 message over TCP, or TLS (RFC
// 5425), framed by octet counting (RFC 5425 §4.3, RFC 6587 §3.4.1) or, on
// plain TCP on request, by a newline. The message's MSGID is the event
// type, its structured data the sequence number and actor, its MSG the
// record's JSON. Syslog has no acknowledgement: a batch counts as delivered
// once the connection took it without error.
type SyslogSink struct {
	addr     string
	tls      *tls.Config // nil: plain TCP
	newline  bool
	facility int
	hostname string
	appName  string
	timeout  time.Duration

	conn net.Conn
}

// NewSyslogSink returns a sink to addr (host:port). tlsCfg nil means plain
// TCP; newline selects newline framing (plain TCP only).
func NewSyslogSink(addr string, tlsCfg *tls.Config, newline bool, facility int, hostname, appName string, timeout time.Duration) *SyslogSink {
	return &SyslogSink{addr: addr, tls: tlsCfg, newline: newline, facility: facility, hostname: hostname, appName: appName, timeout: timeout}
}

func (s *SyslogSink) dial(ctx context.Context) error {
	if s.conn != nil {
		return nil
	}
	d := &net.Dialer{Timeout: s.timeout}
	var (
		c   net.Conn
		err error
	)
	if s.tls != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: s.tls}).DialContext(ctx, "tcp", s.addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return fmt.Errorf("syslog %s: %w", s.addr, err)
	}
	s.conn = c
	return nil
}

// Send writes every message of the batch in one write.
func (s *SyslogSink) Send(ctx context.Context, batch []*raftstore.AuditEvent) error {
	if err := s.dial(ctx); err != nil {
		return err
	}
	var buf []byte
	for _, e := range batch {
		msg := FormatRFC5424(e, s.facility, s.hostname, s.appName)
		if s.newline {
			buf = append(append(buf, msg...), '\n')
		} else {
			buf = append(strconv.AppendInt(buf, int64(len(msg)), 10), ' ')
			buf = append(buf, msg...)
		}
	}
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return s.broken(err)
	}
	if _, err := s.conn.Write(buf); err != nil {
		return s.broken(err)
	}
	return nil
}

// broken drops the connection, so the next try dials again.
func (s *SyslogSink) broken(err error) error {
	s.conn.Close()
	s.conn = nil
	return fmt.Errorf("syslog %s: %w", s.addr, err)
}

// Close closes the connection.
func (s *SyslogSink) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Severities: warning for the events that report trouble (their type ends
// in .fail, .deny or .dropped), informational for the others.
const (
	sevWarning = 4
	sevInfo    = 6
)

// FormatRFC5424 returns e as one RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [rampart@32473 seq="…" actor="…"] BOM{record JSON}
func FormatRFC5424(e *raftstore.AuditEvent, facility int, hostname, appName string) []byte {
	sev := sevInfo
	for _, suffix := range []string{".fail", ".deny", ".dropped"} {
		if strings.HasSuffix(e.Type, suffix) {
			sev = sevWarning
		}
	}
	b := make([]byte, 0, 256)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facility*8+sev), 10)
	b = append(b, ">1 "...)
	b = e.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, header(hostname, 255)...)
	b = append(b, ' ')
	b = append(b, header(appName, 48)...)
	b = append(b, " - "...)
	b = append(b, header(e.Type, 32)...)
	b = append(b, " ["+sdID+` seq="`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `" actor="`...)
	b = append(b, sdEscape(e.Actor)...)
	b = append(b, `"] `...)
	b = append(b, "\xEF\xBB\xBF"...)
	return appendJSON(b, e)
}

// header returns v as a header field: printable US-ASCII, no spaces, at
// most n characters, "-" when empty.
func header(v string, n int) string {
	v = strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return -1
		}
		return r
	}, v)
	if len(v) > n {
		v = v[:n]
	}
	if v == "" {
		return "-"
	}
	return v
}

// sdEscape escapes a PARAM-VALUE: '"', '\' and ']' take a backslash, and
// control characters and invalid UTF-8 become U+FFFD, so that no value (an
// actor is whatever login an IdP sent) can end the record early, as a
// newline would under newline framing. The MSG is JSON, whose encoding
// escapes control characters already.
func sdEscape(v string) string {
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(v, string(utf8.RuneError)))
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(v)
}
