package jump

import (
	"net"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// chanConn presents an SSH channel as a net.Conn so that an SSH server can
// run on it. RemoteAddr is a *net.TCPAddr (x/crypto's source-address check
// needs one); deadlines are no-ops, so timeouts are enforced by the proxy.
type chanConn struct {
	gossh.Channel
	local, remote *net.TCPAddr
}

func (c *chanConn) LocalAddr() net.Addr              { return c.local }
func (c *chanConn) RemoteAddr() net.Addr             { return c.remote }
func (c *chanConn) SetDeadline(time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(time.Time) error { return nil }

// tcpAddr converts any address to a *net.TCPAddr (zero if it is not one).
func tcpAddr(a net.Addr) *net.TCPAddr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return &net.TCPAddr{}
	}
	p, _ := net.LookupPort("tcp", port)
	return &net.TCPAddr{IP: net.ParseIP(host), Port: p}
}
