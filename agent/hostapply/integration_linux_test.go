package hostapply

// The integration test runs the real tools (useradd, usermod, gpasswd,
// userdel, visudo, sudo, sshd) against a copy of this machine's /etc, never
// the machine's own. TestHostIntegration, run normally, copies /etc into
// t.TempDir() (without the host keys), makes private /home, /var/log,
// /var/mail and /run beside it, and re-executes the test binary under
// `unshare --mount --propagation private` with those bind-mounted over the
// real ones. The re-executed test checks that it is in another mount
// namespace and that /etc and /home carry a random token only the copies
// hold before it changes anything. Afterwards the outer test asserts that
// this machine's account files, /etc/sudoers.d and /etc/ssh are
// byte-identical to before.
//
// The pid and network namespaces are shared: pkill by uid reaches this
// machine's processes, so the outer test first makes sure no process and no
// account here uses the test's uids; sshd listens on 127.0.0.1 at a free
// port.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	nsDirEnv   = "RAMPART_HOSTAPPLY_NS_DIR"
	nsOuterEnv = "RAMPART_HOSTAPPLY_OUTER_NS"
	nsTokenEnv = "RAMPART_HOSTAPPLY_TOKEN"
	// nsMarker is only in the copied /etc and /home.
	nsMarker = ".rampart-hostapply-test"
)

// nsPrivateDirs are bind-mounted from the tree over the real ones.
var nsPrivateDirs = []string{"/etc", "/home", "/var/log", "/var/mail", "/run"}

// The ids the test uses; none may exist on this machine.
var (
	testUIDs = []uint32{61001, 61002, 61003, 61005, 61006, 61007}
	testGIDs = []uint32{63001, 63002, 63005, 63006}
)

// hostGuarded are compared byte for byte before and after.
var hostGuarded = []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d", "/etc/ssh", "/home"}

