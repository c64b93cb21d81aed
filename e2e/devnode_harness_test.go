package e2e

// The dev node harness: one rampartd started the way `make dev` starts it
// (--dev: self-bootstrapping, with the embedded dev IdP and its default users
// alice/alice and bob/bob), on an address of the run's block so that it never collides
// with the cluster tests or with a developer's own `make dev`.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// portDevIdP is the dev IdP's port on the node's IP.
const portDevIdP = "5556"

// DevNode is a node in dev mode and the dev IdP it runs.
type DevNode struct {
	*Node
	// IdPURL is the dev IdP's issuer, http://IP:5556.
	IdPURL string
	// ConfigPath is the node's configuration file, for restarts.
	ConfigPath string
}

// StartDevNode starts a dev node on ip (a loopback address) with the
// standard ports, and waits until its SSH front door answers and its dev IdP
// serves discovery. Only the addresses differ from `rampartd --dev`: the
// dev IdP's listener and issuer, and the issuer the node signs people in
// with, which the dev defaults tie to 127.0.0.1. The node is killed, and its
// log tails printed on failure, in t.Cleanup.
func StartDevNode(t testing.TB, name, ip string) *DevNode {
	t.Helper()
	return StartDevNodeWith(t, name, ip, "")
}

// StartDevNodeWith is StartDevNode with extra YAML appended to the node's
// config file.
func StartDevNodeWith(t testing.TB, name, ip, extraYAML string) *DevNode {
	t.Helper()
	return startDevNode(t, name, ip, extraYAML, nil)
}

// startDevNode is StartDevNodeWith, the node run under the command prefix
// returns for it (nil: none).
func startDevNode(t testing.TB, name, ip, extraYAML string, prefix func(*Node) []string) *DevNode {
	t.Helper()
	c := NewCluster(t, name, ip)
	idp, cfg := devIdPConfig(ip)
	// BaseArgs passes --oidc-issuer from here, which the config file's
	// oidc.issuer would otherwise carry.
	c.OIDCIssuer = idp
	cfgPath := filepath.Join(c.Dir, "rampartd.yaml")
	fatalIf(t, os.WriteFile(cfgPath, []byte(cfg+extraYAML), 0o600))

	n := c.Nodes[0]
	if prefix != nil {
		n.Prefix = prefix(n)
	}
	fatalIf(t, n.Start("--dev", "--config", cfgPath), "start dev node")
	fatalIf(t, c.loadBootstrapFiles(n), "dev node bootstrap")
	d := &DevNode{Node: n, IdPURL: idp, ConfigPath: cfgPath}
	fatalIf(t, d.waitSignInReady(waitLong), "dev node sign-in")
	return d
}

// devIdPConfig is the issuer of a dev IdP listening on ip, and the
// dev_idp block of a node's config file that puts it there; more settings
// of the block may follow, indented by two spaces.
func devIdPConfig(ip string) (issuer, yaml string) {
	addr := net.JoinHostPort(ip, portDevIdP)
	issuer = "http://" + addr
	return issuer, fmt.Sprintf("dev_idp:\n  listen: %q\n  issuer: %q\n", addr, issuer)
}

// waitSignInReady waits until the SSH front door sends its version line and
// the dev IdP answers discovery: the front door starts after bootstrap, so a
// healthy API does not mean ssh can connect yet.
func (d *DevNode) waitSignInReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: requestTimeout}
	defer hc.CloseIdleConnections()
	return waitFor(timeout, func() error {
		if !d.Running() {
			return stopWaiting(fmt.Errorf("%s exited: %s", d.ID, d.exitDescription()))
		}
		conn, err := net.DialTimeout("tcp", d.SSHAddr(), requestTimeout)
		if err != nil {
			return err
		}
		_ = conn.SetDeadline(time.Now().Add(requestTimeout))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil {
			return fmt.Errorf("SSH version line: %w", err)
		}
		if !strings.HasPrefix(line, "SSH-2.0-") {
			return fmt.Errorf("SSH version line %q", line)
		}
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.IdPURL+"/.well-known/openid-configuration", nil)
		if err != nil {
			return stopWaiting(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("dev IdP discovery: HTTP %d", resp.StatusCode)
		}
		return nil
	})
}

// HostKeyFile is the node's SSH host private key in its data dir.
func (d *DevNode) HostKeyFile() string { return filepath.Join(d.DataDir, "ssh_host_ed25519_key") }
