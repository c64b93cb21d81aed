package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// Certificate extensions and the one critical option Rampart uses, as
// OpenSSH's PROTOCOL.certkeys names them.
const (
	ExtPermitPTY             = "permit-pty"
	ExtPermitPortForwarding  = "permit-port-forwarding"
	ExtPermitAgentForwarding = "permit-agent-forwarding"
	ExtPermitX11Forwarding   = "permit-X11-forwarding"
	ExtPermitUserRC          = "permit-user-rc"
	OptSourceAddress         = "source-address"
)

const (
	// userCertBackdate absorbs clock skew between the node and the target.
	userCertBackdate = time.Minute
	// maxSourceAddresses caps the source-address list (a node has a few
	// egress addresses, not hundreds).
	maxSourceAddresses = 32
	// maxKeyIDValue caps each value in the key ID, after escaping.
	maxKeyIDValue = 128
)

// Errors MintUser returns, each wrapped with the detail. The first five are
// refusals of the request; ErrMintedCert means the finished certificate
// failed its own checks, which is a bug, never the caller's input.
var (
	ErrCertRequest   = errors.New("incomplete certificate request")
	ErrUnixName      = errors.New("not a valid POSIX user name")
	ErrCertTTL       = errors.New("certificate lifetime out of range")
	ErrSourceAddress = errors.New("bad source address")
	ErrExtension     = errors.New("certificate extension refused")
	ErrMintedCert    = errors.New("minted certificate failed post-sign validation")
)

// UserCertRequest asks for one per-hop user certificate: the node's fresh key
// for one session of one user on one server.
//
// The CA checks the request's form, not who may log in as whom: UnixName must
// be a valid POSIX name and is otherwise taken as given ("root" included).
// Which logins a user may use is the jump's decision (the user's own unix name
// or one the project grants), and the agent never manages root.
type UserCertRequest struct {
	// PublicKey is the key being certified (ed25519, ECDSA, or RSA ≥ 2048).
	PublicKey ssh.PublicKey
	// UnixName is the certificate's only principal: the login on the target.
	UnixName string
	// UserLogin, SessionID, Server and Project name the person, the session
	// and the target in the key ID, which the target's sshd logs. All are
	// required.
	UserLogin string
	SessionID string
	Server    string
	Project   string
	// SourceAddresses are IPs or CIDRs (the node's egress addresses to
	// targets) the certificate may be used from; at least one.
	SourceAddresses []string
	// TTL is the certificate's lifetime from now; 0 means api.DefaultUserCertTTL,
	// otherwise it must lie within api.MinUserCertTTL..api.MaxUserCertTTL.
	TTL time.Duration
	// AllowPortForwarding grants permit-port-forwarding (set it when the
	// project allows local or remote forwarding; the jump, which terminates
	// both legs, enforces the direction). AllowAgentForwarding grants
	// permit-agent-forwarding.
	AllowPortForwarding, AllowAgentForwarding bool
	// Extensions asks for extensions by name, each with an empty value.
	// permit-pty is always granted; the forwarding ones only when allowed
	// above; permit-X11-forwarding, permit-user-rc, critical options and any
	// name the CA does not know are refused.
	Extensions map[string]string
}

// userMint is one certificate on its way through the pipeline.
type userMint struct {
	ca  *SSHCA
	req UserCertRequest
	now time.Time
	rnd io.Reader

	ttl time.Duration
	// sources is the normalised source-address list, set by policy.
	sources []string
	// cert is the draft until sign, then the certificate parsed back from its
	// wire form by verify.
	cert *ssh.Certificate
}

// userStep is one stage of minting; the first error stops the pipeline.
type userStep struct {
	name string
	run  func(*userMint) error
}

// userCertPipeline is the fixed order of minting: defaults fill the draft,
// policy checks and completes it, sign signs it, and verify parses the
// result back and checks it as a target would. Nothing else touches a
// certificate on its way out.
var userCertPipeline = [...]userStep{
	{"defaults", userDefaults},
	{"policy/subject-key", policySubjectKey},
	{"policy/identity", policyIdentity},
	{"policy/unix-name", policyUnixName},
	{"policy/ttl", policyTTL},
	{"policy/source-address", policySourceAddress},
	{"policy/extensions", policyExtensions},
	{"sign", signUser},
	{"verify", verifyUser},
}

