package packaging

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// packages are the two packages and the file that lists what each installs.
var packages = []string{"rampartd", "rampart-agent"}

// TestPackages builds the packages with `make packages` and checks that
// both formats hold exactly the files docs/install.md lists, that dpkg
// installs them into a scratch root (maintainer scripts included), and that
// systemd-analyze accepts the units there.
func TestPackages(t *testing.T) {
	need(t, map[string]string{"make": "make", "dpkg": "dpkg", "dpkg-deb": "dpkg", "rpm": "rpm",
		"systemd-analyze": "systemd", "useradd": "passwd"})
	if os.Geteuid() != 0 {
		t.Skip("installing into a scratch root needs root")
	}
	repo := root(t)
	run(t, repo, nil, "make", "packages")
	documented := docTable(t, filepath.Join(repo, "docs/install.md"))

	debs := map[string]string{}
	for _, pkg := range packages {
		deb, rpm := one(t, repo, "dist/"+pkg+"_*.deb"), one(t, repo, "dist/"+pkg+"-[0-9]*.rpm")
		debs[pkg] = deb
		want := documented[pkg]
		if len(want) == 0 {
			t.Fatalf("docs/install.md lists no file of %s", pkg)
		}
		// dpkg-deb --contents: "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/bin/x".
		got := map[string]bool{}
		for _, line := range lines(run(t, "", nil, "dpkg-deb", "--contents", deb)) {
			f := strings.Fields(line)
			got[entry(f[0], strings.TrimPrefix(f[len(f)-1], "."))] = true
		}
		compare(t, pkg+".deb", got, want)
		got = map[string]bool{}
		for _, line := range lines(run(t, "", nil, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILENAMES}\n]`, rpm)) {
			f := strings.Fields(line)
			got[entry(f[0], f[1])] = true
		}
		compare(t, pkg+".rpm", got, want)
		scripts := run(t, "", nil, "rpm", "-qp", "--scripts", rpm)
		if !strings.Contains(scripts, "postinstall scriptlet") || !strings.Contains(scripts, "preuninstall scriptlet") {
			t.Errorf("%s has no post-install or pre-uninstall scriptlet:\n%s", rpm, scripts)
		}
	}
	if conf := run(t, "", nil, "dpkg-deb", "--info", debs["rampartd"], "conffiles"); strings.TrimSpace(conf) != "/etc/rampart/rampartd.yaml" {
		t.Errorf("rampartd's conffiles: %q, want /etc/rampart/rampartd.yaml", conf)
	}

	scratch := scratchRoot(t)
	install := func() string {
		return run(t, "", nil, "dpkg", "--root="+scratch, "--force-script-chrootless", "--force-depends",
			"--log=/dev/null", "-i", debs["rampartd"], debs["rampart-agent"])
	}
	out := install()
	if !strings.Contains(out, "rampart-agent: installed, not started: there is no /etc/rampart/rampart-agent.yaml") {
		t.Errorf("the agent's postinst did not say why it was not started:\n%s", out)
	}
	// Installed again (an upgrade), nothing is made twice.
	install()
	uid, gid := account(t, scratch, "passwd", "rampart:x:", ":/var/lib/rampart:"), account(t, scratch, "group", "rampart:x:", "")
	owned(t, scratch, "/var/lib/rampart", 0o700|os.ModeDir, uid, uid)
	owned(t, scratch, "/etc/rampart/rampartd.yaml", 0o640, 0, gid)
	owned(t, scratch, "/var/lib/rampart-agent", 0o700|os.ModeDir, 0, 0)
	owned(t, scratch, "/usr/bin/rampartd", 0o755, 0, 0)
	owned(t, scratch, "/usr/bin/rampart-agent", 0o755, 0, 0)

	// The packaged configuration is configs/rampartd.yaml with the agent
	// binaries where the package puts them.
	conf := read(t, filepath.Join(scratch, "etc/rampart/rampartd.yaml"))
	example := read(t, filepath.Join(repo, "configs/rampartd.yaml"))
	if want := strings.Replace(example, "\n  binary_dir: \"\"\n", "\n  binary_dir: /usr/lib/rampart/agents   # where the rampartd package puts the agent\n", 1); conf != want || conf == example {
		t.Error("/etc/rampart/rampartd.yaml is not configs/rampartd.yaml with agents.binary_dir /usr/lib/rampart/agents")
	}

	// systemd-analyze verify against the scratch root: it resolves
	// ExecStart there and needs systemd's own targets, taken from this
	// machine. It exits 0 on an unknown key or a bad value but says so,
	// so any output fails; a broken copy shows the check can fail.
	for _, dir := range []string{"/usr/lib/systemd/system", "/lib/systemd/system"} {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			run(t, "", nil, "cp", "-rn", dir+"/.", filepath.Join(scratch, "usr/lib/systemd/system")+"/")
		}
	}
	verify := func(units ...string) (string, error) {
		return try("", []string{"SYSTEMD_LOG_COLOR=0"}, "systemd-analyze", append([]string{"verify", "--root=" + scratch}, units...)...)
	}
	if out, err := verify("rampartd.service", "rampart-agent.service"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	unitDir := filepath.Join(scratch, "usr/lib/systemd/system")
	bad := strings.Replace(read(t, filepath.Join(unitDir, "rampartd.service")), "ProtectSystem=strict", "ProtectSystem=stricter", 1)
	write(t, filepath.Join(unitDir, "broken.service"), bad)
	if out, _ := verify("broken.service"); !strings.Contains(out, "stricter") {
		t.Errorf("systemd-analyze verify passed a broken unit:\n%s", out)
	}
	for unit, want := range map[string][]string{
		"rampartd.service": {"User=rampart", "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
			// The file sink's directory (configs/rampartd.yaml) is writable.
			"LogsDirectory=rampart\n", "LogsDirectoryMode=0750\n"},
		"rampart-agent.service": {"NoNewPrivileges=yes", "ProtectSystem=yes", "CapabilityBoundingSet=", "ConditionPathExists=!/etc/rampart/disable-autostart"},
	} {
		body := read(t, filepath.Join(unitDir, unit))
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", unit, strings.TrimSpace(w))
			}
		}
	}
}

// docTable reads the table of installed files in docs/install.md: rows
// "| `/path` | package | what |"; a directory ends in /.
func docTable(t *testing.T, path string) map[string]map[string]bool {
	t.Helper()
	row := regexp.MustCompile("^\\| `(/[^`]+)` \\| ([a-z-]+) \\|")
	out := map[string]map[string]bool{}
	for _, line := range lines(read(t, path)) {
		if m := row.FindStringSubmatch(line); m != nil {
			if out[m[2]] == nil {
				out[m[2]] = map[string]bool{}
			}
			out[m[2]][m[1]] = true
		}
	}
	return out
}

// entry names a package entry as docTable does. Directories the package
// only implies (/usr, /usr/bin...) are left out by the caller's compare.
func entry(perms, path string) string {
	if strings.HasPrefix(perms, "d") {
		return strings.TrimSuffix(path, "/") + "/"
	}
	return path
}

// compare: every file of the package is documented and every documented
// path is in the package. Directories count only when documented.
func compare(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	for p := range got {
		if !strings.HasSuffix(p, "/") && !want[p] {
			t.Errorf("%s installs %s, which docs/install.md does not list", what, p)
		}
	}
	for p := range want {
		if !got[p] {
			t.Errorf("docs/install.md says %s installs %s; it does not", what, p)
		}
	}
}

// scratchRoot is an empty root with what dpkg and useradd --prefix need.
func scratchRoot(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc", "usr/lib/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\n",
		"etc/shadow":          "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":         "root:*::\n",
	} {
		write(t, filepath.Join(r, name), body)
	}
	return r
}

// account finds the one line of root's /etc/FILE starting with prefix and
// containing has, and returns its id (third field).
func account(t *testing.T, root, file, prefix, has string) uint32 {
	t.Helper()
	var found []string
	for _, l := range lines(read(t, filepath.Join(root, "etc", file))) {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, has) {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("/etc/%s: want one %s...%s line, have %q", file, prefix, has, found)
	}
	var id uint32
	for _, c := range strings.Split(found[0], ":")[2] {
		id = id*10 + uint32(c-'0')
	}
	return id
}

func owned(t *testing.T, root, path string, mode os.FileMode, uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(filepath.Join(root, path))
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || st.Uid != uid || st.Gid != gid {
		t.Errorf("%s: %s %d:%d, want %s %d:%d", path, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func one(t *testing.T, dir, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(m) != 1 {
		t.Fatalf("%s: want one file, have %q (make packages leaves one of each)", pattern, m)
	}
	return m[0]
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return slices.Clip(out)
}
