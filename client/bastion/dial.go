package bastion

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// ErrNotBound: the key is not bound to anyone (or its binding expired or
// was revoked); the front door asked for a browser sign-in.
var ErrNotBound = errors.New("your key is not signed in")

// Dialer reaches one front door.
type Dialer struct {
	// Addr is the front door, host:port; its certificate must name host.
	Addr string
	// User is the SSH user name on the bastion leg (any name but admin).
	User string
	// NodeHostCAs are the keys of the node host CA.
	NodeHostCAs []gossh.PublicKey
	// Timeout bounds the connection up to the first authentication step;
	// 0 means 15s.
	Timeout time.Duration
}

// Prompt shows a person how to approve a sign-in: url is the complete
// verification link, text the front door's own words.
type Prompt func(url, text string)

// reURL finds the verification link in the front door's instruction.
var reURL = regexp.MustCompile(`https?://[!-~]+`)

// Connect signs in with key alone: ErrNotBound when the front door wants a
// browser sign-in for it.
func (d Dialer) Connect(key gossh.Signer) (*gossh.Client, error) {
	return d.dial([]gossh.AuthMethod{gossh.PublicKeys(key)}, false)
}

// SignIn signs in with key, running the device flow when the key is not
// bound: prompt is called with the link once the front door sends it, and
// SignIn returns once the sign-in is approved (and key bound) or failed.
func (d Dialer) SignIn(key gossh.Signer, prompt Prompt) (*gossh.Client, error) {
	ki := gossh.KeyboardInteractive(func(_, instruction string, questions []string, _ []bool) ([]string, error) {
		if u := reURL.FindString(instruction); u != "" {
			prompt(u, instruction)
		}
		return make([]string, len(questions)), nil
	})
	return d.dial([]gossh.AuthMethod{gossh.PublicKeys(key), ki}, true)
}

func (d Dialer) dial(auth []gossh.AuthMethod, interactive bool) (*gossh.Client, error) {
	host, _, err := net.SplitHostPort(d.Addr)
	if err != nil {
		return nil, fmt.Errorf("bastion address %q: %w", d.Addr, err)
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	var banner bytes.Buffer
	cfg := &gossh.ClientConfig{
		User: d.User, Auth: auth, Timeout: timeout,
		HostKeyCallback:   d.checkHost,
		HostKeyAlgorithms: certAlgorithms,
		BannerCallback: func(msg string) error {
			// The QR code of the link comes as a banner; the CLI draws
			// its own. Other banners say why a sign-in failed.
			if !strings.HasPrefix(msg, "Scan to sign in") {
				banner.WriteString(msg)
			}
			return nil
		},
	}
	c, err := gossh.Dial("tcp", d.Addr, cfg)
	if err == nil {
		return c, nil
	}
	said := strings.TrimSpace(strings.ReplaceAll(banner.String(), "\r", ""))
	var ne net.Error
	switch {
	case said != "":
		return nil, fmt.Errorf("%s: %w", strings.TrimPrefix(said, "Rampart: "), err)
	case !interactive && strings.Contains(err.Error(), "unable to authenticate"):
		return nil, ErrNotBound
	case errors.As(err, &ne), strings.Contains(err.Error(), "connect"):
		return nil, fmt.Errorf("cannot reach the bastion at %s (%s): %w", d.Addr, host, err)
	}
	return nil, err
}

// certAlgorithms are the host certificate algorithms: the front door's
// plain key is never trusted, only its certificate.
var certAlgorithms = []string{
	gossh.CertAlgoED25519v01, gossh.CertAlgoECDSA256v01, gossh.CertAlgoECDSA384v01, gossh.CertAlgoECDSA521v01,
	gossh.CertAlgoRSASHA512v01, gossh.CertAlgoRSASHA256v01,
}

// checkHost accepts a host certificate for the dialled name signed by the
// node host CA.
func (d Dialer) checkHost(addr string, remote net.Addr, key gossh.PublicKey) error {
	cc := &gossh.CertChecker{IsHostAuthority: func(auth gossh.PublicKey, _ string) bool {
		return slices.ContainsFunc(d.NodeHostCAs, func(k gossh.PublicKey) bool { return bytes.Equal(k.Marshal(), auth.Marshal()) })
	}}
	return cc.CheckHostKey(addr, remote, key)
}

// Whoami runs `whoami --json` on a signed-in connection.
func Whoami(c *gossh.Client) (*api.Whoami, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open a session on the bastion: %w", err)
	}
	defer sess.Close()
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	out, err := sess.Output("whoami --json")
	if err != nil {
		return nil, fmt.Errorf("whoami on the bastion: %s: %w", strings.TrimSpace(stderr.String()), err)
	}
	var w api.Whoami
	if err := json.Unmarshal(out, &w); err != nil {
		return nil, fmt.Errorf("whoami on the bastion: %w", err)
	}
	return &w, nil
}

// ParseKeys parses authorized_keys lines (CA keys).
func ParseKeys(lines []string) ([]gossh.PublicKey, error) {
	var out []gossh.PublicKey
	for _, l := range lines {
		k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			return nil, fmt.Errorf("CA key %q: %w", l, err)
		}
		out = append(out, k)
	}
	return out, nil
}
