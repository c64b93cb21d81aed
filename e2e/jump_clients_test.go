package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// The jump with SSH clients other than OpenSSH, each with its defaults
// against a node with its defaults: paramiko (Debian's, without AES-GCM),
// PuTTY's plink, node's ssh2 and x/crypto.

// paramikoJump is a ProxyJump done by hand: a direct-tcpip channel on the
// bastion connection, and a second transport over it. Both host keys are
// pinned; the ciphers picked go to stderr.
const paramikoJump = `
import sys, paramiko
bastion, port, keyfile, target, want_bastion, want_target, command = sys.argv[1:8]
key = paramiko.Ed25519Key.from_private_key_file(keyfile)

def pin(t, want):
    k = t.get_remote_server_key()
    if k.get_name() + " " + k.get_base64() != want:
        sys.exit("host key mismatch: got " + k.get_name() + " " + k.get_base64())

outer = paramiko.Transport((bastion, int(port)))
outer.start_client(timeout=30)
pin(outer, want_bastion)
outer.auth_publickey("alice", key)
ch = outer.open_channel("direct-tcpip", (target, 22), ("127.0.0.1", 0), timeout=30)
inner = paramiko.Transport(ch)
inner.start_client(timeout=30)
pin(inner, want_target)
inner.auth_none("alice")
s = inner.open_session()
s.exec_command(command)
out = s.makefile("rb").read()
code = s.recv_exit_status()
sys.stderr.write("ciphers: outer=%s inner=%s\n" % (outer.local_cipher, inner.local_cipher))
sys.stdout.write(out.decode())
inner.close()
outer.close()
sys.exit(code)
`

// ssh2Jump is the same jump with node's ssh2: forwardOut on the bastion
// connection, a second client over the stream, host keys pinned, the
// ciphers picked on stderr.
const ssh2Jump = `
const { Client } = require('ssh2');
const fs = require('fs');
const [bastion, port, keyfile, target, wantBastion, wantTarget, command] = process.argv.slice(2);
const pin = (want) => (key) => key.toString('base64') === want.split(' ')[1];
const ciphers = {};
const fail = (what) => (err) => { process.stderr.write(what + ': ' + err.message + '\n'); process.exit(2); };
const outer = new Client();
const inner = new Client();
outer.on('handshake', (n) => { ciphers.outer = n.cs.cipher; });
inner.on('handshake', (n) => { ciphers.inner = n.cs.cipher; });
outer.on('error', fail('bastion'));
inner.on('error', fail('target'));
inner.on('ready', () => inner.exec(command, (err, s) => {
  if (err) fail('exec')(err);
  let out = '';
  s.on('data', (d) => { out += d; });
  s.stderr.on('data', (d) => process.stderr.write(d));
  s.on('close', (code) => {
    process.stderr.write('ciphers: outer=' + ciphers.outer + ' inner=' + ciphers.inner + '\n');
    process.stdout.write(out);
    inner.end();
    outer.end();
    process.exitCode = code;
  });
}));
outer.on('ready', () => outer.forwardOut('127.0.0.1', 0, target, 22, (err, stream) => {
  if (err) fail('direct-tcpip')(err);
  inner.connect({ sock: stream, username: 'alice', hostVerifier: pin(wantTarget), authHandler: ['none'], readyTimeout: 30000 });
}));
outer.connect({ host: bastion, port: Number(port), username: 'alice', privateKey: fs.readFileSync(keyfile),
  hostVerifier: pin(wantBastion), readyTimeout: 30000 });
`

// ssh2Modules returns a node_modules directory holding node's ssh2:
// $RAMPART_NODE_MODULES, or one installed with npm (once) under the user's
// cache directory.
func ssh2Modules(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("RAMPART_NODE_MODULES"); dir != "" {
		return dir
	}
	cache, err := os.UserCacheDir()
	fatalIf(t, err)
	prefix := filepath.Join(cache, "rampart-e2e", "node-ssh2")
	modules := filepath.Join(prefix, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "ssh2", "package.json")); err == nil {
		return modules
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "npm", "install", "--prefix", prefix, "--no-save", "--no-audit", "--no-fund",
		"--omit=optional", "ssh2@1").CombinedOutput()
	fatalIf(t, err, "npm install ssh2 (node's ssh2 client is one of the clients the defaults must serve): "+string(out))
	return modules
}

