package cloudid

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/smallstep/pkcs7"
)

// AWS instance identity, as the EC2 instance metadata service (IMDS) gives it:
//
//   - /latest/dynamic/instance-identity/document: a JSON document;
//   - /latest/dynamic/instance-identity/signature: base64 RSA PKCS #1 v1.5
//     SHA-256 signature over the document's exact bytes, verified with the
//     region's "RSA" certificate;
//   - /latest/dynamic/instance-identity/rsa2048: base64 PKCS #7 SignedData
//     (SHA-256 with RSA) embedding the document, verified with the region's
//     "RSA-2048" certificate.
//
// The DSA-signed /pkcs7 form is not accepted: Go cannot verify DSA.

// clockSkew is how far in the future an AWS pendingTime or a GCP creation
// time may lie (the clocks of the node and of the cloud differ a little).
const clockSkew = 5 * time.Minute

// AWSIdentity is what a verified instance identity document says.
type AWSIdentity struct {
	AccountID        string
	InstanceID       string
	Region           string
	AvailabilityZone string
	// PrivateIP is the primary network interface's private IPv4 address,
	// in canonical form; empty if the document names none.
	PrivateIP string
	// PendingTime is when the instance last entered the pending state: its
	// launch, or its last start after a stop.
	PendingTime time.Time
	// Project is the Rampart project AccountID maps to.
	Project string
}

// AWSEvidence is what an agent read from IMDS: the document with its
// /signature, or the /rsa2048 PKCS #7 form, which embeds the document.
type AWSEvidence struct {
	// Document is the identity document, byte for byte as IMDS served it.
	Document []byte
	// Signature is /signature as served (base64; whitespace is ignored).
	Signature string
	// PKCS7 is /rsa2048 as served (base64, with or without PEM armour).
	PKCS7 string
}

// AWSVerifier checks AWS instance identity documents.
type AWSVerifier struct {
	// Certificates are AWS's public certificates for the regions instances
	// enroll from: a document must be signed by the key of one of them.
	Certificates []*x509.Certificate
	// Accounts maps AWS account ids to Rampart projects; an account not in it
	// is refused.
	Accounts map[string]string
	// MaxAge bounds how long after its pendingTime (launch) an instance may
	// enroll; zero means no bound.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ReadAWSCertificates reads a PEM bundle of AWS certificates from path.
func ReadAWSCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseAWSCertificates(b)
}

// ParseAWSCertificates parses a PEM bundle of CERTIFICATE blocks. Every block
// must parse; a bundle without certificates is an error.
func ParseAWSCertificates(bundle []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bundle
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("trailing data that is not PEM after the last certificate")
	}
	return certs, nil
}

// awsDocument holds the fields of an identity document Rampart uses.
type awsDocument struct {
	AccountID        string `json:"accountId"`
	InstanceID       string `json:"instanceId"`
	Region           string `json:"region"`
	AvailabilityZone string `json:"availabilityZone"`
	PrivateIP        string `json:"privateIp"`
	PendingTime      string `json:"pendingTime"`
}

// Verify checks the signature, the document's fields, its freshness and the
// account mapping, and returns the instance's identity. Refusals are *Error.
func (v *AWSVerifier) Verify(ev AWSEvidence) (*AWSIdentity, error) {
	doc, err := v.signedDocument(ev)
	if err != nil {
		return nil, err
	}
	var d awsDocument
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, refuse(ErrMalformed, err, "the AWS instance identity document is not JSON")
	}
	switch {
	case !awsAccountRE.MatchString(d.AccountID):
		return nil, refuse(ErrMalformed, nil, "the AWS instance identity document has no valid accountId")
	case !awsInstanceRE.MatchString(d.InstanceID):
		return nil, refuse(ErrMalformed, nil, "the AWS instance identity document has no valid instanceId")
	case d.Region == "" || len(d.Region) > 64 || strings.ContainsFunc(d.Region, isControlOrSpace):
		return nil, refuse(ErrMalformed, nil, "the AWS instance identity document has no valid region")
	}
	pending, err := time.Parse(time.RFC3339, d.PendingTime)
	if err != nil {
		return nil, refuse(ErrMalformed, err, "the AWS instance identity document has no valid pendingTime")
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	if pending.After(now.Add(clockSkew)) {
		return nil, refuse(ErrStale, nil, "AWS instance %s has a pendingTime (%s) in the future: check the node's clock",
			d.InstanceID, pending.UTC().Format(time.RFC3339))
	}
	if v.MaxAge > 0 && now.Sub(pending) > v.MaxAge {
		return nil, refuse(ErrStale, nil, "AWS instance %s entered pending at %s, more than %s ago: "+
			"auto-enrollment is allowed only within agents.aws.max_age of launch; enroll it with a token",
			d.InstanceID, pending.UTC().Format(time.RFC3339), shortDuration(v.MaxAge))
	}
	if d.PrivateIP != "" {
		ip, err := netip.ParseAddr(d.PrivateIP)
		if err != nil {
			return nil, refuse(ErrMalformed, err, "the AWS instance identity document has no valid privateIp")
		}
		d.PrivateIP = ip.Unmap().String()
	}
	project, ok := v.Accounts[d.AccountID]
	if !ok || project == "" {
		return nil, refuse(ErrUnmapped, nil, "AWS account %s is not mapped to a Rampart project (agents.aws.accounts)", d.AccountID)
	}
	return &AWSIdentity{AccountID: d.AccountID, InstanceID: d.InstanceID, Region: d.Region,
		AvailabilityZone: d.AvailabilityZone, PrivateIP: d.PrivateIP, PendingTime: pending.UTC(), Project: project}, nil
}

