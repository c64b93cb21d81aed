// Package cloudidtest plays, for tests, the clouds' side of instance identity:
// an AWS region's signing certificate and the EC2 instance metadata service
// (IMDSv2), an OpenID issuer signing GCP instance identity tokens, and the
// Compute Engine metadata server. The handlers are meant to be served over
// real HTTP; nothing here is used by production code.
package cloudidtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/pkcs7"
)

// AWSSigner is a stand-in for one AWS region's instance identity signing key
// and its public certificate.
type AWSSigner struct {
	Cert *x509.Certificate
	// CertPEM is Cert as an operator would put it in the bundle.
	CertPEM []byte
	key     *rsa.PrivateKey
}

// NewAWSSigner makes an RSA 2048 key and a self-signed certificate for it,
// like AWS's per-region certificates.
func NewAWSSigner(commonName string) (*AWSSigner, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Country: []string{"US"}, Organization: []string{"Amazon Web Services LLC"}, CommonName: commonName},
		NotBefore:    time.Now().Add(-24 * time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &AWSSigner{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}, nil
}

// Signature is /signature for doc: base64 of RSA PKCS #1 v1.5 over SHA-256,
// in lines of 64 characters as IMDS serves it.
func (s *AWSSigner) Signature(doc []byte) (string, error) {
	sum := sha256.Sum256(doc)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return wrap64(base64.StdEncoding.EncodeToString(sig)), nil
}

// RSA2048 is /rsa2048 for doc: base64 PKCS #7 SignedData (SHA-256 with RSA)
// embedding doc, without PEM armour, as IMDS serves it.
func (s *AWSSigner) RSA2048(doc []byte) (string, error) {
	sd, err := pkcs7.NewSignedData(doc)
	if err != nil {
		return "", err
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(s.Cert, s.key, pkcs7.SignerInfoConfig{}); err != nil {
		return "", err
	}
	der, err := sd.Finish()
	if err != nil {
		return "", err
	}
	return wrap64(base64.StdEncoding.EncodeToString(der)), nil
}

func wrap64(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s)
	return b.String()
}

// AWSDocument is an instance identity document's content.
type AWSDocument struct {
	AccountID        string
	InstanceID       string
	Region           string
	AvailabilityZone string
	PrivateIP        string
	PendingTime      time.Time
}

// Bytes renders the document the way IMDS does (pretty-printed, with
// " : " between keys and values).
func (d AWSDocument) Bytes() []byte {
	q := strconv.Quote
	return []byte(`{
  "accountId" : ` + q(d.AccountID) + `,
  "architecture" : "x86_64",
  "availabilityZone" : ` + q(d.AvailabilityZone) + `,
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0123456789abcdef0",
  "instanceId" : ` + q(d.InstanceID) + `,
  "instanceType" : "t3.micro",
  "kernelId" : null,
  "pendingTime" : ` + q(d.PendingTime.UTC().Format(time.RFC3339)) + `,
  "privateIp" : ` + q(d.PrivateIP) + `,
  "ramdiskId" : null,
  "region" : ` + q(d.Region) + `,
  "version" : "2017-09-30"
}`)
}

// RandomInstanceID is an EC2-style instance id, i- and 17 hex digits.
func RandomInstanceID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return "i-" + hex.EncodeToString(b)[:17]
}

// IMDS plays the instance identity part of the EC2 instance metadata
// service, version 2 only: a session token from PUT /latest/api/token is
// required on every GET, as on instances that require IMDSv2.
type IMDS struct {
	mu        sync.Mutex
	document  []byte
	signature string
	rsa2048   string
	tokens    map[string]time.Time
	gets      int
}

// IMDS header names.
const (
	IMDSTokenHeader    = "X-aws-ec2-metadata-token"
	IMDSTokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
)

// SetIdentity sets what the identity paths serve.
func (m *IMDS) SetIdentity(document []byte, signature, rsa2048 string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.document, m.signature, m.rsa2048 = document, signature, rsa2048
}

// Gets counts the identity GETs served with a valid session token.
func (m *IMDS) Gets() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets
}

func (m *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get(IMDSTokenTTLHeader))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "missing or invalid "+IMDSTokenTTLHeader, http.StatusBadRequest)
			return
		}
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		tok := base64.RawURLEncoding.EncodeToString(b)
		if m.tokens == nil {
			m.tokens = map[string]time.Time{}
		}
		m.tokens[tok] = time.Now().Add(time.Duration(ttl) * time.Second)
		w.Header().Set(IMDSTokenTTLHeader, strconv.Itoa(ttl))
		fmt.Fprint(w, tok)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if exp, ok := m.tokens[r.Header.Get(IMDSTokenHeader)]; !ok || time.Now().After(exp) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body string
	switch r.URL.Path {
	case "/latest/dynamic/instance-identity/document":
		body = string(m.document)
	case "/latest/dynamic/instance-identity/signature":
		body = m.signature
	case "/latest/dynamic/instance-identity/rsa2048":
		body = m.rsa2048
	default:
		http.NotFound(w, r)
		return
	}
	if body == "" {
		http.NotFound(w, r)
		return
	}
	m.gets++
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprint(w, body)
}