func TestJumpOtherClients(t *testing.T) {
	e := setupJump(t, api.ProjectSettings{}, true)
	bastionAddr := net.JoinHostPort(e.node.IP, portSSH)

	keyPEM, err := os.ReadFile(e.node.HostKeyFile())
	fatalIf(t, err)
	nodeSigner, err := gossh.ParsePrivateKey(keyPEM)
	fatalIf(t, err)
	bastionKey := nodeSigner.PublicKey()
	aliceKeyPEM, err := os.ReadFile(e.key)
	fatalIf(t, err)
	alice, err := gossh.ParsePrivateKey(aliceKeyPEM)
	fatalIf(t, err)

	// x/crypto with its defaults, pinning the plain host keys (as clients
	// without certificate support do); its view of the inner server's key
	// is what the others pin.
	var innerKey gossh.PublicKey
	t.Run("ok/xcrypto", func(t *testing.T) {
		outer, err := gossh.Dial("tcp", bastionAddr, &gossh.ClientConfig{User: "alice", Auth: []gossh.AuthMethod{gossh.PublicKeys(alice)},
			HostKeyCallback: gossh.FixedHostKey(bastionKey), HostKeyAlgorithms: []string{gossh.KeyAlgoED25519}, Timeout: requestTimeout})
		fatalIf(t, err, "bastion")
		defer outer.Close()
		nc, err := outer.Dial("tcp", "web-1:22")
		fatalIf(t, err, "direct-tcpip")
		cc, chans, reqs, err := gossh.NewClientConn(nc, "web-1:22", &gossh.ClientConfig{User: "alice",
			HostKeyCallback:   func(_ string, _ net.Addr, k gossh.PublicKey) error { innerKey = k; return nil },
			HostKeyAlgorithms: []string{gossh.KeyAlgoED25519}})
		fatalIf(t, err, "inner")
		c := gossh.NewClient(cc, chans, reqs)
		defer c.Close()
		s, err := c.NewSession()
		fatalIf(t, err)
		out, err := s.Output("id -un")
		if err != nil || strings.TrimSpace(string(out)) != "alice" {
			t.Fatalf("id -un through the jump: %q, %v", out, err)
		}
	})
	if innerKey == nil {
		t.Fatal("no inner host key to pin")
	}
	authorized := func(k gossh.PublicKey) string { return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))) }

	t.Run("ok/paramiko", func(t *testing.T) {
		script := filepath.Join(e.dir, "jump.py")
		fatalIf(t, os.WriteFile(script, []byte(paramikoJump), 0o600))
		// Debian's python3 (with python3-paramiko), not one first on PATH.
		r := runSSH(t, []string{"/usr/bin/python3", script, e.node.IP, portSSH, e.key, "web-1",
			authorized(bastionKey), authorized(innerKey), "id -un"})
		if r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
			t.Fatalf("paramiko through the jump: exit %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "outer=aes128-ctr inner=aes128-ctr") {
			t.Errorf("paramiko's ciphers: %s", r.stderr)
		}
	})

	t.Run("ok/node-ssh2", func(t *testing.T) {
		script := filepath.Join(e.dir, "jump.js")
		fatalIf(t, os.WriteFile(script, []byte(ssh2Jump), 0o600))
		ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", script, e.node.IP, portSSH, e.key, "web-1",
			authorized(bastionKey), authorized(innerKey), "id -un")
		cmd.Env = append(clientEnv(), "NODE_PATH="+ssh2Modules(t))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil || strings.TrimSpace(stdout.String()) != "alice" {
			t.Fatalf("node ssh2 through the jump: %v, stdout %q; stderr:\n%s", err, stdout.String(), stderr.String())
		}
		if !strings.Contains(stderr.String(), "outer=aes128-gcm") || !strings.Contains(stderr.String(), "inner=aes128-gcm") {
			t.Errorf("ssh2's ciphers: %s", stderr.String())
		}
	})

	t.Run("ok/plink", func(t *testing.T) {
		// PuTTY keeps its settings and random seed under HOME.
		home := filepath.Join(e.dir, "putty-home")
		fatalIf(t, os.MkdirAll(home, 0o700))
		ppk := filepath.Join(e.dir, "alice.ppk")
		out, err := exec.Command("puttygen", e.key, "-O", "private", "-o", ppk).CombinedOutput()
		fatalIf(t, err, "puttygen: "+string(out))
		common := "-ssh -batch -noagent -i " + ppk
		proxy := "plink " + common + " -hostkey " + gossh.FingerprintSHA256(bastionKey) +
			" -P " + portSSH + " -nc web-1:22 alice@" + e.node.IP
		argv := []string{"plink", "-v", "-ssh", "-batch", "-noagent", "-i", ppk, "-hostkey", gossh.FingerprintSHA256(innerKey),
			"-proxycmd", proxy, "alice@web-1", "id -un"}
		ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(clientEnv(), "HOME="+home)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		var stdout, stderr syncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		if err != nil || strings.TrimSpace(stdout.String()) != "alice" {
			t.Fatalf("plink through the jump: %v, stdout %q; stderr:\n%s", err, stdout.String(), stderr.String())
		}
	})

	// OpenSSH is offered AES-GCM alone, on both legs, although it prefers
	// AES-CTR: the throughput of the default setup stays as it was.
	t.Run("ok/openssh-keeps-aes-gcm", func(t *testing.T) {
		r := e.ssh(t, []string{"-v"}, "alice@web-1", "true")
		if r.code != 0 {
			t.Fatalf("ssh -v: exit %d; stderr:\n%s", r.code, r.stderr)
		}
		if n := strings.Count(r.stderr, "cipher: aes128-gcm@openssh.com"); n < 2 || strings.Contains(r.stderr, "cipher: aes128-ctr") {
			t.Fatalf("OpenSSH's ciphers (want aes128-gcm on both legs):\n%s", grepLines(r.stderr, "cipher:"))
		}
	})
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
