package agent

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Cloud auto-enrollment: instead of a token, the agent sends the identity
// its cloud's metadata service vouches for (an AWS instance identity document
// signed by AWS, a GCP instance identity token signed by Google); the
// cluster verifies it and maps the account or project to a Rampart project.
// With no token to carry them, the cluster's addresses and CA pin come from
// the configuration. On AWS the cluster also requires addr to be the
// instance's private IP, as its identity document says.

// Metadata service paths and headers.
const (
	imdsTokenPath      = "/latest/api/token"
	imdsTokenHeader    = "X-aws-ec2-metadata-token"
	imdsTokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
	imdsDocumentPath   = "/latest/dynamic/instance-identity/document"
	imdsSignaturePath  = "/latest/dynamic/instance-identity/signature"
	imdsRSA2048Path    = "/latest/dynamic/instance-identity/rsa2048"
	// imdsTokenTTL: the session token is needed for a few requests only.
	imdsTokenTTL = "60"

	gcpIdentityPath   = "/computeMetadata/v1/instance/service-accounts/default/identity"
	gcpFlavorHeader   = "Metadata-Flavor"
	gcpFlavor         = "Google"
	metadataTimeout   = 10 * time.Second
	maxMetadataAnswer = 64 << 10
)

// Forms of the AWS identity an agent can send (aws_identity_form).
const (
	AWSFormSignature = "signature"
	AWSFormRSA2048   = "rsa2048"
)

// validateAutoEnroll lists the problems of the auto-enrollment settings.
func (c *Config) validateAutoEnroll() []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if len(c.Cluster) == 0 {
		bad("auto_enroll %s: set cluster to the nodes' API addresses (there is no token to carry them)", c.AutoEnroll)
	}
	if !validPin(c.CAPin) {
		bad("ca_pin %q: auto_enroll %s needs the cluster CA's pin, sha256:<64 hex digits> (docs/agent.md shows how to compute it on a node)", c.CAPin, c.AutoEnroll)
	}
	// The cluster refuses it too: anything on the instance can read its
	// identity, but only root can listen below 1024.
	if c.SSHPort >= 1024 {
		bad("ssh_port %d: auto_enroll %s needs sshd on a privileged port (below 1024); enroll with a token to use port %d", c.SSHPort, c.AutoEnroll, c.SSHPort)
	}
	switch c.AutoEnroll {
	case "aws":
		if err := checkMetadataURL(c.AWSMetadataURL); err != nil {
			bad("aws_metadata_url: %v", err)
		}
		if c.AWSIdentityForm != AWSFormSignature && c.AWSIdentityForm != AWSFormRSA2048 {
			bad("aws_identity_form %q: use %s or %s", c.AWSIdentityForm, AWSFormSignature, AWSFormRSA2048)
		}
	case "gcp":
		if err := checkMetadataURL(c.GCPMetadataURL); err != nil {
			bad("gcp_metadata_url: %v", err)
		}
		if c.GCPAudience == "" || strings.ContainsFunc(c.GCPAudience, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			bad("gcp_audience %q: set it to the cluster's agents.gcp.audience", c.GCPAudience)
		}
	}
	return errs
}

func validPin(pin string) bool {
	h, ok := strings.CutPrefix(pin, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

func checkMetadataURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return fmt.Errorf("%q is not an http URL of a metadata service", s)
	}
	return nil
}

// cloudCredential reads the instance's identity from its metadata service.
func cloudCredential(ctx context.Context, cfg *Config) (*credential, error) {
	client := metadataClient()
	defer client.CloseIdleConnections()
	cred := &credential{method: cfg.AutoEnroll, pin: cfg.CAPin, addrs: cfg.Cluster}
	var err error
	switch cfg.AutoEnroll {
	case "aws":
		err = fetchAWSIdentity(ctx, client, cfg.AWSMetadataURL, cfg.AWSIdentityForm, cred)
	case "gcp":
		cred.gcpToken, err = fetchGCPToken(ctx, client, cfg.GCPMetadataURL, cfg.GCPAudience)
	default:
		err = fmt.Errorf("auto_enroll %q is not aws or gcp", cfg.AutoEnroll)
	}
	if err != nil {
		return nil, err
	}
	return cred, nil
}

