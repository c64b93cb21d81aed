package e2e

// Target servers with the real OpenSSH client: certificate logins to Debian's
// sshd in a private mount namespace (see target_harness_test.go), under both
// UsePAM settings; the logins sshd must refuse; and this machine's own /etc
// left as it was.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	binaryenc "encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func TestTargetCertificateLogin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		usePAM bool
	}{
		{"ok/usepam-yes", true},
		{"ok/usepam-no", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newCertAuthority(t)
			tg := startCertTarget(t, newIP(t, "target"), tc.usePAM, ca)
			fatalIf(t, tg.AddUser("alice"), "add alice")

			dir := t.TempDir()
			key := newClientKey(t, dir, "alice")
			cert := ca.signUser(t, key, userCertSpec{
				keyID: "rampart-e2e user=alice@example.com", principals: []string{"alice"},
				sourceAddress: "127.0.0.1/32",
			})
			certPath := key.writeCert(t, cert)

			start := time.Now()
			res := runSSH(t, targetSSH(tg, key.path, certPath, ca.knownHosts(t, dir, tg), "127.0.0.1", "alice", "id", "-un"))
			if res.code != 0 || strings.TrimSpace(res.stdout) != "alice" {
				t.Fatalf("ssh alice@%s id -un: exit %d, stdout %q, want 0 and \"alice\"; stderr:\n%s", tg.IP(), res.code, res.stdout, res.stderr)
			}
			t.Logf("certificate login and id -un in %s", time.Since(start).Round(time.Millisecond))

			// sshd names the certificate's key ID and serial: what the agent
			// will report to the cluster.
			line, err := tg.WaitLog(waitLong, regexp.MustCompile(`Accepted publickey for alice from 127\.0\.0\.1 port \d+ ssh2: ED25519-CERT .* ID `+
				regexp.QuoteMeta(cert.KeyId)+fmt.Sprintf(` \(serial %d\) CA ED25519 `, cert.Serial)+regexp.QuoteMeta(gossh.FingerprintSHA256(ca.user.PublicKey()))))
			fatalIf(t, err, "the login in the target's log")
			t.Logf("target log: %s", line)
		})
	}
}

