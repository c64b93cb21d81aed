package e2e

// Shared steps: what most tests do before the part they are about, each
// written once. A person gets a key and an ssh_config that trusts the
// cluster's host CAs (writeKnownHosts, writeSSHConfig), and binds the key
// through the dev IdP's device flow in a terminal (bindKey); a project is
// created and granted through the API (createProject, grant, userCA); a target
// trusting a project's user CA is started and registered (startTarget). The
// environments of the jump, policy and agent tests (jumpEnv, policyEnv) are
// built from them; agent_harness_test.go has the steps of a target run by
// its agent.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/gateway/devidp"
)

// hostCALines is known_hosts text trusting the cluster's node host CA (the
// bastion's front door) and its target host CA (targets and the jump's
// per-target servers), each for any name: what tests that are not about the
// split between the two keep. `ca known-hosts` prints the lines an operator
// uses, each CA for its own names (TestHostCAVouchesOnlyForNodes).
func hostCALines(t testing.TB, c *client.Client) string {
	t.Helper()
	var b strings.Builder
	for _, ca := range []struct {
		name string
		keys func(testing.TB, *client.Client) api.CAKeys
	}{{"/v1/ca/node-host", nodeHostCAKeys}, {"/v1/ca/host", hostCAKeys}} {
		k := ca.keys(t, c)
		if len(k.Keys) != 1 {
			t.Fatalf("%s keys = %v, want one", ca.name, k.Keys)
		}
		fmt.Fprintf(&b, "@cert-authority * %s\n", k.Keys[0])
	}
	return b.String()
}

// writeKnownHosts writes dir/known_hosts with hostCALines and returns its
// path.
func writeKnownHosts(t testing.TB, c *client.Client, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "known_hosts")
	fatalIf(t, os.WriteFile(path, []byte(hostCALines(t, c)), 0o600))
	return path
}

// writeSSHConfig writes an ssh_config that reaches the bastion's hosts
// (addresses, space-separated) on its SSH port, offers key alone, and
// checks host keys against knownHosts only. extra lines ("BatchMode yes")
// go in its Host * block.
func writeSSHConfig(t testing.TB, path, hosts, key, knownHosts string, extra ...string) {
	t.Helper()
	var more strings.Builder
	for _, l := range extra {
		more.WriteString("  " + l + "\n")
	}
	// ssh_config keeps the first value it reads: the node's block first.
	fatalIf(t, os.WriteFile(path, []byte(fmt.Sprintf(`Host %s
  Port %s
Host *
  IdentityFile %s
  IdentitiesOnly yes
  IdentityAgent none
%s  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  ConnectTimeout 10
`, hosts, portSSH, key, more.String(), knownHosts)), 0o600))
}

// newPersonKey makes the directory dir with a new key for name and an
// ssh_config (writeSSHConfig) offering it, and returns their paths.
func newPersonKey(t testing.TB, dir, name, hosts, knownHosts string, extra ...string) (key, config string) {
	t.Helper()
	fatalIf(t, os.Mkdir(dir, 0o700))
	key = newSSHKey(t, dir, name)
	config = filepath.Join(dir, "ssh_config")
	writeSSHConfig(t, config, hosts, key, knownHosts, extra...)
	return key, config
}

// bindKey is a key's first sign-in: `ssh -F config name@node` in a terminal
// (its socket in dir), the device flow's link approved in node's dev IdP as
// the user name with password name, and ssh exiting 0.
func bindKey(t *testing.T, dir, config, name string, node *DevNode) {
	t.Helper()
	term := startTerminal(t, dir, []string{"ssh", "-F", config, name + "@" + node.IP})
	prompt := waitDevicePrompt(t, term, node)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, devidp.NewBrowser().Approve(ctx, prompt.URL, name, name), "approve "+name+" on "+node.ID)
	if screen, code := waitExit(t, term); code != 0 {
		t.Fatalf("first sign-in of %s on %s (%s) exited %d:\n%s", name, node.ID, node.IP, code, screen)
	}
}

// createProject creates or replaces project name ("NAME servers") with
// settings s.
func createProject(t testing.TB, c *client.Client, name string, s api.ProjectSettings) {
	t.Helper()
	writeProject(t, c, name, api.Project{Description: name + " servers", Settings: s})
}

// grant grants project to group, with no sudo entitlements.
func grant(t testing.TB, c *client.Client, project, group string) {
	t.Helper()
	must(t, "PUT grant "+project+"/"+group, func(ctx context.Context) error {
		return c.PutGrant(ctx, project, group, &api.Grant{})
	})
}

// jumpEnv is a dev node, alice's key bound to her, and (once started) the
// target web-1 of project web.
type jumpEnv struct {
	node   *DevNode
	dir    string
	key    string
	config string // ssh_config: key, known_hosts with the host CAs only
	target *Target
}

func (e *jumpEnv) api() *client.Client { return e.node.API() }

// ssh runs OpenSSH through the bastion: ssh -F config -J alice@node host cmd.
func (e *jumpEnv) ssh(t testing.TB, extra []string, dest string, command ...string) sshResult {
	t.Helper()
	args := []string{"ssh", "-F", e.config, "-J", "alice@" + net.JoinHostPort(e.node.IP, portSSH)}
	args = append(append(args, extra...), dest)
	return runSSH(t, append(args, command...))
}

// setProject replaces project web's settings. The proxy reads them when a
// connection is authorized, so they apply to the next ssh.
func (e *jumpEnv) setProject(t testing.TB, s api.ProjectSettings) {
	t.Helper()
	createProject(t, e.api(), "web", s)
}

