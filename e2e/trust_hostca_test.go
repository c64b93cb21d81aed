package e2e

// Trust boundaries of the host CAs (docs/security.md): the node host CA
// certifies the nodes' front doors and nothing else; the target host CA
// certifies targets, never under a node's name or address, and only under
// names the project's rules allow. The dev node has the extra name
// bastion.example.test; a stand-in SSH server presenting an enrolled
// target's host certificate listens on an address of its own.

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

const trustCABastionName = "bastion.example.test"

// serveHostSigner runs an SSH server on ip that presents signer as its host
// key and lets nobody in; it returns its port.
func serveHostSigner(t testing.TB, ip string, signer gossh.Signer) string {
	t.Helper()
	cfg := &gossh.ServerConfig{PublicKeyCallback: func(gossh.ConnMetadata, gossh.PublicKey) (*gossh.Permissions, error) {
		return nil, errors.New("nobody")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	fatalIf(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if conn, _, _, err := gossh.NewServerConn(c, cfg); err == nil {
					conn.Close()
				}
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// sshHostCheck connects with OpenSSH to ip:port as alias (as ip when alias
// is empty), trusting only the
// known_hosts text kh, and returns ssh's stderr; the host was accepted when
// it got as far as asking for authentication.
func sshHostCheck(t testing.TB, kh, ip, port, alias string) (accepted bool, stderr string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "known_hosts")
	fatalIf(t, os.WriteFile(path, []byte(kh), 0o600))
	args := []string{"ssh", "-F", "/dev/null", "-o", "UserKnownHostsFile=" + path, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes",
		"-o", "IdentityFile=/dev/null", "-o", "ConnectTimeout=10", "-p", port}
	if alias != "" {
		args = append(args, "-o", "HostKeyAlias="+alias)
	}
	r := runSSH(t, append(args, "probe@"+ip, "true"))
	switch {
	case strings.Contains(r.stderr, "Host key verification failed"):
		return false, r.stderr
	case strings.Contains(r.stderr, "Permission denied"):
		return true, r.stderr
	}
	t.Fatalf("ssh to %s:%s as %s: exit %d, neither accepted nor refused the host:\n%s", ip, port, alias, r.code, r.stderr)
	return false, ""
}

func TestHostCAVouchesOnlyForNodes(t *testing.T) {
	e, _ := setupEnrollNode(t, "trust-hostca", "ssh:\n  host_names: ["+trustCABastionName+"]\n")
	nodeIP, targetIP := e.node.IP, newIP(t, "web-9")
	token := strings.TrimSpace(e.admin(t, "tokens", "create", "web", "--uses", "10", "--quiet").stdout)
	agentPub, hostKey := impostorKeys(t)

	// Whatever it claims to be, nothing enrolls under a node's name or
	// address: the target host CA would certify it.
	t.Run("fail/node-names", func(t *testing.T) {
		for _, req := range []api.EnrollRequest{
			{Name: trustCABastionName, Addr: targetIP},
			{Name: "web-7", AltNames: []string{nodeIP}, Addr: targetIP},
			{Name: "web-8", Addr: nodeIP},
		} {
			req.MachineID, req.SSHPort, req.HostKeys, req.PublicKey = randomHex(t), 22, []string{hostKey}, agentPub
			_, err := enrollDirect(token, req)
			// A node's address is refused by the target address rule
			// (400, before the token is looked at), its names by the
			// node-name check (403).
			nodeName := err != nil && strings.Contains(err.Error(), "HTTP 403") && strings.Contains(err.Error(), "node of this cluster")
			nodeAddr := err != nil && req.Addr == nodeIP && strings.Contains(err.Error(), "HTTP 400") && strings.Contains(err.Error(), "this bastion itself")
			if !nodeName && !nodeAddr {
				t.Fatalf("enroll %s %v at %s: %v; want a refusal naming the node", req.Name, req.AltNames, req.Addr, err)
			}
			t.Logf("refused: %v", err)
		}
		var n int
		for _, ev := range auditOf(t, e, "enrollment.refuse") {
			if r := ev.Fields["reason"]; r == "node name" || r == "address not allowed" {
				n++
			}
		}
		if n != 3 {
			t.Errorf("%d server.enroll_refused events for a node's name or address, want 3", n)
		}
	})

	// The project's name rules: only web-* enrolls into web.
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(t, err)
	hostSigner, err := gossh.NewSignerFromKey(hostPriv)
	fatalIf(t, err)
	var targetCert *gossh.Certificate
	t.Run("name-rules", func(t *testing.T) {
		e.setProject(t, api.ProjectSettings{ServerNames: []string{"web-*"}})
		_, err := enrollDirect(token, api.EnrollRequest{Name: "mail-1", Addr: targetIP, MachineID: randomHex(t), SSHPort: 22,
			HostKeys: []string{hostKey}, PublicKey: agentPub})
		if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "server name rules") {
			t.Fatalf("enroll mail-1 into web (rules web-*): %v; want HTTP 403, name rules", err)
		}
		t.Logf("fail/outside-rules: %v", err)
		resp, err := enrollDirect(token, api.EnrollRequest{Name: "web-9", Addr: targetIP, MachineID: randomHex(t), SSHPort: 22,
			HostKeys: []string{authorizedLine(hostSigner.PublicKey())}, PublicKey: agentPub})
		fatalIf(t, err, "ok/within-rules: enroll web-9")
		pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(resp.HostCerts[0]))
		fatalIf(t, err, "web-9's host certificate")
		targetCert = pk.(*gossh.Certificate)
	})
	if targetCert == nil {
		t.Fatal("no target certificate to test with")
	}
	certSigner, err := gossh.NewCertSigner(targetCert, hostSigner)
	fatalIf(t, err)
	port := serveHostSigner(t, targetIP, certSigner)

	nodeCA, targetCA := nodeHostCAKeys(t, e.api()), hostCAKeys(t, e.api())
	if len(nodeCA.Keys) != 1 || len(targetCA.Keys) != 1 || nodeCA.Keys[0] == targetCA.Keys[0] {
		t.Fatalf("node host CA %v, target host CA %v: want one key each, not the same", nodeCA.Keys, targetCA.Keys)
	}
	onlyNodeCA := "@cert-authority * " + nodeCA.Keys[0] + "\n"
	onlyTargetCA := "@cert-authority * " + targetCA.Keys[0] + "\n"
	// The lines an operator puts in known_hosts.
	knownHosts := e.admin(t, "ca", "known-hosts").stdout
	t.Logf("ca known-hosts:\n%s", knownHosts)

	for _, tc := range []struct {
		name, kh, ip, port, alias string
		want                      bool
	}{
		// A target's certificate never passes for anything under the node
		// host CA, whatever name it is reached by.
		{"fail/target-cert-under-node-ca", onlyNodeCA, targetIP, port, "web-9", false},
		{"fail/target-cert-as-bastion-under-node-ca", onlyNodeCA, targetIP, port, trustCABastionName, false},
		{"ok/target-cert-under-target-ca", onlyTargetCA, targetIP, port, "web-9", true},
		// The front door's certificate is the node host CA's only.
		{"ok/bastion-under-node-ca", onlyNodeCA, nodeIP, portSSH, trustCABastionName, true},
		{"fail/bastion-under-target-ca", onlyTargetCA, nodeIP, portSSH, trustCABastionName, false},
		// With the lines of ca known-hosts: the bastion by its name and
		// address, the target by its name, and never the target as the
		// bastion.
		{"ok/known-hosts-bastion-name", knownHosts, nodeIP, portSSH, trustCABastionName, true},
		{"ok/known-hosts-bastion-ip", knownHosts, nodeIP, portSSH, "", true},
		{"ok/known-hosts-target", knownHosts, targetIP, port, "web-9", true},
		{"fail/known-hosts-target-as-bastion", knownHosts, targetIP, port, trustCABastionName, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accepted, stderr := sshHostCheck(t, tc.kh, tc.ip, tc.port, tc.alias)
			if accepted != tc.want {
				t.Fatalf("ssh to %s:%s as %s accepted=%v, want %v; known_hosts:\n%s\nstderr:\n%s", tc.ip, tc.port, tc.alias, accepted, tc.want, tc.kh, stderr)
			}
		})
	}
}