func TestTargetCertificateRefusals(t *testing.T) {
	for _, pam := range []struct {
		name   string
		usePAM bool
	}{
		{"usepam-yes", true},
		{"usepam-no", false},
	} {
		t.Run(pam.name, func(t *testing.T) {
			ca := newCertAuthority(t)
			tg := startCertTarget(t, newIP(t, "target"), pam.usePAM, ca)
			fatalIf(t, tg.AddUser("alice"), "add alice")
			fatalIf(t, tg.AddUser("bob"), "add bob")
			other := newCertAuthority(t) // a CA the target does not trust
			dir := t.TempDir()
			knownHosts := ca.knownHosts(t, dir, tg)
			now := time.Now()

			for _, tc := range []struct {
				name string
				// signer signs the certificate; the user CA if nil.
				signer gossh.Signer
				spec   userCertSpec
				// bind is the client's source address.
				bind string
				// wantLog is what sshd logs about the attempt; for "ok/" cases,
				// the login must succeed instead.
				wantLog string
			}{
				{
					name: "ok/alice-from-permitted-address",
					spec: userCertSpec{principals: []string{"alice"}, sourceAddress: "127.0.0.1/32"},
					bind: "127.0.0.1",
				},
				{
					name:    "fail/other-source-address",
					spec:    userCertSpec{principals: []string{"alice"}, sourceAddress: "127.0.0.1/32"},
					bind:    "127.0.0.2",
					wantLog: `^cert: Authentication tried for alice with valid certificate but not from a permitted source address \(127\.0\.0\.2\)\.$`,
				},
				{
					name: "fail/expired",
					spec: userCertSpec{principals: []string{"alice"}, sourceAddress: "127.0.0.1/32",
						validAfter: now.Add(-2 * time.Hour), validBefore: now.Add(-time.Hour)},
					bind:    "127.0.0.1",
					wantLog: `^Certificate invalid: expired$`,
				},
				{
					name:    "fail/bob-as-alice",
					spec:    userCertSpec{principals: []string{"bob"}, sourceAddress: "127.0.0.1/32"},
					bind:    "127.0.0.1",
					wantLog: `^Certificate does not contain an authorized principal$`,
				},
				{
					name:   "fail/untrusted-ca",
					signer: other.user,
					spec:   userCertSpec{principals: []string{"alice"}, sourceAddress: "127.0.0.1/32"},
					bind:   "127.0.0.1",
					// At LogLevel VERBOSE sshd says only that the key failed,
					// naming the CA that signed it.
					wantLog: `Failed publickey for alice from 127\.0\.0\.1 port \d+ ssh2: ED25519-CERT .* ID rampart-e2e case=fail/untrusted-ca \(serial \d+\) CA ED25519 ` +
						regexp.QuoteMeta(gossh.FingerprintSHA256(other.user.PublicKey())) + `$`,
				},
			} {
				t.Run(tc.name, func(t *testing.T) {
					key := newClientKey(t, dir, strings.ReplaceAll(tc.name, "/", "-"))
					signer := tc.signer
					if signer == nil {
						signer = ca.user
					}
					tc.spec.keyID = "rampart-e2e case=" + tc.name
					cert := signCert(t, signer, key.signer.PublicKey(), gossh.UserCert, tc.spec)
					certPath := key.writeCert(t, cert)
					offset := tg.LogOffset()
					res := runSSH(t, targetSSH(tg, key.path, certPath, knownHosts, tc.bind, "alice", "id", "-un"))
					if strings.HasPrefix(tc.name, "ok/") {
						if res.code != 0 || strings.TrimSpace(res.stdout) != "alice" {
							t.Fatalf("exit %d, stdout %q, want 0 and \"alice\"; stderr:\n%s", res.code, res.stdout, res.stderr)
						}
						return
					}
					if res.code != 255 || !strings.Contains(res.stderr, "Permission denied") || res.stdout != "" {
						t.Fatalf("exit %d, want 255 and \"Permission denied\"; stdout %q; stderr:\n%s", res.code, res.stdout, res.stderr)
					}
					// The refusal has the expected reason, not some breakage
					// of the target's set-up.
					line, err := tg.WaitLogFrom(offset, waitLong, regexp.MustCompile(tc.wantLog))
					fatalIf(t, err, "the refusal's reason in the target's log")
					t.Logf("target log: %s", line)
				})
			}
		})
	}
}