// MintUser mints a per-hop user certificate for req at now, drawing the
// serial and nonce from rnd (crypto/rand when nil). The certificate returned
// is the one parsed back from its wire form and checked.
func (c *SSHCA) MintUser(req UserCertRequest, now time.Time, rnd io.Reader) (*ssh.Certificate, error) {
	if c == nil || c.Signer == nil {
		return nil, fmt.Errorf("%w: no CA signer", ErrCertRequest)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	m := &userMint{ca: c, req: req, now: now, rnd: rnd}
	for _, step := range userCertPipeline {
		if err := step.run(m); err != nil {
			return nil, fmt.Errorf("mint user certificate (%s): %w", step.name, err)
		}
	}
	return m.cert, nil
}

// userDefaults fills the draft: lifetime, backdated start, serial, key ID
// and the single principal.
func userDefaults(m *userMint) error {
	if m.now.IsZero() {
		return fmt.Errorf("%w: no time given", ErrCertRequest)
	}
	m.ttl = m.req.TTL
	if m.ttl == 0 {
		m.ttl = api.DefaultUserCertTTL
	}
	serial, err := randomSerial64(m.rnd)
	if err != nil {
		return fmt.Errorf("serial: %w", err)
	}
	m.cert = &ssh.Certificate{
		Key:             m.req.PublicKey,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           userKeyID(m.req),
		ValidPrincipals: []string{m.req.UnixName},
		ValidAfter:      uint64(m.now.Add(-userCertBackdate).Unix()),
		ValidBefore:     uint64(m.now.Add(m.ttl).Unix()),
	}
	return nil
}

// userKeyID names the person, session, target and project for the target's
// sshd log: "rampart user=alice@example.com session=s1 server=web-1 project=p".
func userKeyID(r UserCertRequest) string {
	return "rampart user=" + keyIDValue(r.UserLogin) + " session=" + keyIDValue(r.SessionID) +
		" server=" + keyIDValue(r.Server) + " project=" + keyIDValue(r.Project)
}

// keyIDValue escapes a key ID value so that it cannot forge another field or
// break a log line: bytes outside [A-Za-z0-9._@+:-] become %XX (so distinct
// values stay distinct), and the result is cut at maxKeyIDValue bytes.
func keyIDValue(s string) string {
	if s == "" {
		return "-"
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		var enc []byte
		if keyIDSafe(c) {
			enc = []byte{c}
		} else {
			enc = []byte{'%', hex[c>>4], hex[c&0xf]}
		}
		if b.Len()+len(enc) > maxKeyIDValue {
			break
		}
		b.Write(enc)
	}
	return b.String()
}

func keyIDSafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '@' || c == '+' || c == ':' || c == '-'
}

// policySubjectKey admits plain ed25519, ECDSA and RSA (≥ 2048-bit) keys: not
// a certificate, not a security-key type the jump never generates.
func policySubjectKey(m *userMint) error {
	k := m.req.PublicKey
	if k == nil {
		return fmt.Errorf("%w: no public key", ErrCertRequest)
	}
	switch t := k.Type(); t {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return nil
	case ssh.KeyAlgoRSA:
		ck, ok := k.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: RSA key without its modulus", ErrCertRequest)
		}
		if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); !ok || rk.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key shorter than 2048 bits", ErrCertRequest)
		}
		return nil
	default:
		return fmt.Errorf("%w: key type %q cannot be certified", ErrCertRequest, t)
	}
}

// policyIdentity requires everything the key ID names, so that the target's
// log always says whose session it was.
func policyIdentity(m *userMint) error {
	for _, f := range []struct{ name, value string }{
		{"user login", m.req.UserLogin}, {"session id", m.req.SessionID},
		{"server", m.req.Server}, {"project", m.req.Project},
	} {
		if strings.TrimSpace(f.value) == "" {
			return fmt.Errorf("%w: %s is empty", ErrCertRequest, f.name)
		}
	}
	return nil
}

// policyUnixName admits the portable unix account name raftstore and the
// agent use (api.IsPOSIXName): ^[a-z_][a-z0-9_-]{0,31}$. Never empty.
func policyUnixName(m *userMint) error {
	if !api.IsPOSIXName(m.req.UnixName) {
		return fmt.Errorf("%w: %q", ErrUnixName, m.req.UnixName)
	}
	return nil
}

func policyTTL(m *userMint) error {
	if err := api.CheckUserCertTTL(m.ttl); err != nil {
		return fmt.Errorf("%w: %w", ErrCertTTL, err)
	}
	return nil
}

// policySourceAddress parses every address as an IP or a CIDR and normalises
// it to a masked CIDR (10.1.2.3 → 10.1.2.3/32, 10.1.2.3/8 → 10.0.0.0/8),
// dropping duplicates. A /0 would restrict nothing and is refused, as are
// zones and host names.
func policySourceAddress(m *userMint) error {
	in := m.req.SourceAddresses
	if len(in) == 0 {
		return fmt.Errorf("%w: at least one is required", ErrSourceAddress)
	}
	if len(in) > maxSourceAddresses {
		return fmt.Errorf("%w: %d addresses, at most %d", ErrSourceAddress, len(in), maxSourceAddresses)
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		p, err := parseSourcePrefix(s)
		if err != nil {
			return err
		}
		if c := p.String(); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	m.sources = out
	m.cert.CriticalOptions = map[string]string{OptSourceAddress: strings.Join(out, ",")}
	return nil
}

func parseSourcePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("%w: %q is not a CIDR", ErrSourceAddress, s)
		}
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 is 10.0.0.0/8: OpenSSH matches IPv4 peers
			// against IPv4 networks.
			if p.Bits() < 96 {
				return p, fmt.Errorf("%w: %q mixes IPv4-mapped and IPv6 space", ErrSourceAddress, s)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, fmt.Errorf("%w: %q is not an IP address or CIDR", ErrSourceAddress, s)
		}
		a = a.Unmap()
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Bits() == 0 {
		return p, fmt.Errorf("%w: %q would allow every address", ErrSourceAddress, s)
	}
	return p.Masked(), nil
}

