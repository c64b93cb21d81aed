package hostapply

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// fakeHost is a Runner that keeps an account database in memory and
// understands the subset of getent, useradd, usermod, userdel, groupadd,
// groupdel, gpasswd, pkill, visudo, sshd, tar and systemctl the agent uses,
// with the exit codes of the real tools. Files (sudoers.d, sshd) are real,
// under root.
type fakeHost struct {
	mu     sync.Mutex
	root   string
	users  []*fakeUser
	groups []*fakeGroup
	// nssOnly are names or ids that only a lookup finds (LDAP without
	// enumeration): "passwd eve", "group 5000".
	nssOnly map[string]string
	log     []string
	// fail makes a command fail: return its exit code, or 0 to run it.
	fail func(argv []string) int
	// visudoReject refuses a sudoers file by its content.
	visudoReject func(content string) bool
	// visudoWholeReject makes visudo -c (the whole configuration) fail.
	visudoWholeReject bool
	// sshdReject makes sshd -t fail.
	sshdReject bool
	// sshdTExtra is printed before the effective settings by sshd -T (an
	// earlier setting wins).
	sshdTExtra string
	// hostKey is the host's ed25519 key (its public half in /etc/ssh).
	hostKey ssh.Signer
}

type fakeUser struct {
	name, gecos, home, shell, pw, expire string
	uid, gid                             uint32
}

type fakeGroup struct {
	name    string
	gid     uint32
	members []string
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	f := &fakeHost{root: t.TempDir(), nssOnly: map[string]string{}}
	f.addGroup("root", 0)
	f.addUser(&fakeUser{name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/bash", pw: "*"})
	f.addGroup("daemon", 1)
	f.addUser(&fakeUser{name: "daemon", uid: 1, gid: 1, home: "/usr/sbin", shell: "/usr/sbin/nologin", pw: "*"})
	f.addGroup("sudo", 27)
	for _, d := range []string{"etc/sudoers.d", "etc/ssh/sshd_config.d", "home"} {
		if err := os.MkdirAll(filepath.Join(f.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.writeFile(t, "/etc/sudoers", "root ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n", 0o440)
	f.writeFile(t, "/etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nUsePAM yes\n", 0o644)
	f.hostKey = newTestKey(t)
	f.writeFile(t, "/etc/ssh/ssh_host_ed25519_key.pub", string(ssh.MarshalAuthorizedKey(f.hostKey.PublicKey())), 0o644)
	return f
}

func (f *fakeHost) writeFile(t *testing.T, inside, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(f.root, inside)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeHost) readFile(t *testing.T, inside string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, inside))
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

func (f *fakeHost) addUser(u *fakeUser) { f.users = append(f.users, u) }

func (f *fakeHost) addGroup(name string, gid uint32, members ...string) *fakeGroup {
	g := &fakeGroup{name: name, gid: gid, members: members}
	f.groups = append(f.groups, g)
	return g
}

func (f *fakeHost) user(name string) *fakeUser {
	for _, u := range f.users {
		if u.name == name || strconv.FormatUint(uint64(u.uid), 10) == name {
			return u
		}
	}
	return nil
}

func (f *fakeHost) group(name string) *fakeGroup {
	for _, g := range f.groups {
		if g.name == name || strconv.FormatUint(uint64(g.gid), 10) == name {
			return g
		}
	}
	return nil
}

// commands returns the log, without the read-only getent calls.
func (f *fakeHost) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.log {
		if !strings.HasPrefix(c, "getent ") && !strings.Contains(c, "sshd -T") {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeHost) resetLog() {
	f.mu.Lock()
	f.log = nil
	f.mu.Unlock()
}

func (f *fakeHost) lineOf(u *fakeUser) string {
	return fmt.Sprintf("%s:x:%d:%d:%s:%s:%s", u.name, u.uid, u.gid, u.gecos, u.home, u.shell)
}

func (f *fakeHost) groupLine(g *fakeGroup) string {
	return fmt.Sprintf("%s:x:%d:%s", g.name, g.gid, strings.Join(g.members, ","))
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" {
			a = "''"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

func exit(argv []string, code int, msg string) error {
	return &ExitError{Argv: argv, Code: code, Stderr: msg}
}

func (f *fakeHost) Run(ctx context.Context, argv []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, quoteArgv(argv))
	if f.fail != nil {
		if code := f.fail(argv); code != 0 {
			return nil, exit(argv, code, "injected failure")
		}
	}
	// flags parses "-x value" pairs (and lone flags in bare) up to the last
	// argument, the name.
	flags := func(bare string) (map[string]string, string) {
		m := map[string]string{}
		args := argv[1:]
		for i := 0; i < len(args)-1; i++ {
			a := args[i]
			if strings.Contains(bare, a) {
				m[a] = ""
				continue
			}
			m[a] = args[i+1]
			i++
		}
		return m, args[len(args)-1]
	}
	id := func(s string) uint32 { n, _ := strconv.ParseUint(s, 10, 32); return uint32(n) }
	switch filepath.Base(argv[0]) {
	case "getent":
		var out []string
		switch argv[1] {
		case "passwd":
			for _, u := range f.users {
				out = append(out, f.lineOf(u))
			}
		case "group":
			for _, g := range f.groups {
				out = append(out, f.groupLine(g))
			}
		case "shadow":
			for _, u := range f.users {
				out = append(out, fmt.Sprintf("%s:%s:19000:0:99999:7::%s:", u.name, u.pw, u.expire))
			}
		}
		if len(argv) == 3 {
			if holder, ok := f.nssOnly[argv[1]+" "+argv[2]]; ok {
				return []byte(holder + ":x:5000:5000::/:/bin/sh\n"), nil
			}
			key := argv[2]
			switch argv[1] {
			case "passwd":
				if u := f.user(key); u != nil {
					return []byte(f.lineOf(u) + "\n"), nil
				}
			case "group":
				if g := f.group(key); g != nil {
					return []byte(f.groupLine(g) + "\n"), nil
				}
			}
			return nil, exit(argv, 2, "")
		}
		return []byte(strings.Join(out, "\n") + "\n"), nil
	case "groupadd":
		m, name := flags("-r")
		if f.group(name) != nil {
			return nil, exit(argv, 9, "group exists")
		}
		if _, sys := m["-r"]; sys && m["-g"] == "" {
			// The system range, from the top, as groupadd -r picks.
			gid := uint32(999)
			for f.group(strconv.Itoa(int(gid))) != nil {
				gid--
			}
			m["-g"] = strconv.Itoa(int(gid))
		}
		if f.group(m["-g"]) != nil {
			return nil, exit(argv, 4, "GID not unique")
		}
		f.addGroup(name, id(m["-g"]))
	case "groupdel":
		name := argv[len(argv)-1]
		g := f.group(name)
		if g == nil {
			return nil, exit(argv, 6, "group does not exist")
		}
		for _, u := range f.users {
			if u.gid == g.gid {
				return nil, exit(argv, 8, "cannot remove the primary group of user "+u.name)
			}
		}
		f.groups = slices.DeleteFunc(f.groups, func(o *fakeGroup) bool { return o == g })
	case "useradd":
		m, name := flags("-m")
		if f.user(name) != nil {
			return nil, exit(argv, 9, "user exists")
		}
		if f.user(m["-u"]) != nil {
			return nil, exit(argv, 4, "UID not unique")
		}
		g := f.group(m["-g"])
		if g == nil {
			return nil, exit(argv, 6, "group does not exist")
		}
		var sup []*fakeGroup
		if m["-G"] != "" {
			for _, s := range strings.Split(m["-G"], ",") {
				sg := f.group(s)
				if sg == nil {
					return nil, exit(argv, 6, "group "+s+" does not exist")
				}
				sup = append(sup, sg)
			}
		}
		f.addUser(&fakeUser{name: name, uid: id(m["-u"]), gid: g.gid, gecos: m["-c"], home: m["-d"], shell: m["-s"], pw: m["-p"]})
		for _, sg := range sup {
			sg.members = append(sg.members, name)
		}
	case "usermod":
		m, name := flags("-L")
		u := f.user(name)
		if u == nil {
			return nil, exit(argv, 6, "user does not exist")
		}
		if v, ok := m["-G"]; ok {
			want := map[string]bool{}
			if v != "" {
				for _, s := range strings.Split(v, ",") {
					if f.group(s) == nil {
						return nil, exit(argv, 6, "group "+s+" does not exist")
					}
					want[s] = true
				}
			}
			for _, g := range f.groups {
				g.members = slices.DeleteFunc(g.members, func(s string) bool { return s == name })
				if want[g.name] {
					g.members = append(g.members, name)
				}
			}
		}
		if v, ok := m["-g"]; ok {
			u.gid = f.group(v).gid
		}
		if v, ok := m["-c"]; ok {
			u.gecos = v
		}
		if v, ok := m["-d"]; ok {
			u.home = v
		}
		if v, ok := m["-s"]; ok {
			u.shell = v
		}
		if v, ok := m["-p"]; ok {
			u.pw = v
		}
		if v, ok := m["-e"]; ok {
			u.expire = v
		}
		if _, ok := m["-L"]; ok && !strings.HasPrefix(u.pw, "!") {
			u.pw = "!" + u.pw
		}
	case "userdel":
		name := argv[len(argv)-1]
		u := f.user(name)
		if u == nil {
			return nil, exit(argv, 6, "user does not exist")
		}
		f.users = slices.DeleteFunc(f.users, func(o *fakeUser) bool { return o == u })
		for _, g := range f.groups {
			g.members = slices.DeleteFunc(g.members, func(s string) bool { return s == name })
		}
		// USERGROUPS_ENAB yes: the private group goes too.
		if g := f.group(name); g != nil && g.gid == u.gid {
			f.groups = slices.DeleteFunc(f.groups, func(o *fakeGroup) bool { return o == g })
		}
		if slices.Contains(argv, "-r") {
			os.RemoveAll(filepath.Join(f.root, u.home))
		}
	case "gpasswd":
		g := f.group(argv[len(argv)-1])
		if g == nil {
			return nil, exit(argv, 3, "group does not exist")
		}
		if argv[1] == "-M" {
			g.members = nil
			if argv[2] != "" {
				g.members = strings.Split(argv[2], ",")
			}
		}
	case "pkill":
		return nil, exit(argv, 1, "")
	case "visudo":
		var files []string
		if i := slices.Index(argv, "-f"); i >= 0 {
			files = []string{argv[i+1]}
		} else {
			if f.visudoWholeReject {
				return nil, exit(argv, 1, "Alias already defined")
			}
			entries, _ := os.ReadDir(filepath.Join(f.root, "/etc/sudoers.d"))
			for _, e := range entries {
				if !strings.Contains(e.Name(), ".") {
					files = append(files, "/etc/sudoers.d/"+e.Name())
				}
			}
		}
		for _, file := range files {
			b, err := os.ReadFile(filepath.Join(f.root, file))
			if err != nil {
				return nil, exit(argv, 1, err.Error())
			}
			if f.visudoReject != nil && f.visudoReject(string(b)) {
				return nil, exit(argv, 1, file+": syntax error")
			}
		}
	case "sshd":
		if argv[1] == "-t" && f.sshdReject {
			return nil, exit(argv, 255, "Bad configuration option")
		}
		if argv[1] == "-T" {
			var user, addr string
			if i := slices.Index(argv, "-C"); i > 0 {
				for _, kv := range strings.Split(argv[i+1], ",") {
					if v, ok := strings.CutPrefix(kv, "user="); ok {
						user = v
					}
					if v, ok := strings.CutPrefix(kv, "addr="); ok {
						addr = v
					}
				}
			}
			return []byte(f.sshdEffective(argv[len(argv)-1], user, addr)), nil
		}
	case "tar", "systemctl":
	default:
		return nil, exit(argv, 127, "command not found")
	}
	return nil, nil
}

// matches reports whether a Match line's criteria ("User a,b", "Group g",
// "Address 10.0.0.0/8") all hold for user from addr, as sshd -T -C sees
// them: Group counts the primary group and the supplementary ones of a user
// that exists.
func (f *fakeHost) matches(criteria, user, addr string) bool {
	if user == "" {
		return false
	}
	fields := strings.Fields(criteria)
	if len(fields)%2 != 0 {
		return false
	}
	for i := 0; i < len(fields); i += 2 {
		list := strings.Split(fields[i+1], ",")
		switch strings.ToLower(fields[i]) {
		case "user":
			if !slices.Contains(list, user) {
				return false
			}
		case "group":
			u := f.user(user)
			if u == nil || !slices.ContainsFunc(list, func(g string) bool {
				fg := f.group(g)
				return fg != nil && (fg.gid == u.gid || slices.Contains(fg.members, user))
			}) {
				return false
			}
		case "address":
			a, err := netip.ParseAddr(addr)
			if err != nil || !slices.ContainsFunc(list, func(c string) bool {
				pfx, err := netip.ParsePrefix(c)
				return err == nil && pfx.Contains(a)
			}) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// sshdEffective prints what sshd -T would for the settings the agent uses,
// for user from addr when user is not "": the first value of each wins;
// hostcertificate accumulates; values in a Match block that holds for them
// win over the global ones ("Match all" ends a block).
func (f *fakeHost) sshdEffective(conf, user, addr string) string {
	b, _ := os.ReadFile(filepath.Join(f.root, conf))
	var lines []string
	for _, l := range strings.Split(f.sshdTExtra+string(b), "\n") {
		k, v := splitDirective(l)
		if strings.EqualFold(k, "Include") {
			files, _ := filepath.Glob(filepath.Join(f.root, v))
			for _, inc := range files {
				ib, _ := os.ReadFile(inc)
				lines = append(lines, strings.Split(string(ib), "\n")...)
				lines = append(lines, "Match all") // sshd ends an included file's Match
			}
			continue
		}
		lines = append(lines, l)
	}
	global, matched := map[string][]string{}, map[string][]string{}
	var order []string
	active := global
	for _, l := range lines {
		k, v := splitDirective(l)
		k = strings.ToLower(k)
		switch {
		case k == "":
			continue
		case k == "match":
			active = nil
			if v == "all" {
				active = global
			} else if f.matches(v, user, addr) {
				active = matched
			}
			continue
		case active == nil || (len(active[k]) > 0 && k != "hostcertificate"):
			continue
		}
		if global[k] == nil && matched[k] == nil {
			order = append(order, k)
		}
		active[k] = append(active[k], v)
	}
	var out strings.Builder
	for _, k := range order {
		vals := global[k]
		if matched[k] != nil {
			vals = matched[k]
		}
		for _, v := range vals {
			fmt.Fprintf(&out, "%s %s\n", k, v)
		}
	}
	for _, d := range [][2]string{{"trustedusercakeys", "none"}, {"authorizedprincipalsfile", "none"}, {"authorizedkeysfile", ".ssh/authorized_keys .ssh/authorized_keys2"},
		{"authorizedkeyscommand", "none"}, {"authenticationmethods", "any"}, {"passwordauthentication", "yes"}, {"kbdinteractiveauthentication", "yes"}} {
		if global[d[0]] == nil && matched[d[0]] == nil {
			fmt.Fprintf(&out, "%s %s\n", d[0], d[1])
		}
	}
	return out.String()
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestKey(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signHostCert certifies key as a host key with ca, in authorized_keys form.
func signHostCert(t testing.TB, ca ssh.Signer, key ssh.PublicKey) string {
	t.Helper()
	cert := &ssh.Certificate{
		Key: key, CertType: ssh.HostCert, KeyId: "test-host", ValidPrincipals: []string{"target"},
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(24 * time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(cert))
}
