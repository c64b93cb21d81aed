package ca

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrHostName: a name given for a host certificate cannot be a principal.
var ErrHostName = errors.New("not a host name or address")

// maxHostName is DNS's limit on a name's length.
const maxHostName = 253

// SignHostForNames certifies a target's (or the jump's per-target) host key
// for every name a user may type to reach it: its canonical name, alt names
// and access address, in that order as the caller gives them. HostPrincipals
// turns names into principals; the certificate is parsed back and checked
// before it is returned.
func (c *SSHCA) SignHostForNames(hostKey ssh.PublicKey, keyID string, names []string, validity time.Duration, now time.Time) (*ssh.Certificate, error) {
	if hostKey == nil {
		return nil, errors.New("host certificate: no host key")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("host certificate: validity %s is not positive", validity)
	}
	if keyID == "" || hasControl(keyID) {
		return nil, errors.New("host certificate: key id is empty or holds a control character")
	}
	principals, err := HostPrincipals(names...)
	if err != nil {
		return nil, err
	}
	cert, err := c.SignHost(hostKey, keyID, principals, validity, now)
	if err != nil {
		return nil, err
	}
	return checkHostCert(cert, c.Signer.PublicKey(), principals, now)
}

// HostPrincipals turns the names of a host into host-certificate principals.
// Empty names (an unset alt name or address) are skipped; a "host:port" or
// "[v6]:port" address gives its host; an IP is added as given and in
// canonical form; a name with upper case is added as given and in lower case
// (OpenSSH lower-cases the host name typed before matching). Duplicates are
// dropped, order kept. A name that is not a plain DNS name or IP address is
// refused, wildcards above all: OpenSSH matches host-certificate principals
// as patterns, so "*" would certify the key for every host.
func HostPrincipals(names ...string) ([]string, error) {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, raw := range names {
		n := strings.TrimSpace(raw)
		if n == "" {
			continue
		}
		if host, _, err := net.SplitHostPort(n); err == nil {
			n = host
		} else if strings.HasPrefix(n, "[") && strings.HasSuffix(n, "]") {
			n = n[1 : len(n)-1]
		}
		if a, err := netip.ParseAddr(n); err == nil {
			if a.Zone() != "" {
				return nil, fmt.Errorf("%w: %q has a zone", ErrHostName, raw)
			}
			add(n)
			add(a.Unmap().String())
			continue
		}
		if !dnsName(n) {
			return nil, fmt.Errorf("%w: %q", ErrHostName, raw)
		}
		add(n)
		add(strings.ToLower(n))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: a host certificate needs at least one name", ErrHostName)
	}
	return out, nil
}

// dnsName admits letters, digits, '-', '_' and '.' in non-empty labels: no
// pattern characters, no spaces, no commas.
func dnsName(s string) bool {
	if len(s) > maxHostName || s == "" {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// checkHostCert parses a host certificate back and checks that it is what was
// meant: a host certificate from caKey for exactly these principals, valid now.
func checkHostCert(cert *ssh.Certificate, caKey ssh.PublicKey, principals []string, now time.Time) (*ssh.Certificate, error) {
	pub, err := ssh.ParsePublicKey(cert.Marshal())
	if err != nil {
		return nil, fmt.Errorf("host certificate does not parse back: %w", err)
	}
	got, ok := pub.(*ssh.Certificate)
	switch {
	case !ok || got.CertType != ssh.HostCert:
		return nil, errors.New("host certificate: wrong type after signing")
	case !slices.Equal(got.ValidPrincipals, principals):
		return nil, errors.New("host certificate: principals changed in signing")
	case got.Signature == nil || got.Signature.Format != signatureFormat(caKey):
		return nil, errors.New("host certificate: unexpected signature algorithm")
	case len(got.CriticalOptions) != 0 || len(got.Extensions) != 0:
		return nil, errors.New("host certificate: carries options or extensions")
	}
	checker := ssh.CertChecker{Clock: func() time.Time { return now }}
	if err := checker.CheckCert(principals[0], got); err != nil {
		return nil, fmt.Errorf("host certificate: %w", err)
	}
	if string(got.SignatureKey.Marshal()) != string(caKey.Marshal()) {
		return nil, errors.New("host certificate: signed by another key")
	}
	return got, nil
}