func TestHostIntegration(t *testing.T) {
	if os.Getenv(nsDirEnv) != "" {
		runInNamespace(t)
		return
	}
	if testing.Short() {
		t.Skip("runs the real account tools in a mount namespace")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (unshare --mount, useradd)")
	}
	for _, tool := range []string{"unshare", "mount", "cp", "useradd", "usermod", "userdel", "groupadd", "gpasswd", "visudo", "sudo", "setpriv", "getent", "pkill", "ssh-keygen", "tar", "/usr/sbin/sshd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	checkTestIDsUnused(t)
	before := hashTree(t, hostGuarded)

	dir := t.TempDir()
	token := randomToken(t)
	makeNamespaceTree(t, dir, token)
	ownNS, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -eu\n")
	for _, d := range nsPrivateDirs {
		fmt.Fprintf(&script, "mount --bind %s %s\n", filepath.Join(dir, "tree", d), d)
	}
	script.WriteString(`exec "$0" "$@"` + "\n")
	args := []string{"--mount", "--propagation", "private", "--", "/bin/sh", "-c", script.String(), exe,
		"-test.run=^TestHostIntegration$", "-test.count=1", "-test.timeout=5m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(t.Context(), "unshare", args...)
	cmd.Env = append(os.Environ(), nsDirEnv+"="+dir, nsOuterEnv+"="+ownNS, nsTokenEnv+"="+token)
	// The namespace and everything in it die with this test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("inside the namespace:\n%s", out)
	if err != nil {
		t.Errorf("the test inside the namespace failed: %v", err)
	}
	if !bytes.Contains(out, []byte("\nPASS")) && !bytes.HasPrefix(out, []byte("PASS")) {
		t.Errorf("the test inside the namespace did not pass")
	}

	after := hashTree(t, hostGuarded)
	for _, p := range slices.Sorted(keysOf(before, after)) {
		if before[p] != after[p] {
			t.Errorf("this machine's %s changed: %q -> %q", p, before[p], after[p])
		}
	}
}

// checkTestIDsUnused skips unless no account, group or process here uses
// the test's ids (pkill and the login uid sweep see this machine's
// processes).
func checkTestIDsUnused(t *testing.T) {
	t.Helper()
	procs, err := procUIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range testUIDs {
		if procs[id] {
			t.Skipf("a process of this machine runs as uid %d", id)
		}
		if out, err := exec.Command("getent", "passwd", strconv.Itoa(int(id))).Output(); err == nil {
			t.Skipf("uid %d exists here: %s", id, out)
		}
	}
	for _, id := range append(slices.Clone(testGIDs), testUIDs...) {
		if out, err := exec.Command("getent", "group", strconv.Itoa(int(id))).Output(); err == nil {
			t.Skipf("gid %d exists here: %s", id, out)
		}
	}
}

func randomToken(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// makeNamespaceTree copies /etc to dir/tree/etc (minus host keys and sshd
// drop-ins) and makes the other private directories, as e2e's target
// harness does.
func makeNamespaceTree(t *testing.T, dir, token string) {
	t.Helper()
	tree := filepath.Join(dir, "tree")
	must(t, os.MkdirAll(tree, 0o755))
	if out, err := exec.Command("cp", "-a", "/etc", filepath.Join(tree, "etc")).CombinedOutput(); err != nil {
		t.Fatalf("cp -a /etc: %v: %s", err, out)
	}
	etc := filepath.Join(tree, "etc")
	keys, _ := filepath.Glob(filepath.Join(etc, "ssh", "ssh_host_*"))
	for _, k := range keys {
		must(t, os.Remove(k))
	}
	must(t, os.RemoveAll(filepath.Join(etc, "ssh", "sshd_config.d")))
	must(t, os.Mkdir(filepath.Join(etc, "ssh", "sshd_config.d"), 0o755))
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"home", 0o755}, {"var/log", 0o755}, {"var/mail", 0o2775}, {"run", 0o755}, {"run/sshd", 0o755}, {"run/lock", 0o1777}, {"run/sudo", 0o711}, {"run/user", 0o755}} {
		p := filepath.Join(tree, d.path)
		must(t, os.MkdirAll(p, 0o755))
		must(t, os.Chmod(p, d.mode))
	}
	for _, f := range []string{"lastlog", "wtmp", "btmp", "faillog"} {
		must(t, os.WriteFile(filepath.Join(tree, "var", "log", f), nil, 0o664))
	}
	must(t, os.WriteFile(filepath.Join(etc, nsMarker), []byte(token), 0o644))
	must(t, os.WriteFile(filepath.Join(tree, "home", nsMarker), []byte(token), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// hashTree maps every file and directory under paths to its mode, owner and
// content hash (a symlink to its target).
func hashTree(t *testing.T, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range paths {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				desc += " -> " + target
			case fi.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				sum := sha256.Sum256(b)
				desc += " " + hex.EncodeToString(sum[:8])
			}
			out[p] = desc
			return nil
		})
		if err != nil {
			t.Fatalf("hash %s: %v", root, err)
		}
	}
	return out
}

func keysOf(ms ...map[string]string) func(func(string) bool) {
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

// ---- inside the namespace ----

// nsEnv is the environment of the tools the test runs itself.
var nsEnv = []string{"PATH=" + execPath, "LANG=C", "LC_ALL=C", "HOME=/root"}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := tryRun(argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

func tryRun(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = nsEnv
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkInsideNamespace refuses to go on unless this process is in another
// mount namespace than the outer test and sees the copied /etc and /home.
func checkInsideNamespace(t *testing.T) {
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	if outer := os.Getenv(nsOuterEnv); outer == "" || ns == outer {
		t.Fatalf("refusing to run: mount namespace %s is the outer test's (%s)", ns, outer)
	}
	for _, d := range []string{"/etc", "/home"} {
		b, err := os.ReadFile(filepath.Join(d, nsMarker))
		if err != nil || string(b) != os.Getenv(nsTokenEnv) {
			t.Fatalf("refusing to run: %s is not the test's copy (%v)", d, err)
		}
	}
}

// nsFixture is the state shared by the steps inside the namespace.
type nsFixture struct {
	h       *Host
	clock   *fakeClock
	dir     string
	userCA  ssh.Signer
	hostCA  ssh.Signer
	hostKey ssh.PublicKey
	cert    string
	sshd    *nsSSHD
}

func runInNamespace(t *testing.T) {
	checkInsideNamespace(t)
	dir := os.Getenv(nsDirEnv)
	run(t, "ssh-keygen", "-A")
	fx := &nsFixture{dir: dir, clock: &fakeClock{t: time.Now()}, userCA: newTestKey(t), hostCA: newTestKey(t)}
	b, err := os.ReadFile("/etc/ssh/ssh_host_ed25519_key.pub")
	must(t, err)
	fx.hostKey, _, _, _, err = ssh.ParseAuthorizedKey(b)
	must(t, err)
	fx.cert = signHostCert(t, fx.hostCA, fx.hostKey)
	fx.h, err = New(Config{
		StateFile:    filepath.Join(dir, "state", "managed.json"),
		ArchiveDir:   filepath.Join(dir, "archive"),
		DeleteGrace:  time.Hour,
		HomeOnDelete: HomeArchive,
		Now:          fx.clock.Now,
	})
	must(t, err)

	steps := []struct {
		name string
		do   func(t *testing.T, fx *nsFixture)
	}{
		{"ok/create", stepCreate},
		{"ok/certificate-login", stepLogin},
		{"ok/drift-repaired", stepDrift},
		{"fail/collisions-reported-untouched", stepCollisions},
		{"fail/injection-refused-nothing-half-applied", stepInjection},
		{"ok/certificates-only-for-managed-accounts", stepCertificatesOnly},
		{"ok/new-person-no-reload-and-drop-in-order", stepNewPersonNoReload},
		{"ok/deprovision-and-delete", stepDeprovision},
		{"ok/sshd-block-without-include", stepBlock},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.do(t, fx) }) {
			break
		}
	}
	if fx.sshd != nil {
		fx.sshd.stop()
	}
}

func (fx *nsFixture) desired() Desired {
	return Desired{
		Groups: []Group{{Name: "ops", GID: 63001}, {Name: "dev", GID: 63002}},
		Users: []User{
			{Name: "alice", UID: 61001, Groups: []string{"ops"}},
			{Name: "bob", UID: 61002, Groups: []string{"ops", "dev"}},
		},
		Sudo: map[string]SudoRule{
			"deploy": {NoPasswd: true, Groups: []string{"ops"}, EnvKeep: []string{"DEPLOY_ENV"}, Commands: []SudoCommand{
				{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}},
				{Path: "/usr/local/bin/deploy", Args: []string{"--env=prod"}},
			}},
			"admin": {Users: []string{"bob"}, Commands: []SudoCommand{{Path: "ALL"}}},
		},
		TrustedCAKeys:    []string{keyLine(fx.userCA.PublicKey())},
		HostCertificates: []string{fx.cert},
	}
}

func (fx *nsFixture) apply(t *testing.T, d Desired) Report {
	t.Helper()
	rep, err := fx.h.Apply(t.Context(), d)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, c := range rep.Changes {
		t.Logf("change: %v", c)
	}
	for _, p := range rep.Problems {
		t.Logf("problem: %v", p)
	}
	return rep
}

func noProblems(t *testing.T, rep Report) {
	t.Helper()
	if err := rep.Err(); err != nil {
		t.Fatalf("problems: %v", err)
	}
}

// squash collapses whitespace, as sudo -l wraps long lines.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

func stepCreate(t *testing.T, fx *nsFixture) {
	rep := fx.apply(t, fx.desired())
	noProblems(t, rep)
	if got := strings.TrimSpace(run(t, "id", "-nG", "alice")); got != "alice "+ManagedGroup+" ops" {
		t.Errorf("id -nG alice = %s", got)
	}
	if got := strings.TrimSpace(run(t, "id", "-nG", "bob")); got != "bob "+ManagedGroup+" ops dev" {
		t.Errorf("id -nG bob = %s", got)
	}
	if g := strings.Split(strings.TrimSpace(run(t, "getent", "group", ManagedGroup)), ":"); len(g) != 4 || g[3] != "alice,bob" {
		t.Errorf("getent group %s = %q", ManagedGroup, g)
	} else if gid, _ := strconv.Atoi(g[2]); gid >= 1000 {
		t.Errorf("%s has gid %d, not a system group's", ManagedGroup, gid)
	}
	if got := strings.TrimSpace(run(t, "getent", "group", "ops")); got != "ops:x:63001:alice,bob" {
		t.Errorf("getent group ops = %s", got)
	}
	if got := strings.TrimSpace(run(t, "getent", "passwd", "alice")); got != "alice:x:61001:61001:rampart-managed:/home/alice:/bin/bash" {
		t.Errorf("getent passwd alice = %s", got)
	}
	shadowIs(t, "alice", "*", "")
	fi, err := os.Stat("/home/alice")
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 61001 {
		t.Errorf("/home/alice: %v", err)
	}
	run(t, "visudo", "-c")
	sudoA := squash(run(t, "sudo", "-l", "-U", "alice"))
	for _, want := range []string{
		"(root) NOSETENV: EXEC: NOPASSWD: /usr/bin/systemctl restart nginx, /usr/local/bin/deploy --env\\=prod",
		`env_keep+=DEPLOY_ENV`,
	} {
		if !strings.Contains(strings.ReplaceAll(sudoA, `"`, ""), want) {
			t.Errorf("sudo -l -U alice lacks %q:\n%s", want, sudoA)
		}
	}
	if strings.Contains(sudoA, ") NOSETENV: EXEC: PASSWD: ALL") {
		t.Errorf("alice got bob's ALL:\n%s", sudoA)
	}
	if sudoB := squash(run(t, "sudo", "-l", "-U", "bob")); !strings.Contains(sudoB, "(root) NOSETENV: EXEC: PASSWD: ALL") {
		t.Errorf("sudo -l -U bob lacks the admin rule:\n%s", sudoB)
	}
	if fi, err := os.Stat("/etc/sudoers.d/rampart-deploy"); err != nil || fi.Mode().Perm() != 0o440 {
		t.Errorf("rampart-deploy: %v %v", err, fi)
	}
	run(t, "/usr/sbin/sshd", "-t")
	eff := run(t, "/usr/sbin/sshd", "-T")
	for _, want := range []string{
		"trustedusercakeys /etc/ssh/rampart_user_ca_keys",
		"authorizedprincipalsfile /etc/ssh/rampart_principals/%u",
		"hostcertificate /etc/ssh/rampart_host_ssh-ed25519-cert.pub",
	} {
		if !strings.Contains(eff, want+"\n") {
			t.Errorf("sshd -T lacks %q", want)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		if b, err := os.ReadFile("/etc/ssh/rampart_principals/" + u); err != nil || string(b) != u+"\n" {
			t.Errorf("principals of %s: %q %v", u, b, err)
		}
	}
	// A second pass changes nothing.
	rep = fx.apply(t, fx.desired())
	noProblems(t, rep)
	if len(rep.Changes) != 0 {
		t.Errorf("the second pass changed %v", rep.Changes)
	}
}

func shadowIs(t *testing.T, user, password, expire string) {
	t.Helper()
	f := strings.Split(strings.TrimSpace(run(t, "getent", "shadow", user)), ":")
	if len(f) < 8 || f[1] != password || f[7] != expire {
		t.Errorf("shadow of %s = %q, want password %q and expiry %q", user, f, password, expire)
	}
}

func stepLogin(t *testing.T, fx *nsFixture) {
	for _, usePAM := range []bool{true, false} {
		fx.startSSHD(t, usePAM)
		if out, err := fx.login("alice"); err != nil || out != "alice\n" {
			t.Errorf("UsePAM %v: certificate login as alice: %q, %v", usePAM, out, err)
		}
		// alice's certificate opens alice only: not bob, not root.
		for _, other := range []string{"bob", "root"} {
			if _, err := fx.loginAs(other, "alice"); err == nil {
				t.Errorf("UsePAM %v: alice's certificate opened %s", usePAM, other)
			}
		}
	}
}

func stepDrift(t *testing.T, fx *nsFixture) {
	run(t, "usermod", "-s", "/bin/sh", "-c", "edited", "-L", "-e", "2", "alice")
	run(t, "gpasswd", "-d", "alice", "ops")
	run(t, "gpasswd", "-a", "root", "ops")
	run(t, "gpasswd", "-a", "alice", "sudo")
	run(t, "gpasswd", "-d", "alice", ManagedGroup)
	must(t, os.Remove("/etc/sudoers.d/rampart-deploy"))
	must(t, os.WriteFile("/etc/sudoers.d/rampart-admin", []byte("ALL ALL=(ALL) NOPASSWD: ALL\n"), 0o440))
	must(t, os.Remove("/etc/ssh/sshd_config.d/00-rampart.conf"))
	must(t, os.Remove("/etc/ssh/rampart_principals/bob"))
	must(t, os.WriteFile("/etc/ssh/rampart_principals/root", []byte("alice\n"), 0o644))

	rep := fx.apply(t, fx.desired())
	noProblems(t, rep)
	if !rep.Reloaded {
		t.Error("sshd was not reloaded after its drop-in was restored")
	}
	if got := strings.TrimSpace(run(t, "id", "-nG", "alice")); got != "alice "+ManagedGroup+" ops" {
		t.Errorf("id -nG alice = %s", got)
	}
	if got := strings.TrimSpace(run(t, "getent", "group", "ops")); got != "ops:x:63001:alice,bob" {
		t.Errorf("getent group ops = %s", got)
	}
	if got := strings.TrimSpace(run(t, "getent", "passwd", "alice")); got != "alice:x:61001:61001:rampart-managed:/home/alice:/bin/bash" {
		t.Errorf("getent passwd alice = %s", got)
	}
	shadowIs(t, "alice", "*", "")
	if b, err := os.ReadFile("/etc/sudoers.d/rampart-admin"); err != nil || bytes.Contains(b, []byte("ALL ALL")) {
		t.Errorf("rampart-admin not repaired: %q %v", b, err)
	}
	for _, f := range []string{"/etc/sudoers.d/rampart-deploy", "/etc/ssh/sshd_config.d/00-rampart.conf", "/etc/ssh/rampart_principals/bob"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s not restored: %v", f, err)
		}
	}
	if _, err := os.Stat("/etc/ssh/rampart_principals/root"); err == nil {
		t.Error("a principals file for root was kept")
	}
	run(t, "visudo", "-c")
	waitFor(t, func() error {
		out, err := fx.login("alice")
		if err != nil || out != "alice\n" {
			return fmt.Errorf("login after repair: %q %v", out, err)
		}
		return nil
	})
}

func stepCollisions(t *testing.T, fx *nsFixture) {
	run(t, "useradd", "-u", "61005", "-m", "-s", "/bin/sh", "carol")
	run(t, "groupadd", "-g", "63005", "legacy")
	before := accountLines(t, "carol", "legacy")
	d := fx.desired()
	d.Users = append(d.Users,
		User{Name: "carol", UID: 61006},      // name taken
		User{Name: "erin", UID: 61005},       // uid taken
		User{Name: "daemon", UID: 61007},     // system account
		User{Name: "frank\nALL", UID: 61007}, // not a name
		User{Name: "root", UID: 61007, Groups: nil},
	)
	d.Groups = append(d.Groups, Group{Name: "legacy", GID: 63006}, Group{Name: "newg", GID: 63005})
	rep := fx.apply(t, d)
	checkProblems(t, rep, []wantProblem{
		{KindUser, "carol", ErrConflict}, {KindUser, "erin", ErrConflict}, {KindUser, "daemon", ErrInvalid},
		{KindUser, `"frank\nALL"`, ErrInvalid}, {KindUser, "root", ErrInvalid},
		{KindGroup, "legacy", ErrConflict}, {KindGroup, "newg", ErrConflict},
	})
	if after := accountLines(t, "carol", "legacy"); after != before {
		t.Errorf("the unmanaged accounts changed:\n%s\n->\n%s", before, after)
	}
	for _, n := range []string{"erin", "61007"} {
		if out, err := tryRun("getent", "passwd", n); err == nil {
			t.Errorf("%s was created: %s", n, out)
		}
	}
	// Removed from Desired, the unmanaged ones are still left alone.
	rep = fx.apply(t, fx.desired())
	noProblems(t, rep)
	if after := accountLines(t, "carol", "legacy"); after != before {
		t.Errorf("the unmanaged accounts changed:\n%s\n->\n%s", before, after)
	}
}

// accountLines returns the passwd, shadow and group lines of names.
func accountLines(t *testing.T, names ...string) string {
	t.Helper()
	var b strings.Builder
	for _, file := range []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"} {
		data, err := os.ReadFile(file)
		must(t, err)
		for _, l := range strings.Split(string(data), "\n") {
			for _, n := range names {
				if strings.HasPrefix(l, n+":") {
					b.WriteString(l + "\n")
				}
			}
		}
	}
	return b.String()
}