// TestTargetHostEtcUntouched creates accounts, sudo rules and sshd changes
// inside a target, logs in, and checks that this machine saw none of it.
func TestTargetHostEtcUntouched(t *testing.T) {
	files := []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"}
	before := hashHostFiles(t, files, "/etc/ssh")
	const user = "rampart-e2e-carol"
	if _, err := exec.Command("getent", "passwd", user).Output(); err == nil {
		t.Fatalf("this machine already has an account %s", user)
	}

	ca := newCertAuthority(t)
	tg := startCertTarget(t, newIP(t, "target"), true, ca)
	ctx := context.Background()
	fatalIf(t, tg.AddUser(user), "add "+user)
	out, err := tg.Exec(ctx, "id", "-un", user)
	fatalIf(t, err)
	if strings.TrimSpace(out) != user {
		t.Fatalf("id -un %s inside the target: %q", user, out)
	}
	shadow, err := tg.Exec(ctx, "getent", "shadow", user)
	fatalIf(t, err)
	if f := strings.Split(strings.TrimSpace(shadow), ":"); len(f) < 2 || f[1] != "*" {
		t.Fatalf("the password field of %s is not '*': %q", user, shadow)
	}
	_, err = tg.Exec(ctx, "groupadd", "rampart-e2e-ops")
	fatalIf(t, err)
	_, err = tg.Exec(ctx, "gpasswd", "-a", user, "rampart-e2e-ops")
	fatalIf(t, err)
	// A sudo rule written the way the agent will: checked by visudo -cf
	// first, then the whole sudoers checked; a broken rule is refused.
	rule := tg.Path("/etc/sudoers.d/rampart-e2e")
	fatalIf(t, os.WriteFile(rule, []byte(user+" ALL=(root) NOPASSWD: /usr/bin/id\n"), 0o440))
	_, err = tg.Exec(ctx, "visudo", "-cf", "/etc/sudoers.d/rampart-e2e")
	fatalIf(t, err)
	_, err = tg.Exec(ctx, "visudo", "-c")
	fatalIf(t, err)
	fatalIf(t, os.WriteFile(tg.Path("/etc/sudoers.d/rampart-e2e-broken"), []byte(user+" ALL=(root\n"), 0o440))
	if _, err := tg.Exec(ctx, "visudo", "-cf", "/etc/sudoers.d/rampart-e2e-broken"); err == nil {
		t.Fatalf("visudo -cf accepted a broken rule")
	}
	fatalIf(t, os.Remove(tg.Path("/etc/sudoers.d/rampart-e2e-broken")))
	sudo, err := tg.Exec(ctx, "sudo", "-l", "-U", user)
	fatalIf(t, err)
	if !strings.Contains(sudo, "NOPASSWD: /usr/bin/id") {
		t.Fatalf("sudo -l -U %s inside the target does not show the rule:\n%s", user, sudo)
	}
	// An sshd change: a drop-in, sshd -t, a reload.
	fatalIf(t, os.WriteFile(tg.Path("/etc/ssh/sshd_config.d/rampart-e2e.conf"), []byte("MaxAuthTries 4\n"), 0o644))
	fatalIf(t, tg.CheckConfig())
	fatalIf(t, tg.Reload(), "reload sshd")

	dir := t.TempDir()
	key := newClientKey(t, dir, user)
	cert := ca.signUser(t, key, userCertSpec{keyID: "rampart-e2e user=" + user, principals: []string{user}, sourceAddress: "127.0.0.1/32"})
	res := runSSH(t, targetSSH(tg, key.path, key.writeCert(t, cert), ca.knownHosts(t, dir, tg), "127.0.0.1", user,
		"id -Gn && sudo -n /usr/bin/id -un && touch ~/made-by-the-test"))
	if res.code != 0 || !strings.Contains(res.stdout, "rampart-e2e-ops") || !strings.Contains(res.stdout, "root") {
		t.Fatalf("ssh %s@%s: exit %d, stdout %q, want 0, the group and root from sudo; stderr:\n%s", user, tg.IP(), res.code, res.stdout, res.stderr)
	}
	if _, err := os.Stat(tg.Path("/home/" + user + "/made-by-the-test")); err != nil {
		t.Fatalf("the session's file is not in the target's /home: %v", err)
	}

	// Nothing of it outside: not while the target runs, not after.
	checkHostUntouched := func(when string) {
		t.Helper()
		after := hashHostFiles(t, files, "/etc/ssh")
		for _, p := range slices.Sorted(mapKeys(before, after)) {
			if before[p] != after[p] {
				t.Errorf("%s: this machine's %s changed (%s → %s)", when, p, short(before[p]), short(after[p]))
			}
		}
		if out, err := exec.Command("getent", "passwd", user).CombinedOutput(); err == nil {
			t.Errorf("%s: this machine knows %s: %s", when, user, out)
		}
		if err := exec.Command("id", user).Run(); err == nil {
			t.Errorf("%s: id %s succeeds on this machine", when, user)
		}
		for _, p := range []string{"/home/" + user, "/etc/sudoers.d/rampart-e2e", "/etc/ssh/sshd_config.d/rampart-e2e.conf", "/etc/rampart-e2e-target"} {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: %s exists on this machine (%v)", when, p, err)
			}
		}
	}
	checkHostUntouched("with the target running")
	fatalIf(t, tg.Kill(), "kill the target")
	checkHostUntouched("after the target")
	if _, err := tg.Exec(ctx, "true"); err == nil {
		t.Errorf("Exec ran a command after the target was killed")
	}
}

