package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// TLSCertRequest asks the cluster TLS CA for one certificate: a node's or an
// agent's.
type TLSCertRequest struct {
	// Role is api.RoleNode or api.RoleAgent; ID the node's or the server's id.
	Role, ID string
	// PublicKey is the key being certified.
	PublicKey crypto.PublicKey
	// IPs and DNSNames are the certificate's SANs.
	IPs      []net.IP
	DNSNames []string
	// Validity is the lifetime from now; 0 means two years.
	Validity time.Duration
}

// tlsMint is one TLS certificate on its way through the pipeline.
type tlsMint struct {
	ca  *TLSCA
	req TLSCertRequest
	now time.Time

	tmpl *x509.Certificate
	der  []byte
}

// tlsCertPipeline is the fixed order of TLS issuance, as userCertPipeline is
// for user certificates: defaults fill the template, policy checks it, sign
// signs it, verify parses it back and checks it as a peer would.
var tlsCertPipeline = [...]struct {
	name string
	run  func(*tlsMint) error
}{
	{"defaults", tlsDefaults},
	{"policy/role", tlsPolicyRole},
	{"policy/id", tlsPolicyID},
	{"policy/subject-key", tlsPolicyKey},
	{"sign", signTLS},
	{"verify", verifyTLS},
}

// Issue signs a certificate for role/id with the given public key, valid as
// both TLS server and client, naming ips and dnsNames as SANs.
func (c *TLSCA) Issue(role, id string, pub crypto.PublicKey, ips []net.IP, dnsNames []string, validity time.Duration) ([]byte, error) {
	return c.IssueCert(TLSCertRequest{Role: role, ID: id, PublicKey: pub, IPs: ips, DNSNames: dnsNames, Validity: validity})
}

// IssueCert runs req through the TLS pipeline at the CA's clock and returns
// the certificate as PEM.
func (c *TLSCA) IssueCert(req TLSCertRequest) ([]byte, error) {
	m := &tlsMint{ca: c, req: req, now: c.now()}
	for _, step := range tlsCertPipeline {
		if err := step.run(m); err != nil {
			return nil, fmt.Errorf("issue %s certificate for %s (%s): %w", req.Role, req.ID, step.name, err)
		}
	}
	return pemCert(m.der), nil
}

// tlsDefaults fills the template: lifetime, serial, subject, usages, SANs.
// Only nodes serve TLS; an agent's certificate is for client authentication
// alone, so it can never pass as a node.
func tlsDefaults(m *tlsMint) error {
	validity := m.req.Validity
	if validity == 0 {
		validity = nodeValidity
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	if m.req.Role == api.RoleAgent {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	m.tmpl = &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: m.req.Role + " " + m.req.ID, Organization: []string{"rampart"}},
		NotBefore:    m.now.Add(-backdate),
		NotAfter:     m.now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usages,
		IPAddresses:  m.req.IPs,
		DNSNames:     m.req.DNSNames,
		URIs:         []*url.URL{api.IdentityURI(m.req.Role, m.req.ID)},
	}
	return nil
}

func tlsPolicyRole(m *tlsMint) error {
	if m.req.Role != api.RoleNode && m.req.Role != api.RoleAgent {
		return fmt.Errorf("%w: unknown certificate role %q", ErrCertRequest, m.req.Role)
	}
	return nil
}

func tlsPolicyID(m *tlsMint) error {
	if id := m.req.ID; id == "" || strings.ContainsAny(id, ":/ \t\r\n") {
		return fmt.Errorf("%w: certificate id %q is empty or has forbidden characters", ErrCertRequest, id)
	}
	return nil
}

func tlsPolicyKey(m *tlsMint) error {
	if m.req.PublicKey == nil {
		return fmt.Errorf("%w: no public key", ErrCertRequest)
	}
	return nil
}

func signTLS(m *tlsMint) error {
	der, err := x509.CreateCertificate(rand.Reader, m.tmpl, m.ca.Cert, m.req.PublicKey, m.ca.Key)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	m.der = der
	return nil
}

// verifyTLS parses the certificate back and checks it against what was
// meant: issued by this CA, for this key, role and id, with these SANs,
// usages and validity window.
func verifyTLS(m *tlsMint) error {
	got, err := x509.ParseCertificate(m.der)
	if err != nil {
		return fmt.Errorf("%w: does not parse: %v", ErrMintedCert, err)
	}
	role, id, _ := api.Identity(got)
	key, ok := got.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	checks := []struct {
		ok   bool
		what string
	}{
		{role == m.req.Role && id == m.req.ID && len(got.URIs) == 1, "identity"},
		{ok && key.Equal(m.req.PublicKey), "subject key"},
		{got.Subject.CommonName == m.tmpl.Subject.CommonName, "subject"},
		{slices.Equal(got.ExtKeyUsage, m.tmpl.ExtKeyUsage) && got.KeyUsage == x509.KeyUsageDigitalSignature && !got.IsCA, "usages"},
		{slices.EqualFunc(got.IPAddresses, m.req.IPs, func(a, b net.IP) bool { return a.Equal(b) }) && slices.Equal(got.DNSNames, m.req.DNSNames), "SANs"},
		{got.NotBefore.Equal(m.tmpl.NotBefore.Truncate(time.Second)) && got.NotAfter.Equal(m.tmpl.NotAfter.Truncate(time.Second)), "validity window"},
		{bytes.Equal(got.RawIssuer, m.ca.Cert.RawSubject) && got.CheckSignatureFrom(m.ca.Cert) == nil, "issuer"},
	}
	for _, c := range checks {
		if !c.ok {
			return fmt.Errorf("%w: %s", ErrMintedCert, c.what)
		}
	}
	return nil
}