// policyExtensions grants permit-pty always and the forwarding extensions
// only when allowed, and refuses every other name asked for.
func policyExtensions(m *userMint) error {
	allowed := userExtensions(m.req)
	for _, name := range slices.Sorted(maps.Keys(m.req.Extensions)) {
		if v := m.req.Extensions[name]; v != "" {
			return fmt.Errorf("%w: %q carries a value", ErrExtension, name)
		}
		switch name {
		case ExtPermitPTY:
		case ExtPermitPortForwarding, ExtPermitAgentForwarding:
			if _, ok := allowed[name]; !ok {
				return fmt.Errorf("%w: %s is not allowed in project %s", ErrExtension, name, m.req.Project)
			}
		case ExtPermitX11Forwarding, ExtPermitUserRC:
			return fmt.Errorf("%w: %s is never granted", ErrExtension, name)
		default:
			return fmt.Errorf("%w: unknown extension or option %q", ErrExtension, name)
		}
	}
	m.cert.Extensions = allowed
	return nil
}

// userExtensions is the exact extension set a request earns.
func userExtensions(r UserCertRequest) map[string]string {
	ext := map[string]string{ExtPermitPTY: ""}
	if r.AllowPortForwarding {
		ext[ExtPermitPortForwarding] = ""
	}
	if r.AllowAgentForwarding {
		ext[ExtPermitAgentForwarding] = ""
	}
	return ext
}

// signUser signs the draft; an RSA CA signs with rsa-sha2-512.
func signUser(m *userMint) error {
	signer, err := restrictRSA(m.ca.Signer)
	if err != nil {
		return err
	}
	if err := m.cert.SignCert(m.rnd, signer); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	return nil
}

// verifyUser parses the signed certificate back from its wire form and checks
// it field by field against what the pipeline meant to issue: type,
// principal, subject key, serial, key id, validity, critical options,
// extensions, signing CA and signature algorithm.
func verifyUser(m *userMint) error {
	draft := m.cert
	pub, err := ssh.ParsePublicKey(draft.Marshal())
	if err != nil {
		return fmt.Errorf("%w: does not parse: %v", ErrMintedCert, err)
	}
	got, ok := pub.(*ssh.Certificate)
	if !ok {
		return fmt.Errorf("%w: parsed back as a %s", ErrMintedCert, pub.Type())
	}
	caKey := m.ca.Signer.PublicKey()
	wantCrit := map[string]string{OptSourceAddress: strings.Join(m.sources, ",")}
	checks := []struct {
		ok   bool
		what string
	}{
		{got.CertType == ssh.UserCert, "certificate type"},
		{slices.Equal(got.ValidPrincipals, []string{m.req.UnixName}) && m.req.UnixName != "", "principals"},
		{bytes.Equal(got.Key.Marshal(), m.req.PublicKey.Marshal()), "subject key"},
		{got.Serial != 0 && got.Serial == draft.Serial, "serial"},
		{got.KeyId == draft.KeyId, "key id"},
		{validityOK(got, m.now), "validity window"},
		{maps.Equal(got.CriticalOptions, wantCrit) && sourcesParse(m.sources), "critical options"},
		{maps.Equal(got.Extensions, userExtensions(m.req)), "extensions"},
		{bytes.Equal(got.SignatureKey.Marshal(), caKey.Marshal()), "signing CA"},
		{got.Signature != nil && got.Signature.Format == signatureFormat(caKey), "signature algorithm"},
	}
	for _, c := range checks {
		if !c.ok {
			return fmt.Errorf("%w: %s", ErrMintedCert, c.what)
		}
	}
	// The signature itself is not verified again here: it was made a moment
	// ago by our own key, and an ed25519 verification would double the cost
	// of a mint (the figure the jump's latency depends on). The tests verify
	// every kind of certificate with ssh.CertChecker, as a target would.
	m.cert = got
	return nil
}

// validityOK: the window starts at most userCertBackdate before now, holds
// now, and is no longer than the maximum lifetime plus the backdate.
func validityOK(c *ssh.Certificate, now time.Time) bool {
	t := uint64(now.Unix())
	return c.ValidAfter <= t && t < c.ValidBefore &&
		t-c.ValidAfter <= uint64(userCertBackdate/time.Second) &&
		c.ValidBefore-c.ValidAfter <= uint64((api.MaxUserCertTTL+userCertBackdate)/time.Second)
}

// sourcesParse: every entry parses as OpenSSH and x/crypto's server do.
func sourcesParse(sources []string) bool {
	for _, s := range sources {
		if _, _, err := net.ParseCIDR(s); err != nil {
			return false
		}
	}
	return len(sources) > 0
}

// randomSerial64 draws a random non-zero serial from rnd.
func randomSerial64(rnd io.Reader) (uint64, error) {
	var b [8]byte
	for range 16 {
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return 0, err
		}
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v, nil
		}
	}
	return 0, errors.New("random source returns only zeros")
}