// userCA is project's user CA, which must have one key.
func (e *jumpEnv) userCA(t testing.TB, project string) api.CAKeys {
	t.Helper()
	keys := userCAKeys(t, e.api(), project)
	if len(keys.Keys) != 1 {
		t.Fatalf("user CA keys of %s = %v, want one", project, keys.Keys)
	}
	return keys
}

// startTarget starts a target trusting caKeys, with an account for alice,
// and registers it (pinning its real host key unless pin is given).
func (e *jumpEnv) startTarget(t *testing.T, name, ip, project string, caKeys api.CAKeys, usePAM bool, pin gossh.PublicKey) *Target {
	t.Helper()
	tg := NewTarget(t, TargetConfig{Name: name, IP: ip, UsePAM: usePAM, HostKeyTypes: []string{"ed25519"}})
	var keys []gossh.PublicKey
	for _, k := range caKeys.Keys {
		keys = append(keys, parseAuthorizedKey(t, k))
	}
	fatalIf(t, tg.TrustCA(keys...), "trust the user CA")
	fatalIf(t, tg.AddUser("alice"), "add alice")
	fatalIf(t, tg.Start(), "start "+name)
	if pin == nil {
		pin = tg.HostKey()
	}
	putServer(t, e.api(), name, api.Server{Project: project, Name: name, Addr: ip,
		HostKeys: []string{authorizedLine(pin)}})
	return tg
}

// policyEnv is a jumpEnv plus the known_hosts file (the host CAs only) that
// every person's config uses.
type policyEnv struct {
	*jumpEnv
	knownHosts string
}

// trustingEnv is a policyEnv on node whose known_hosts trusts the node's
// host CAs, with nobody signed in yet.
func trustingEnv(t *testing.T, node *DevNode) *policyEnv {
	t.Helper()
	e := &policyEnv{jumpEnv: &jumpEnv{node: node, dir: t.TempDir()}}
	e.knownHosts = writeKnownHosts(t, e.api(), e.dir)
	return e
}

// signedInEnv is trustingEnv with alice signed in (an administrator).
func signedInEnv(t *testing.T, node *DevNode) *policyEnv {
	t.Helper()
	e := trustingEnv(t, node)
	e.key, e.config = e.signIn(t, "alice")
	return e
}

// grantedEnv is signedInEnv with project web (default settings) granted to
// engineering.
func grantedEnv(t *testing.T, node *DevNode) *policyEnv {
	t.Helper()
	e := signedInEnv(t, node)
	e.setProject(t, api.ProjectSettings{})
	grant(t, e.api(), "web", "engineering")
	return e
}

// signIn makes a key for a dev IdP user (password = name), writes an
// ssh_config offering only it, and binds it through the browser once.
func (e *policyEnv) signIn(t *testing.T, name string) (key, config string) {
	t.Helper()
	return e.signInAs(t, name, name)
}

// signInAs is signIn as the dev user name with a key of its own kept in
// e.dir/dirName (a second key of the same person).
func (e *policyEnv) signInAs(t *testing.T, dirName, name string, extra ...string) (key, config string) {
	t.Helper()
	dir := filepath.Join(e.dir, dirName)
	key, config = newPersonKey(t, dir, name, e.node.IP, e.knownHosts, extra...)
	bindKey(t, dir, config, name, e.node)
	return key, config
}

// admin runs one admin shell command as alice (a member of rampart-admins).
func (e *policyEnv) admin(t testing.TB, args ...string) sshResult {
	t.Helper()
	r := runSSH(t, append([]string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "admin@" + e.node.IP}, args...))
	if r.code != 0 {
		t.Fatalf("admin %s: exit %d; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func parseAuthorizedKey(t testing.TB, line string) gossh.PublicKey {
	t.Helper()
	k, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
	fatalIf(t, err, "parse key "+line)
	return k
}

// bindKeyInProcess is bindKey with x/crypto's client in place of OpenSSH,
// for many sign-ins at once: the sign-in link arrives as the
// keyboard-interactive instruction, and the dev IdP's pages are driven as a
// browser would (user name, password name). The node's host certificate
// must be signed by one of hostCAs.
func bindKeyInProcess(node *Node, name string, signer gossh.Signer, hostCAs []gossh.PublicKey) error {
	approve := func(_, instruction string, questions []string, _ []bool) ([]string, error) {
		m := reDeviceURL.FindString(instruction)
		if m == "" {
			return nil, fmt.Errorf("no sign-in link in %q", instruction)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		return make([]string, len(questions)), devidp.NewBrowser().Approve(ctx, m, name, name)
	}
	c, err := gossh.Dial("tcp", node.SSHAddr(), &gossh.ClientConfig{
		User: name, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer), gossh.KeyboardInteractive(approve)},
		HostKeyCallback: hostCAChecker(hostCAs), HostKeyAlgorithms: []string{gossh.CertAlgoED25519v01}, Timeout: waitLong,
	})
	if err != nil {
		return fmt.Errorf("sign in %s: %w", name, err)
	}
	return c.Close()
}

// hostCAChecker accepts a host certificate signed by one of cas.
func hostCAChecker(cas []gossh.PublicKey) gossh.HostKeyCallback {
	cc := &gossh.CertChecker{IsHostAuthority: func(auth gossh.PublicKey, _ string) bool {
		return slices.ContainsFunc(cas, func(k gossh.PublicKey) bool { return bytes.Equal(k.Marshal(), auth.Marshal()) })
	}}
	return cc.CheckHostKey
}
