package ca

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrHostName: a name given for a host certificate cannot be a principal.
var ErrHostName = errors.New("not a host name or address")

const (
	// maxHostName is DNS's limit on a name's length.
	maxHostName = 253
	// hostCertBackdate absorbs clock skew between the host and its clients.
	hostCertBackdate = time.Minute
)

// HostCertRequest asks for one host certificate: a target's host key, the
// jump's per-target inner key, or the node's own key.
type HostCertRequest struct {
	// HostKey is the key being certified.
	HostKey ssh.PublicKey
	// KeyID names the host in logs ("rampart host web-1"); no control
	// characters.
	KeyID string
	// Names are what users type to reach the host (canonical name, alt
	// names, access address); HostPrincipals turns them into principals.
	Names []string
	// Principals, used when Names is empty, are taken as given: the node's
	// own host names, which come from its configuration and its addresses.
	Principals []string
	// Validity is the lifetime from now; it must be positive.
	Validity time.Duration
}

// hostMint is one host certificate on its way through the pipeline.
type hostMint struct {
	ca  *SSHCA
	req HostCertRequest
	now time.Time
	rnd io.Reader

	principals []string
	cert       *ssh.Certificate
}

// hostCertPipeline is the fixed order of host certificate issuance, as
// userCertPipeline is for user certificates: defaults fill the draft, policy
// checks it, sign signs it, verify parses it back and checks it as a client
// would.
var hostCertPipeline = [...]struct {
	name string
	run  func(*hostMint) error
}{
	{"defaults", hostDefaults},
	{"policy/subject-key", hostPolicyKey},
	{"policy/key-id", hostPolicyKeyID},
	{"policy/validity", hostPolicyValidity},
	{"policy/principals", hostPolicyPrincipals},
	{"sign", signHostCert},
	{"verify", verifyHostCert},
}

