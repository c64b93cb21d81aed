package frontdoor

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
)

// versionName is the software name in the front door's version line,
// serverVersion (gliderlabs prefixes "SSH-2.0-").
const (
	versionName   = "Rampart"
	serverVersion = "SSH-2.0-" + versionName
)

// maxVersionPrefix bounds what is read before the client's version line
// (RFC 4253 allows other lines first; x/crypto allows 1024 of them but
// clients send none).
const maxVersionPrefix = 8 << 10

// versionConn lets the front door learn the client's version before the SSH
// handshake, whose configuration (the ciphers offered, sshalg.ForClient)
// depends on it: x/crypto fixes the configuration before it exchanges
// version lines. The node sends its version line first, as x/crypto would,
// and reads the client's; then x/crypto gets a connection that swallows its
// own (identical) version line once and replays every byte read so far.
type versionConn struct {
	net.Conn
	sent    []byte // our version line and CRLF, until x/crypto writes it
	pending []byte // bytes read from the client, not yet given to x/crypto
}

// exchangeVersion sends serverVersion and reads until the client's version
// line; it returns the line without CRLF and the connection to hand over.
func exchangeVersion(nc net.Conn, serverVersion string) (*versionConn, string, error) {
	line := []byte(serverVersion + "\r\n")
	if _, err := nc.Write(line); err != nil {
		return nil, "", fmt.Errorf("send version: %w", err)
	}
	vc := &versionConn{Conn: nc, sent: line}
	buf := make([]byte, 512)
	for start := 0; ; {
		// Complete lines so far: a version line ends the search.
		for {
			i := bytes.IndexByte(vc.pending[start:], '\n')
			if i < 0 {
				break
			}
			l := strings.TrimRight(string(vc.pending[start:start+i]), "\r")
			if strings.HasPrefix(l, "SSH-") {
				return vc, l, nil
			}
			start += i + 1
		}
		if len(vc.pending) >= maxVersionPrefix {
			return nil, "", errors.New("read version: no version line")
		}
		n, err := nc.Read(buf)
		vc.pending = append(vc.pending, buf[:n]...)
		if err != nil {
			return nil, "", fmt.Errorf("read version: %w", err)
		}
	}
}

// Read replays the bytes read during the exchange, then reads the client.
func (c *versionConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write drops x/crypto's version line, which exchangeVersion already sent.
func (c *versionConn) Write(p []byte) (int, error) {
	if c.sent != nil {
		sent := c.sent
		c.sent = nil
		if bytes.Equal(p, sent) {
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}