func stepInjection(t *testing.T, fx *nsFixture) {
	before := hashTree(t, []string{"/etc/sudoers.d", "/etc/ssh", "/etc/passwd", "/etc/group", "/etc/shadow"})
	bad := []struct {
		name string
		rule SudoRule
	}{
		{"newline-in-argument", SudoRule{Groups: []string{"ops"}, Commands: []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart\nALL ALL=(ALL) NOPASSWD: ALL"}}}}},
		{"bare-all-beside-a-command", SudoRule{Groups: []string{"ops"}, Commands: []SudoCommand{{Path: "/usr/bin/systemctl"}, {Path: "ALL"}}}},
		{"comma-all-in-argument", SudoRule{Groups: []string{"ops"}, Commands: []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"x,ALL"}}}}},
		{"runas-injection", SudoRule{RunAs: "root) NOPASSWD: ALL #", Groups: []string{"ops"}, Commands: []SudoCommand{{Path: "/usr/bin/id"}}}},
		{"subject-injection", SudoRule{Users: []string{"alice\nALL ALL=(ALL) NOPASSWD: ALL"}, Commands: []SudoCommand{{Path: "/usr/bin/id"}}}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			d := fx.desired()
			d.Sudo["deploy"] = b.rule
			rep := fx.apply(t, d)
			checkProblems(t, rep, []wantProblem{{KindSudo, "deploy", ErrInvalid}})
			if len(rep.Changes) != 0 {
				t.Errorf("changes: %v", rep.Changes)
			}
			after := hashTree(t, []string{"/etc/sudoers.d", "/etc/ssh", "/etc/passwd", "/etc/group", "/etc/shadow"})
			for _, p := range slices.Sorted(keysOf(before, after)) {
				if before[p] != after[p] {
					t.Errorf("%s changed: %q -> %q", p, before[p], after[p])
				}
			}
			run(t, "visudo", "-c")
		})
	}
}