// IssueHost issues a host certificate for req at now, drawing the serial
// and nonce from rnd (crypto/rand when nil). The certificate returned is the
// one parsed back from its wire form and checked.
func (c *SSHCA) IssueHost(req HostCertRequest, now time.Time, rnd io.Reader) (*ssh.Certificate, error) {
	if c == nil || c.Signer == nil {
		return nil, fmt.Errorf("host certificate: %w: no CA signer", ErrCertRequest)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	m := &hostMint{ca: c, req: req, now: now, rnd: rnd}
	for _, step := range hostCertPipeline {
		if err := step.run(m); err != nil {
			return nil, fmt.Errorf("host certificate (%s): %w", step.name, err)
		}
	}
	return m.cert, nil
}

// SignHostForNames certifies a target's (or the jump's per-target) host key
// for every name a user may type to reach it: its canonical name, alt names
// and access address, in that order as the caller gives them (IssueHost with
// Names).
func (c *SSHCA) SignHostForNames(hostKey ssh.PublicKey, keyID string, names []string, validity time.Duration, now time.Time) (*ssh.Certificate, error) {
	return c.IssueHost(HostCertRequest{HostKey: hostKey, KeyID: keyID, Names: names, Validity: validity}, now, nil)
}

// SignHost certifies a host key for exactly the given principals (IssueHost
// with Principals), valid from a minute ago for validity.
func (c *SSHCA) SignHost(hostKey ssh.PublicKey, keyID string, principals []string, validity time.Duration, now time.Time) (*ssh.Certificate, error) {
	return c.IssueHost(HostCertRequest{HostKey: hostKey, KeyID: keyID, Principals: principals, Validity: validity}, now, nil)
}

// hostDefaults fills the draft: serial, key, key id, backdated start.
func hostDefaults(m *hostMint) error {
	if m.now.IsZero() {
		return fmt.Errorf("%w: no time given", ErrCertRequest)
	}
	serial, err := randomSerial64(m.rnd)
	if err != nil {
		return fmt.Errorf("serial: %w", err)
	}
	m.cert = &ssh.Certificate{
		Key: m.req.HostKey, Serial: serial, CertType: ssh.HostCert, KeyId: m.req.KeyID,
		ValidAfter: uint64(m.now.Add(-hostCertBackdate).Unix()), ValidBefore: uint64(m.now.Add(m.req.Validity).Unix()),
	}
	return nil
}

func hostPolicyKey(m *hostMint) error {
	if m.req.HostKey == nil {
		return fmt.Errorf("%w: no host key", ErrCertRequest)
	}
	if _, ok := m.req.HostKey.(*ssh.Certificate); ok {
		return fmt.Errorf("%w: the host key is a certificate", ErrCertRequest)
	}
	return nil
}

func hostPolicyKeyID(m *hostMint) error {
	if m.req.KeyID == "" || hasControl(m.req.KeyID) {
		return fmt.Errorf("%w: key id is empty or holds a control character", ErrCertRequest)
	}
	return nil
}

func hostPolicyValidity(m *hostMint) error {
	if m.req.Validity <= 0 {
		return fmt.Errorf("%w: validity %s is not positive", ErrCertTTL, m.req.Validity)
	}
	return nil
}

// hostPolicyPrincipals turns Names into principals (HostPrincipals), or
// takes Principals as given; a host certificate names at least one.
func hostPolicyPrincipals(m *hostMint) error {
	switch {
	case len(m.req.Names) > 0:
		p, err := HostPrincipals(m.req.Names...)
		if err != nil {
			return err
		}
		m.principals = p
	case len(m.req.Principals) > 0:
		m.principals = slices.Clone(m.req.Principals)
	default:
		return fmt.Errorf("%w: a host certificate needs at least one principal", ErrHostName)
	}
	m.cert.ValidPrincipals = m.principals
	return nil
}

// signHostCert signs the draft; an RSA CA signs with rsa-sha2-512.
func signHostCert(m *hostMint) error {
	signer, err := restrictRSA(m.ca.Signer)
	if err != nil {
		return err
	}
	if err := m.cert.SignCert(m.rnd, signer); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	return nil
}

// verifyHostCert parses the certificate back and checks that it is what was
// meant: a host certificate from this CA for exactly these principals and
// this key, without options or extensions, valid now (which checks the
// signature too).
func verifyHostCert(m *hostMint) error {
	pub, err := ssh.ParsePublicKey(m.cert.Marshal())
	if err != nil {
		return fmt.Errorf("%w: does not parse: %v", ErrMintedCert, err)
	}
	got, ok := pub.(*ssh.Certificate)
	caKey := m.ca.Signer.PublicKey()
	switch {
	case !ok || got.CertType != ssh.HostCert:
		return fmt.Errorf("%w: wrong type after signing", ErrMintedCert)
	case !slices.Equal(got.ValidPrincipals, m.principals):
		return fmt.Errorf("%w: principals changed in signing", ErrMintedCert)
	case !bytes.Equal(got.Key.Marshal(), m.req.HostKey.Marshal()):
		return fmt.Errorf("%w: subject key", ErrMintedCert)
	case got.KeyId != m.req.KeyID || got.Serial != m.cert.Serial:
		return fmt.Errorf("%w: key id or serial", ErrMintedCert)
	case got.Signature == nil || got.Signature.Format != signatureFormat(caKey):
		return fmt.Errorf("%w: unexpected signature algorithm", ErrMintedCert)
	case len(got.CriticalOptions) != 0 || len(got.Extensions) != 0:
		return fmt.Errorf("%w: carries options or extensions", ErrMintedCert)
	case !bytes.Equal(got.SignatureKey.Marshal(), caKey.Marshal()):
		return fmt.Errorf("%w: signed by another key", ErrMintedCert)
	}
	checker := ssh.CertChecker{Clock: func() time.Time { return m.now }}
	if err := checker.CheckCert(m.principals[0], got); err != nil {
		return fmt.Errorf("%w: %v", ErrMintedCert, err)
	}
	m.cert = got
	return nil
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
