package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// A webhook's URL is set by an administrator, but the node posts to it from
// inside the network it runs in: the notifier refuses what would make it a
// way into that network. Without Config.AllowPrivate a webhook must be
// https, every address it resolves to must be public (checked on the
// socket, after resolution, so a name that resolves to 127.0.0.1 or
// 169.254.169.254 is refused as well), no redirect is followed, and
// failures are audited only in kind ("status 5xx", "connection failed"),
// never with the address or the error the dial met.

// ErrAddressRefused is a webhook whose address is not public.
var ErrAddressRefused = errors.New("webhook address is not public")

// errNotHTTPS is a plain-http webhook while private ones are not allowed.
var errNotHTTPS = errors.New("webhook URL is not https")

// errRedirect is a webhook answering with a redirect, which is not
// followed.
var errRedirect = errors.New("webhook answered with a redirect, which is not followed")

// nonPublic are the ranges refused besides what netip classifies as
// loopback, private, link-local (169.254.169.254, the clouds' metadata
// address, among them), multicast or unspecified.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 of any IPv4 address
}

// publicAddr reports whether ip is an address a webhook may be posted to.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// controlPublic refuses a socket about to connect to a non-public address.
func controlPublic(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !publicAddr(ap.Addr()) {
		return ErrAddressRefused
	}
	return nil
}

// newClient is the client webhooks are posted with: no proxy from the
// environment (the address check would see the proxy's), no redirects, and
// without allowPrivate public addresses only.
func newClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: DefaultTimeout}
	if !allowPrivate {
		d.Control = controlPublic
	}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   DefaultTimeout,
		ResponseHeaderTimeout: DefaultTimeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Timeout: DefaultTimeout, Transport: tr, CheckRedirect: noRedirects}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// checkURL refuses a plain-http webhook unless private ones are allowed.
func checkURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("webhook URL does not parse")
	}
	if u.Scheme != "https" && !allowPrivate {
		return errNotHTTPS
	}
	return nil
}

// auditText is what the audit log says of a failed attempt: its kind, never
// the address, port or the error the dial met (the audit log must not map
// the network behind the node).
func auditText(err error) string {
	var se *statusError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return fmt.Sprintf("status %dxx", se.code/100)
	case errors.Is(err, errNotHTTPS):
		return "refused: the webhook URL is not https"
	case errors.Is(err, ErrAddressRefused):
		return "refused: the webhook's address is not public"
	case errors.Is(err, errRedirect):
		return "refused: redirect not followed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, errStopping):
		return "node stopping"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return "connection failed"
}

// refused reports an attempt refused before or instead of a delivery, which
// trying again would not change.
func refused(err error) bool {
	return errors.Is(err, errNotHTTPS) || errors.Is(err, ErrAddressRefused) || errors.Is(err, errRedirect)
}

// statusError is an answer other than 2xx.
type statusError struct{ code int }

func (e *statusError) Error() string { return fmt.Sprintf("status %d", e.code) }

// errStopping is a delivery cut short by the node stopping.
var errStopping = errors.New("node stopping")
