package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// postinstHarness runs the agent's postinstall.sh as on a host running
// systemd, in a private mount namespace: /etc and /var/lib are overlays
// (this machine's stay untouched), /run/systemd/system exists, and a
// systemctl stand-in first on PATH logs what it is asked. $ACTIVE says
// whether the agent runs already. The case's setup runs before the script.
const postinstHarness = `set -eu
mount -t tmpfs tmpfs "$T/ovl"
for d in etc var/lib; do
	mkdir -p "$T/ovl/$d/up" "$T/ovl/$d/work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ovl/$d/up,workdir=$T/ovl/$d/work" "/$d"
done
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system /etc/rampart
eval "$SETUP"
PATH="$T/bin:$PATH" sh "$SCRIPT" configure
`

const systemctlStandIn = `#!/bin/sh
echo "$*" >>"$T/systemctl.log"
case "$*" in
"is-active --quiet rampart-agent") [ "$ACTIVE" = 1 ] ;;
*) exit 0 ;;
esac
`

// TestAgentPostinstStartsOnlyWithToken: the package starts the agent only
// when it has something to enroll with, and never on a golden image.
func TestAgentPostinstStartsOnlyWithToken(t *testing.T) {
	need(t, map[string]string{"unshare": "util-linux"})
	if os.Geteuid() != 0 {
		t.Skip("mount namespaces need root")
	}
	script := filepath.Join(root(t), "packaging/rampart-agent/postinstall.sh")
	const conf = `printf 'addr: 10.0.3.17\n' >/etc/rampart/rampart-agent.yaml; `
	const token = `mkdir -p /var/lib/rampart-agent; echo rpt1_x >/var/lib/rampart-agent/enrollment.token; `
	for _, tc := range []struct {
		name, setup, active string
		calls               []string // systemctl's, in order
		say                 string   // in the script's output
	}{
		{"fail/no-config", token, "0", []string{"daemon-reload"}, "not started: there is no /etc/rampart/rampart-agent.yaml"},
		{"fail/no-token", conf, "0", []string{"daemon-reload"}, "not started: there is no enrollment token at /var/lib/rampart-agent/enrollment.token"},
		{"fail/empty-token", conf + `mkdir -p /var/lib/rampart-agent; : >/var/lib/rampart-agent/enrollment.token`, "0", []string{"daemon-reload"}, "there is no enrollment token"},
		{"fail/token-not-where-config-says", conf + token + `echo 'token_file: /etc/rampart/t.token' >>/etc/rampart/rampart-agent.yaml`, "0", []string{"daemon-reload"}, "no enrollment token at /etc/rampart/t.token"},
		{"ok/token", conf + token, "0", []string{"daemon-reload", "is-active --quiet rampart-agent", "enable --now rampart-agent"}, ""},
		{"ok/token-where-config-says", conf + `echo 'token_file: "/etc/rampart/t.token"' >>/etc/rampart/rampart-agent.yaml; echo rpt1_x >/etc/rampart/t.token`, "0", []string{"daemon-reload", "is-active --quiet rampart-agent", "enable --now rampart-agent"}, ""},
		{"ok/enrolled", conf + `mkdir -p /var/lib/rampart-agent; echo {} >/var/lib/rampart-agent/identity.json`, "0", []string{"daemon-reload", "is-active --quiet rampart-agent", "enable --now rampart-agent"}, ""},
		{"ok/auto-enroll", conf + `echo 'auto_enroll: aws' >>/etc/rampart/rampart-agent.yaml`, "0", []string{"daemon-reload", "is-active --quiet rampart-agent", "enable --now rampart-agent"}, ""},
		{"ok/upgrade-restarts", conf + token, "1", []string{"daemon-reload", "is-active --quiet rampart-agent", "restart rampart-agent"}, ""},
		{"ok/golden-image", conf + token + `touch /etc/rampart/disable-autostart`, "0", []string{"daemon-reload", "enable rampart-agent"}, "not started: /etc/rampart/disable-autostart exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"ovl", "bin"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "bin/systemctl"), []byte(systemctlStandIn), 0o755); err != nil {
				t.Fatal(err)
			}
			out := run(t, "", []string{"T=" + dir, "SCRIPT=" + script, "SETUP=" + tc.setup, "ACTIVE=" + tc.active},
				"unshare", "--mount", "--propagation", "private", "sh", "-c", postinstHarness)
			log, _ := os.ReadFile(filepath.Join(dir, "systemctl.log"))
			if got := strings.Split(strings.TrimSpace(string(log)), "\n"); strings.Join(got, "|") != strings.Join(tc.calls, "|") {
				t.Errorf("systemctl was asked %q, want %q\noutput:\n%s", got, tc.calls, out)
			}
			if !strings.Contains(out, tc.say) {
				t.Errorf("the output lacks %q:\n%s", tc.say, out)
			}
		})
	}
}

const rampartdSystemctlStandIn = `#!/bin/sh
echo "$*" >>"$T/systemctl.log"
case "$*" in
"is-active --quiet rampartd") [ "$ACTIVE" = 1 ] ;;
"is-enabled --quiet rampartd") [ "$ACTIVE" = 1 ] ;;
*) exit 0 ;;
esac
`

// TestRampartdPostinstNeverRestarts: an upgrade leaves a running node
// running (unattended upgrades on every node at once must not restart them
// together and lose the quorum) and says that the operator restarts the
// nodes one at a time; a first install starts nothing.
func TestRampartdPostinstNeverRestarts(t *testing.T) {
	need(t, map[string]string{"unshare": "util-linux", "useradd": "passwd"})
	if os.Geteuid() != 0 {
		t.Skip("mount namespaces need root")
	}
	script := filepath.Join(root(t), "packaging/rampartd/postinstall.sh")
	const conf = `printf 'kek_file: /etc/rampart/kek\n' >/etc/rampart/rampartd.yaml; `
	for _, tc := range []struct {
		name, active string
		calls        []string // systemctl's, in order
		say          string   // in the script's output
	}{
		{"ok/upgrade-leaves-running-node", "1", []string{"daemon-reload", "is-active --quiet rampartd"},
			"Restart the nodes one at a time"},
		{"ok/first-install-starts-nothing", "0", []string{"daemon-reload", "is-active --quiet rampartd", "is-enabled --quiet rampartd"},
			"installed, not started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"ovl", "bin"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, "bin/systemctl"), []byte(rampartdSystemctlStandIn), 0o755); err != nil {
				t.Fatal(err)
			}
			out := run(t, "", []string{"T=" + dir, "SCRIPT=" + script, "SETUP=" + conf, "ACTIVE=" + tc.active},
				"unshare", "--mount", "--propagation", "private", "sh", "-c", postinstHarness)
			log, _ := os.ReadFile(filepath.Join(dir, "systemctl.log"))
			if got := strings.Split(strings.TrimSpace(string(log)), "\n"); strings.Join(got, "|") != strings.Join(tc.calls, "|") {
				t.Errorf("systemctl was asked %q, want %q\noutput:\n%s", got, tc.calls, out)
			}
			if !strings.Contains(out, tc.say) {
				t.Errorf("the output lacks %q:\n%s", tc.say, out)
			}
		})
	}
}