// certAuthority is a test's user CA and host CA.
type certAuthority struct {
	user, host gossh.Signer
}

func newCertAuthority(t testing.TB) *certAuthority {
	t.Helper()
	return &certAuthority{user: newEd25519Signer(t), host: newEd25519Signer(t)}
}

func newEd25519Signer(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(t, err)
	s, err := gossh.NewSignerFromKey(priv)
	fatalIf(t, err)
	return s
}

// startCertTarget starts a target that trusts ca's user CA and presents a
// host certificate from ca's host CA for its IP and name.
func startCertTarget(t testing.TB, ip string, usePAM bool, ca *certAuthority) *Target {
	t.Helper()
	tg := NewTarget(t, TargetConfig{Name: "web-" + strings.ReplaceAll(ip, ".", "-"), IP: ip, UsePAM: usePAM})
	hostCert := signCert(t, ca.host, tg.HostKey(), gossh.HostCert, userCertSpec{
		keyID: "rampart-e2e host " + tg.Name(), principals: []string{tg.IP(), tg.Name()},
	})
	fatalIf(t, tg.SetHostCertificate(gossh.MarshalAuthorizedKey(hostCert)), "host certificate")
	fatalIf(t, tg.TrustCA(ca.user.PublicKey()), "trust the user CA")
	fatalIf(t, tg.Start(), "start "+tg.Name())
	return tg
}

// knownHosts writes a known_hosts file holding only an @cert-authority line
// for ca's host CA and the target's IP.
func (ca *certAuthority) knownHosts(t testing.TB, dir string, tg *Target) string {
	t.Helper()
	path := filepath.Join(dir, "known_hosts-"+tg.IP())
	line := "@cert-authority " + tg.IP() + " " + string(gossh.MarshalAuthorizedKey(ca.host.PublicKey()))
	fatalIf(t, os.WriteFile(path, []byte(line), 0o600))
	return path
}

// userCertSpec is what a test certificate says. Zero times mean valid from a
// minute ago for an hour.
type userCertSpec struct {
	keyID                   string
	principals              []string
	sourceAddress           string
	validAfter, validBefore time.Time
}

func (ca *certAuthority) signUser(t testing.TB, key *clientKey, spec userCertSpec) *gossh.Certificate {
	t.Helper()
	return signCert(t, ca.user, key.signer.PublicKey(), gossh.UserCert, spec)
}

// signCert signs pub with signer.
func signCert(t testing.TB, signer gossh.Signer, pub gossh.PublicKey, certType uint32, spec userCertSpec) *gossh.Certificate {
	t.Helper()
	after, before := spec.validAfter, spec.validBefore
	if after.IsZero() {
		after = time.Now().Add(-time.Minute)
	}
	if before.IsZero() {
		before = time.Now().Add(time.Hour)
	}
	var serial [8]byte
	_, err := rand.Read(serial[:])
	fatalIf(t, err)
	cert := &gossh.Certificate{
		Key:             pub,
		Serial:          binaryenc.BigEndian.Uint64(serial[:]) | 1,
		CertType:        certType,
		KeyId:           spec.keyID,
		ValidPrincipals: spec.principals,
		ValidAfter:      uint64(after.Unix()),
		ValidBefore:     uint64(before.Unix()),
	}
	if certType == gossh.UserCert {
		cert.Permissions = gossh.Permissions{
			CriticalOptions: map[string]string{},
			Extensions:      map[string]string{"permit-pty": ""},
		}
		if spec.sourceAddress != "" {
			cert.CriticalOptions["source-address"] = spec.sourceAddress
		}
	}
	fatalIf(t, cert.SignCert(rand.Reader, signer), "sign certificate")
	return cert
}