// metadataClient talks to a metadata service: directly (never through an
// HTTP proxy: the service is link-local), with short timeouts, following no
// redirect.
func metadataClient() *http.Client {
	return &http.Client{
		Timeout:       metadataTimeout,
		Transport:     &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fetchAWSIdentity reads the instance identity from IMDSv2 into cred: a
// session token first, then the document and its signature, or the
// rsa2048 PKCS #7 form.
func fetchAWSIdentity(ctx context.Context, client *http.Client, base, form string, cred *credential) error {
	base = strings.TrimSuffix(base, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+imdsTokenPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set(imdsTokenTTLHeader, imdsTokenTTL)
	tok, err := metadataGet(client, req)
	if err != nil {
		return fmt.Errorf("AWS instance metadata service (IMDSv2) at %s: session token: %w "+
			"(is this an EC2 instance with its metadata service enabled? In a container, the hop limit must be at least 2)", base, err)
	}
	get := func(path string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set(imdsTokenHeader, strings.TrimSpace(string(tok)))
		b, err := metadataGet(client, req)
		if err != nil {
			return nil, fmt.Errorf("AWS instance metadata service at %s: %s: %w", base, path, err)
		}
		return b, nil
	}
	if form == AWSFormRSA2048 {
		p7, err := get(imdsRSA2048Path)
		if err != nil {
			return err
		}
		cred.awsPKCS7 = strings.TrimSpace(string(p7))
		return nil
	}
	// The document is kept byte for byte: the signature covers its exact
	// bytes.
	doc, err := get(imdsDocumentPath)
	if err != nil {
		return err
	}
	sig, err := get(imdsSignaturePath)
	if err != nil {
		return err
	}
	cred.awsDocument, cred.awsSignature = string(doc), strings.TrimSpace(string(sig))
	return nil
}

// fetchGCPToken asks the Compute Engine metadata server for an instance
// identity token for audience, in the full format that names the instance
// and its project.
func fetchGCPToken(ctx context.Context, client *http.Client, base, audience string) (string, error) {
	base = strings.TrimSuffix(base, "/")
	q := url.Values{"audience": {audience}, "format": {"full"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+gcpIdentityPath+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set(gcpFlavorHeader, gcpFlavor)
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GCP metadata server at %s: %w (is this a Compute Engine instance?)", base, err)
	}
	defer resp.Body.Close()
	b, err := readMetadataAnswer(resp)
	if err != nil {
		return "", fmt.Errorf("GCP metadata server at %s: identity token: %w", base, err)
	}
	// The real metadata server says who it is; anything else answering at
	// that name is not asked again for a credential.
	if resp.Header.Get(gcpFlavorHeader) != gcpFlavor {
		return "", fmt.Errorf("GCP metadata server at %s: the answer lacks the header %s: %s: not a metadata server", base, gcpFlavorHeader, gcpFlavor)
	}
	tok := strings.TrimSpace(string(b))
	if strings.Count(tok, ".") != 2 {
		return "", fmt.Errorf("GCP metadata server at %s: the identity token is not a JWT", base)
	}
	return tok, nil
}

func metadataGet(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return readMetadataAnswer(resp)
}

// readMetadataAnswer returns a 200 answer's body; anything else is an error
// carrying the status only (a metadata error page says nothing useful).
func readMetadataAnswer(resp *http.Response) ([]byte, error) {
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadataAnswer))
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataAnswer+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetadataAnswer {
		return nil, errors.New("answer larger than 64 KiB")
	}
	if len(b) == 0 {
		return nil, errors.New("empty answer")
	}
	return b, nil
}