func stepDeprovision(t *testing.T, fx *nsFixture) {
	// A process of alice's and a login session.
	sleeper := exec.Command("setpriv", "--reuid=61001", "--regid=61001", "--clear-groups", "sleep", "600")
	must(t, sleeper.Start())
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	client, err := fx.dial("alice", "alice")
	if err != nil {
		t.Fatalf("login before deprovisioning: %v", err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	must(t, err)
	must(t, sess.Start("sleep 600"))
	sessDone := make(chan error, 1)
	go func() { sessDone <- sess.Wait() }()

	d := fx.desired()
	d.Users[0].Status = StatusDeleted
	rep := fx.apply(t, d)
	noProblems(t, rep)
	select {
	case err := <-exited:
		t.Logf("alice's process ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Error("alice's process survived deprovisioning")
	}
	select {
	case err := <-sessDone:
		t.Logf("alice's session ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Error("alice's ssh session survived deprovisioning")
	}
	shadowIs(t, "alice", "!*", "1")
	// Out of every group but ManagedGroup: sshd still holds the
	// disabled account to certificates only.
	if got := strings.TrimSpace(run(t, "id", "-nG", "alice")); got != "alice "+ManagedGroup {
		t.Errorf("id -nG alice = %s", got)
	}
	if _, err := os.Stat("/etc/ssh/rampart_principals/alice"); err == nil {
		t.Error("alice's principals file is still there")
	}
	if s := squash(run(t, "sudo", "-l", "-U", "alice")); strings.Contains(s, "systemctl") {
		t.Errorf("alice keeps her sudo rules:\n%s", s)
	}
	// Refused under both UsePAM settings, even with the principals file
	// put back by hand: the expiry alone stops a certificate.
	must(t, os.WriteFile("/etc/ssh/rampart_principals/alice", []byte("alice\n"), 0o644))
	for _, usePAM := range []bool{true, false} {
		fx.startSSHD(t, usePAM)
		if out, err := fx.login("alice"); err == nil {
			t.Errorf("UsePAM %v: a deprovisioned account logged in: %q", usePAM, out)
		}
		// The same sshd lets bob in: alice's refusal is hers.
		if out, err := fx.login("bob"); err != nil || out != "bob\n" {
			t.Errorf("UsePAM %v: login as bob: %q, %v", usePAM, out, err)
		}
	}
	// Within the grace period the account stays; after it, it goes, its
	// home archived.
	fx.clock.Add(59 * time.Minute)
	noProblems(t, fx.apply(t, d))
	if _, err := tryRun("getent", "passwd", "alice"); err != nil {
		t.Fatal("alice was deleted before the grace period ended")
	}
	fx.clock.Add(time.Minute)
	rep = fx.apply(t, d)
	noProblems(t, rep)
	for _, db := range []string{"passwd", "group"} {
		if out, err := tryRun("getent", db, "alice"); err == nil {
			t.Errorf("alice is still in %s: %s", db, out)
		}
	}
	if _, err := os.Stat("/home/alice"); err == nil {
		t.Error("/home/alice is still there")
	}
	archives, _ := filepath.Glob(filepath.Join(fx.dir, "archive", "alice-61001-*.tar.gz"))
	if len(archives) != 1 {
		t.Fatalf("archives: %v", archives)
	}
	if out := run(t, "tar", "-tzf", archives[0]); !strings.Contains(out, "alice/.bashrc") {
		t.Errorf("the archive lacks alice's files:\n%s", out)
	}
	if out := run(t, "getent", "group", "ops"); strings.TrimSpace(out) != "ops:x:63001:bob" {
		t.Errorf("getent group ops = %s", out)
	}
	run(t, "visudo", "-c")
}

func stepBlock(t *testing.T, fx *nsFixture) {
	orig, err := os.ReadFile("/etc/ssh/sshd_config")
	must(t, err)
	noInclude := regexp.MustCompile(`(?mi)^Include .*\n`).ReplaceAll(orig, nil)
	must(t, os.WriteFile("/etc/ssh/sshd_config", noInclude, 0o644))
	d := fx.desired()
	d.Users = d.Users[1:]
	rep := fx.apply(t, d)
	noProblems(t, rep)
	conf, err := os.ReadFile("/etc/ssh/sshd_config")
	must(t, err)
	if !bytes.HasPrefix(conf, []byte(blockBegin+"\n")) || !bytes.HasSuffix(conf, noInclude) {
		t.Errorf("sshd_config:\n%s", conf)
	}
	if _, err := os.Stat("/etc/ssh/sshd_config.d/00-rampart.conf"); err == nil {
		t.Error("the drop-in was kept")
	}
	run(t, "/usr/sbin/sshd", "-t")
	if eff := run(t, "/usr/sbin/sshd", "-T"); !strings.Contains(eff, "authorizedprincipalsfile /etc/ssh/rampart_principals/%u\n") {
		t.Errorf("sshd -T:\n%s", eff)
	}
	mainFileStillApplies(t, noInclude)
	waitFor(t, func() error {
		out, err := fx.login("bob")
		if err != nil || out != "bob\n" {
			return fmt.Errorf("login as bob: %q %v", out, err)
		}
		return nil
	})
	// The Include comes back: the block goes, the drop-in returns.
	must(t, os.WriteFile("/etc/ssh/sshd_config", append([]byte("Include /etc/ssh/sshd_config.d/*.conf\n"), conf...), 0o644))
	noProblems(t, fx.apply(t, d))
	if conf, _ := os.ReadFile("/etc/ssh/sshd_config"); bytes.Contains(conf, []byte(blockBegin)) {
		t.Errorf("the block was kept:\n%s", conf)
	}
	run(t, "/usr/sbin/sshd", "-t")
}

func waitFor(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
