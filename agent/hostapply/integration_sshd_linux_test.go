package hostapply

// sshd inside the integration test's namespace: started on a free port of
// 127.0.0.1 with the test's CA, and logins through it with certificates.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// nsSSHD is an sshd running in the namespace on 127.0.0.1.
type nsSSHD struct {
	cmd  *exec.Cmd
	port int
	log  string
	done chan struct{}
}

// startSSHD (re)starts sshd with the namespace's config and UsePAM as
// given, and waits until it listens.
func (fx *nsFixture) startSSHD(t *testing.T, usePAM bool) {
	t.Helper()
	if fx.sshd != nil {
		fx.sshd.stop()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	logPath := filepath.Join(fx.dir, fmt.Sprintf("sshd-%d.log", port))
	logFile, err := os.Create(logPath)
	must(t, err)
	defer logFile.Close()
	pam := map[bool]string{true: "yes", false: "no"}[usePAM]
	// -o settings come first, so they win over the files.
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config",
		"-o", fmt.Sprintf("ListenAddress=127.0.0.1:%d", port), "-o", "UsePAM="+pam,
		"-o", "PidFile=/run/sshd.pid", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
		"-o", "LogLevel=VERBOSE")
	cmd.Env = nsEnv
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	s := &nsSSHD{cmd: cmd, port: port, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	fx.sshd = s
	want := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", port)
	waitFor(t, func() error {
		b, _ := os.ReadFile(logPath)
		if bytes.Contains(b, []byte(want)) {
			return nil
		}
		select {
		case <-s.done:
			t.Fatalf("sshd exited:\n%s", b)
		default:
		}
		return fmt.Errorf("sshd is not listening yet:\n%s", b)
	})
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("sshd log (UsePAM %s):\n%s", pam, b)
		}
	})
}

func (s *nsSSHD) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// dial logs in as login with a certificate from the user CA for principal,
// checking the host certificate against the host CA.
func (fx *nsFixture) dial(login, principal string) (*ssh.Client, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cert := &ssh.Certificate{
		Key: key.PublicKey(), CertType: ssh.UserCert, KeyId: "hostapply-test", ValidPrincipals: []string{principal},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(10 * time.Minute).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := cert.SignCert(rand.Reader, fx.userCA); err != nil {
		return nil, err
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, err
	}
	return fx.dialWith(login, signer)
}

// dialWith logs in as login with signer (a certificate or a plain key).
func (fx *nsFixture) dialWith(login string, signer ssh.Signer) (*ssh.Client, error) {
	if fx.sshd == nil {
		return nil, errors.New("no sshd")
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return bytes.Equal(auth.Marshal(), fx.hostCA.PublicKey().Marshal())
	}}
	cfg := &ssh.ClientConfig{
		User: login, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: checker.CheckHostKey, HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
		Timeout: 10 * time.Second,
	}
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", fx.sshd.port), 10*time.Second)
	if err != nil {
		return nil, err
	}
	// The host certificate names "target"; CheckHostKey checks the host
	// part of this address.
	c, chans, reqs, err := ssh.NewClientConn(conn, "target:22", cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// runID runs id -un on c and closes it.
func runID(c *ssh.Client) (string, error) {
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.Output("id -un")
	return string(out), err
}

// login runs id -un as user with a certificate for user.
func (fx *nsFixture) login(user string) (string, error) { return fx.loginAs(user, user) }

func (fx *nsFixture) loginAs(login, principal string) (string, error) {
	c, err := fx.dial(login, principal)
	if err != nil {
		return "", err
	}
	return runID(c)
}

// loginKey runs id -un as user with a plain key.
func (fx *nsFixture) loginKey(user string, key ssh.Signer) (string, error) {
	c, err := fx.dialWith(user, key)
	if err != nil {
		return "", err
	}
	return runID(c)
}