// clientKey is an ed25519 key written as an OpenSSH private key file.
type clientKey struct {
	signer gossh.Signer
	path   string
}

func newClientKey(t testing.TB, dir, name string) *clientKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(t, err)
	block, err := gossh.MarshalPrivateKey(priv, name)
	fatalIf(t, err)
	path := filepath.Join(dir, name)
	fatalIf(t, os.WriteFile(path, pem.EncodeToMemory(block), 0o600))
	signer, err := gossh.NewSignerFromKey(priv)
	fatalIf(t, err)
	return &clientKey{signer: signer, path: path}
}

// writeCert writes cert beside the key, where ssh looks for it too, and
// returns its path.
func (k *clientKey) writeCert(t testing.TB, cert *gossh.Certificate) string {
	t.Helper()
	path := k.path + "-cert.pub"
	fatalIf(t, os.WriteFile(path, gossh.MarshalAuthorizedKey(cert), 0o644))
	return path
}

// targetSSH is an OpenSSH command line straight to a target: no ssh_config,
// only key and its certificate offered, the host verified through
// knownHosts alone, from the source address bind.
func targetSSH(tg *Target, key, cert, knownHosts, bind, user string, command ...string) []string {
	args := []string{"ssh", "-F", "/dev/null", "-p", fmt.Sprint(tg.Port()),
		"-i", key, "-o", "CertificateFile=" + cert,
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10", "-b", bind, user + "@" + tg.IP()}
	return append(args, command...)
}

// hashHostFiles hashes files and every file under dirs on this machine,
// keyed by path; a missing file hashes to "missing".
func hashHostFiles(t testing.TB, files []string, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	hash := func(p string) {
		b, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out[p] = "missing"
		case err != nil:
			t.Fatalf("read %s: %v", p, err)
		default:
			sum := sha256.Sum256(b)
			out[p] = hex.EncodeToString(sum[:])
		}
	}
	for _, f := range files {
		hash(f)
	}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch {
			case e.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				out[p] = "symlink " + target
			case e.IsDir():
				info, err := e.Info()
				if err != nil {
					return err
				}
				out[p] = "dir " + info.Mode().String()
			default:
				hash(p)
			}
			return nil
		})
		fatalIf(t, err, "walk "+d)
	}
	return out
}

func mapKeys(ms ...map[string]string) iter.Seq[string] {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

func short(h string) string {
	if h == "" {
		return "absent"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// TestTargetKillSparesOtherNamespaces: tearing a target down kills only its
// own processes, even while other mount namespaces are being made (another
// test run's targets, say) and the kernel hands the torn-down namespace's
// inode number to one of them.
func TestTargetKillSparesOtherNamespaces(t *testing.T) {
	tg := NewTarget(t, TargetConfig{Name: "kill-1", IP: newIP(t, "kill-1"), UsePAM: true})
	fatalIf(t, tg.Start(), "start the target")

	// Namespaces of "another run": made one after another while the target
	// is torn down, each held by a sleep of its own.
	stop := make(chan struct{})
	done := make(chan []*exec.Cmd)
	go func() {
		var others []*exec.Cmd
		defer func() { done <- others }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sleep", "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				t.Errorf("unshare: %v", err)
				return
			}
			others = append(others, cmd)
			if len(others) >= 400 {
				<-stop
				return
			}
		}
	}()
	fatalIf(t, tg.Kill(), "kill the target")
	close(stop)
	others := <-done
	var killed int
	for _, cmd := range others {
		if !processAlive(cmd.Process.Pid) {
			killed++
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	t.Logf("%d namespaces made during the teardown", len(others))
	if killed > 0 {
		t.Fatalf("tearing the target down killed %d of %d processes in other namespaces", killed, len(others))
	}
}