// signedDocument returns the document once its signature has verified.
func (v *AWSVerifier) signedDocument(ev AWSEvidence) ([]byte, error) {
	if len(ev.Document) > maxEvidence || len(ev.Signature) > maxEvidence || len(ev.PKCS7) > maxEvidence {
		return nil, refuse(ErrMalformed, nil, "the AWS instance identity is larger than %d bytes", maxEvidence)
	}
	switch {
	case ev.PKCS7 != "":
		return v.verifyPKCS7(ev)
	case ev.Signature != "" && len(ev.Document) > 0:
		return v.verifySignature(ev)
	}
	return nil, refuse(ErrMalformed, nil, "no AWS instance identity: send the document with its signature, or the rsa2048 PKCS #7 form")
}

// verifySignature checks /signature: RSA PKCS #1 v1.5 over SHA-256 of the
// document's exact bytes, by the key of any trusted certificate.
func (v *AWSVerifier) verifySignature(ev AWSEvidence) ([]byte, error) {
	sig, err := decodeBase64(ev.Signature)
	if err != nil {
		return nil, refuse(ErrMalformed, err, "the AWS instance identity signature is not base64")
	}
	sum := sha256.Sum256(ev.Document)
	var last error
	for _, c := range v.Certificates {
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			continue
		}
		if last = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); last == nil {
			return ev.Document, nil
		}
	}
	if last == nil {
		last = errors.New("no RSA certificate in the bundle")
	}
	return nil, refuse(ErrForged, last, "the AWS instance identity document's signature does not verify against this cluster's AWS certificates")
}

// verifyPKCS7 checks /rsa2048. Only the trusted certificates can be the
// signer's: certificates the message carries itself are discarded.
func (v *AWSVerifier) verifyPKCS7(ev AWSEvidence) ([]byte, error) {
	raw := strings.TrimSpace(ev.PKCS7)
	var der []byte
	if strings.HasPrefix(raw, "-----BEGIN") {
		block, _ := pem.Decode([]byte(raw))
		if block == nil {
			return nil, refuse(ErrMalformed, nil, "the AWS instance identity PKCS #7 is not valid PEM")
		}
		der = block.Bytes
	} else {
		var err error
		if der, err = decodeBase64(raw); err != nil {
			return nil, refuse(ErrMalformed, err, "the AWS instance identity PKCS #7 is not base64")
		}
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, refuse(ErrMalformed, err, "the AWS instance identity PKCS #7 cannot be parsed")
	}
	if len(p7.Signers) != 1 {
		return nil, refuse(ErrMalformed, nil, "the AWS instance identity PKCS #7 has %d signers, want 1", len(p7.Signers))
	}
	switch alg := p7.Signers[0].DigestAlgorithm.Algorithm; {
	case alg.Equal(pkcs7.OIDDigestAlgorithmSHA256), alg.Equal(pkcs7.OIDDigestAlgorithmSHA384), alg.Equal(pkcs7.OIDDigestAlgorithmSHA512):
	default:
		return nil, refuse(ErrForged, fmt.Errorf("digest algorithm %s", alg), "the AWS instance identity PKCS #7 uses a digest other than SHA-2")
	}
	p7.Certificates = v.Certificates
	if err := p7.Verify(); err != nil {
		return nil, refuse(ErrForged, err, "the AWS instance identity PKCS #7 signature does not verify against this cluster's AWS certificates")
	}
	if len(ev.Document) > 0 && !bytes.Equal(ev.Document, p7.Content) {
		return nil, refuse(ErrForged, nil, "the AWS instance identity document differs from the one the PKCS #7 signs")
	}
	return p7.Content, nil
}

// decodeBase64 decodes standard base64, ignoring the line breaks IMDS puts
// in it.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return nil, errors.New("empty")
	}
	return base64.StdEncoding.DecodeString(s)
}

// shortDuration writes 1h for 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }
