package sshsetup

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestHostileValuesRenderNothing: a value that would add a line to
// ~/.ssh/config or known_hosts (a ProxyCommand, an @cert-authority for
// every host) or that breaks its field's rule makes Plan refuse: no
// change is planned and no file is written.
func TestHostileValuesRenderNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Desired)
	}{
		{"fail/jump-host-proxycommand", func(d *Desired) {
			d.JumpHost = "b.example.com\n  ProxyCommand sh -c 'touch /tmp/pwned'\nHost x"
		}},
		{"fail/jump-host-option", func(d *Desired) { d.JumpHost = "b.example.com -oProxyCommand=x" }},
		{"fail/node-name-newline", func(d *Desired) { d.NodeNames = append(d.NodeNames, "b\n@cert-authority * "+hostCAKey) }},
		{"fail/node-name-wildcard", func(d *Desired) { d.NodeNames = append(d.NodeNames, "*") }},
		{"fail/node-name-list", func(d *Desired) { d.NodeNames = append(d.NodeNames, "a,*") }},
		{"fail/host-pattern-everything", func(d *Desired) { d.HostPatterns = []string{"*.com"} }},
		{"fail/host-pattern-newline", func(d *Desired) { d.HostPatterns = []string{"*.prod.example.com\n  ProxyCommand x"} }},
		{"fail/server-newline", func(d *Desired) { d.Servers = []string{"web-1\n  ProxyCommand sh"} }},
		{"fail/server-negated", func(d *Desired) { d.Servers = []string{"!web-1"} }},
		{"fail/server-wildcard", func(d *Desired) { d.Servers = []string{"*"} }},
		{"fail/unix-name-newline", func(d *Desired) { d.UnixName = "alice\n  ProxyCommand sh" }},
		{"fail/unix-name-reserved", func(d *Desired) { d.UnixName = "root" }},
		{"fail/ca-key-second-line", func(d *Desired) { d.HostCAKeys = []string{hostCAKey + "\n@cert-authority * " + hostCAKey} }},
		{"fail/ca-key-carriage-return", func(d *Desired) { d.HostCAKeys = []string{hostCAKey + "\r@cert-authority * " + hostCAKey} }},
		{"fail/ca-key-options", func(d *Desired) { d.NodeHostCAKeys = []string{`command="sh" ` + nodeCAKey} }},
		{"fail/ca-key-marker", func(d *Desired) { d.NodeHostCAKeys = []string{"@cert-authority * " + nodeCAKey} }},
		{"fail/ca-key-garbage", func(d *Desired) { d.HostCAKeys = []string{"ssh-ed25519 AAAAhost"} }},
		{"fail/cluster-newline", func(d *Desired) { d.Cluster = "https://x\nHost *\n  ProxyCommand sh" }},
		{"fail/identity-quote", func(d *Desired) { d.IdentityFile = "/h/k\"\n  ProxyCommand sh" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := PathsFor(t.TempDir())
			d := desired()
			tc.edit(&d)
			changes, _, err := Plan(p, d)
			if !errors.Is(err, ErrUnsafe) || len(changes) != 0 {
				t.Fatalf("Plan = %d changes, %v; want none and ErrUnsafe", len(changes), err)
			}
			for _, f := range []string{p.SSHConfig, p.KnownHosts, p.Included} {
				if _, err := os.Stat(f); err == nil {
					t.Errorf("%s was written", f)
				}
			}
		})
	}
	if _, _, err := Plan(PathsFor(t.TempDir()), desired()); err != nil {
		t.Fatalf("the good setup is refused: %v", err)
	}
}

// TestTargetCANotForEveryName: the target host CA vouches for the
// published patterns and the person's servers only; before either is
// known it has no line at all.
func TestTargetCANotForEveryName(t *testing.T) {
	d := desired()
	d.HostPatterns = nil
	kh := d.KnownHostsBlock()
	if strings.Contains(kh, hostCAKey) || strings.Contains(kh, "@cert-authority *") {
		t.Errorf("without patterns or servers the target host CA is trusted:\n%s", kh)
	}
	d.Servers = []string{"web-1", "db-1.internal"}
	kh = d.KnownHostsBlock()
	want := "@cert-authority db-1.internal,web-1,!10.0.0.5,![10.0.0.5]:2222,![bastion.example.com]:2222,!bastion.example.com " + hostCAKey + "\n"
	if !strings.Contains(kh, want) {
		t.Errorf("known_hosts block lacks %q:\n%s", want, kh)
	}
	for _, line := range strings.Split(kh, "\n") {
		if strings.HasPrefix(line, "@cert-authority *") {
			t.Errorf("a CA is trusted for every name: %q", line)
		}
	}
}

// TestDiffEscapesControlCharacters: an escape sequence or a bidi override
// in a file shows as text in the diff, so it cannot hide a line.
func TestDiffEscapesControlCharacters(t *testing.T) {
	c := Change{Path: "/h/.ssh/known_hosts", Existed: true, Old: []byte("a\n"),
		New: []byte("a\nx\x1b[2K\x1b[1Ay\r\u202ez\x00\n")}
	d := c.Diff()
	for _, bad := range []string{"\x1b", "\r", "\u202e", "\x00"} {
		if strings.Contains(d, bad) {
			t.Errorf("diff holds %q: %q", bad, d)
		}
	}
	if want := `+x\x1b[2K\x1b[1Ay\x0d\u202ez\x00`; !strings.Contains(d, want) {
		t.Errorf("diff = %q, want the line shown as %q", d, want)
	}
}

// TestSameChanges: a plan made again after a file changed differs.
func TestSameChanges(t *testing.T) {
	p := PathsFor(t.TempDir())
	write(t, p.KnownHosts, "a ssh-ed25519 AAAAa\n")
	first, _, err := Plan(p, desired())
	if err != nil {
		t.Fatal(err)
	}
	again, _, _ := Plan(p, desired())
	if !SameChanges(first, again) {
		t.Fatal("two plans of unchanged files differ")
	}
	write(t, p.KnownHosts, "a ssh-ed25519 AAAAa\nb ssh-ed25519 AAAAb\n")
	if again, _, _ = Plan(p, desired()); SameChanges(first, again) {
		t.Error("a plan made after known_hosts changed is the same")
	}
}
