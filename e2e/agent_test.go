package e2e

// The agent tests: the real rampart-agent, run inside a target's mount
// namespace so that it sees the target's own /etc, enrolls with a token made
// by the admin shell and configures everything on the target itself
// (accounts, groups, sudoers, sshd trust); then the real OpenSSH client
// reaches the target through a dev node with no hand-written target config.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/agent/hostapply"
	"github.com/rampart-ssh/rampart/api"
)

// managedAccounts lists the target's /etc/passwd entries carrying the
// agent's marker.
func managedAccounts(t testing.TB, tg *Target) []string {
	t.Helper()
	b, err := os.ReadFile(tg.Path("/etc/passwd"))
	fatalIf(t, err)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) == 7 && f[4] == hostapply.Marker {
			out = append(out, l)
		}
	}
	return out
}

// hostEtcDigest fingerprints what of this machine's own /etc and /var/lib
// an agent would touch if it ever ran outside its target: the account
// database, sudoers, sshd's config, and whether the agent's files exist.
func hostEtcDigest(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	var files []string
	for _, pat := range []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/sudoers",
		"/etc/sudoers.d/*", "/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/*", "/etc/ssh/rampart*"} {
		m, err := filepath.Glob(pat)
		fatalIf(t, err)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			out[f] = "unreadable: " + err.Error()
			continue
		}
		sum := sha256.Sum256(b)
		out[f] = hex.EncodeToString(sum[:])
	}
	for _, p := range []string{"/etc/rampart-agent", "/var/lib/rampart-agent", "/home/alice", "/etc/ssh/rampart_principals"} {
		_, err := os.Lstat(p)
		out[p+" exists"] = strconv.FormatBool(err == nil)
	}
	return out
}

// setupAgentNode starts the dev node, binds alice's key, creates project web
// granted to engineering with the nginx-reload sudo entitlement.
func setupAgentNode(t *testing.T) *policyEnv {
	t.Helper()
	return setupAgentNodeOn(t, "agent")
}

// setupAgentNodeOn is setupAgentNode with the dev node named name.
func setupAgentNodeOn(t *testing.T, name string) *policyEnv {
	t.Helper()
	e := signedInEnv(t, StartDevNode(t, name, newIP(t, name+" node")))
	e.setProject(t, api.ProjectSettings{})
	e.admin(t, "entitlements", "create", "nginx-reload", "--command", "'/usr/sbin/nginx -s reload'", "--nopasswd")
	e.admin(t, "projects", "grant", "web", "engineering", "--sudo", "nginx-reload")
	return e
}

// clusterGID is a group's gid as the cluster allocated it.
func clusterGID(t testing.TB, e *policyEnv, group string) uint32 {
	t.Helper()
	out := e.admin(t, "groups", "show", group, "--json").stdout
	var g struct {
		GID uint32 `json:"gid"`
	}
	fatalIf(t, json.Unmarshal([]byte(out), &g), "groups show "+group+" --json: "+out)
	if g.GID == 0 {
		t.Fatalf("groups show %s --json: no gid in %s", group, out)
	}
	return g.GID
}

// targetGroups is `id -Gn user` inside the target.
func targetGroups(tg *Target, user string) ([]string, error) {
	out, err := tg.Exec(context.Background(), "id", "-Gn", user)
	return strings.Fields(out), err
}

// targetGID is a group's gid inside the target (getent group).
func targetGID(t testing.TB, tg *Target, group string) uint32 {
	t.Helper()
	out, err := tg.Exec(context.Background(), "getent", "group", group)
	fatalIf(t, err)
	f := strings.Split(strings.TrimSpace(out), ":")
	if len(f) < 3 {
		t.Fatalf("getent group %s: %q", group, out)
	}
	gid, err := strconv.ParseUint(f[2], 10, 32)
	fatalIf(t, err, "getent group "+group)
	return uint32(gid)
}

func TestAgentProvisionsTarget(t *testing.T) {
	// Registered first, so that it runs last, after every target is gone.
	checkHostUnchanged(t, hostEtcDigest)

	start := time.Now()
	e := setupAgentNode(t)
	t.Logf("dev node, alice bound, project web granted: %s", time.Since(start).Round(time.Millisecond))

	var who struct {
		UID    uint32   `json:"uid"`
		Groups []string `json:"groups"`
	}
	r := runSSH(t, []string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes", "alice@" + e.node.IP, "whoami", "--json"})
	if r.code != 0 {
		t.Fatalf("whoami --json: exit %d: %s", r.code, r.stderr)
	}
	fatalIf(t, json.Unmarshal([]byte(r.stdout), &who), "whoami --json")
	if who.UID < 1000 || !slices.Contains(who.Groups, "engineering") || !slices.Contains(who.Groups, "rampart-admins") {
		t.Fatalf("whoami: %+v, want a uid of 1000 or above and groups engineering and rampart-admins", who)
	}
	engGID := clusterGID(t, e, "engineering")

	token := e.enrollToken(t)
	if _, err := api.ParseToken(token); err != nil || strings.Contains(token, "\n") {
		t.Fatalf("tokens create --quiet printed %q: %v", token, err)
	}

	// No AddUser, no TrustCA, no host certificate: the agent does it all.
	tg := newAgentTarget(t, e.node, "web-1", newIP(t, "web-1"), token)
	fatalIf(t, tg.Start(), "start web-1")
	sshdOffset := tg.LogOffset()
	agentStart := time.Now()
	ag := startAgent(t, tg)

	// Enrolled: the token is gone.
	fatalIf(t, waitFor(waitLong, func() error {
		if _, err := os.Stat(tg.Path(agentTokenFile)); !errors.Is(err, os.ErrNotExist) {
			if err := ag.alive(); err != nil {
				return err
			}
			return fmt.Errorf("token file still there (%v)", err)
		}
		return nil
	}), "enrollment")
	t.Logf("enrolled after %s", time.Since(agentStart).Round(time.Millisecond))
	if parsed, _ := api.ParseToken(token); strings.Contains(string(mustRead(t, ag.log)), parsed.Secret) {
		t.Errorf("the agent logged the token's secret")
	}

	// Applied: alice with her groups, the sudo rule, sshd reloaded with the
	// drop-in (a reloaded sshd logs that it listens again).
	listening := regexp.MustCompile(`Server listening on ` + regexp.QuoteMeta(tg.IP()) + ` port 22\.`)
	ag.waitApplied(t, "first apply", func() error {
		if gs, err := targetGroups(tg, "alice"); err != nil || !slices.Contains(gs, "engineering") {
			return fmt.Errorf("id -Gn alice: %v, %v", gs, err)
		}
		for _, f := range []string{agentSudoers, agentDropIn, agentCAKeys, agentAlicePrin} {
			if _, err := os.Stat(tg.Path(f)); err != nil {
				return err
			}
		}
		lines, err := readLinesFrom(tg.LogPath(), sshdOffset)
		if err != nil || !slices.ContainsFunc(lines, listening.MatchString) {
			return fmt.Errorf("sshd has not listened again since the agent started (%v)", err)
		}
		return nil
	})
	t.Logf("applied after %s", time.Since(agentStart).Round(time.Millisecond))

	t.Run("ok/servers-ls-last-seen", func(t *testing.T) {
		// The agent's polls are recorded: servers ls says when it last
		// called, not "never".
		var servers []struct {
			Name     string     `json:"name"`
			LastSeen *time.Time `json:"last_seen"`
		}
		out := e.admin(t, "servers", "ls", "--json").stdout
		fatalIf(t, json.Unmarshal([]byte(out), &servers), "servers ls --json: "+out)
		if len(servers) != 1 || servers[0].Name != "web-1" || servers[0].LastSeen == nil || servers[0].LastSeen.Before(agentStart.Add(-time.Second)) {
			t.Errorf("servers ls --json: %s; want web-1 last seen since its agent started", out)
		}
		if table := e.admin(t, "servers", "ls").stdout; strings.Contains(table, "never") {
			t.Errorf("servers ls:\n%s", table)
		}
	})

	t.Run("ok/accounts-with-cluster-ids", func(t *testing.T) {
		out, err := tg.Exec(context.Background(), "id", "-u", "alice")
		fatalIf(t, err)
		if got := strings.TrimSpace(out); got != strconv.FormatUint(uint64(who.UID), 10) {
			t.Errorf("alice's uid on the target is %s, the cluster's is %d", got, who.UID)
		}
		if got := targetGID(t, tg, "engineering"); got != engGID {
			t.Errorf("engineering's gid on the target is %d, the cluster's is %d", got, engGID)
		}
		if got := targetGID(t, tg, "alice"); got != who.UID {
			t.Errorf("alice's private group has gid %d, want her uid %d", got, who.UID)
		}
		if m := managedAccounts(t, tg); len(m) != 1 || !strings.HasPrefix(m[0], "alice:") {
			t.Errorf("managed accounts in the target's /etc/passwd: %q, want alice only", m)
		}
	})
	t.Run("ok/sudoers", func(t *testing.T) {
		if out, err := tg.Exec(context.Background(), "visudo", "-c"); err != nil {
			t.Fatalf("visudo -c: %v\n%s", err, out)
		}
		out, err := tg.Exec(context.Background(), "sudo", "-l", "-U", "alice")
		fatalIf(t, err)
		if !regexp.MustCompile(`\(root\) (\w+: )*NOPASSWD: /usr/sbin/nginx -s reload\n`).MatchString(out) {
			t.Errorf("sudo -l -U alice does not list the entitlement:\n%s", out)
		}
	})
	t.Run("ok/sshd-config", func(t *testing.T) {
		fatalIf(t, tg.CheckConfig())
		out, err := tg.Exec(context.Background(), "/usr/sbin/sshd", "-T", "-f", targetSSHDConfig)
		fatalIf(t, err)
		// The harness's own files come after the Include; the agent's win.
		for _, want := range []string{"trustedusercakeys " + agentCAKeys, "authorizedprincipalsfile /etc/ssh/rampart_principals/%u",
			"hostcertificate /etc/ssh/rampart_host_ssh-ed25519-cert.pub"} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("sshd -T lacks %q", want)
			}
		}
	})
	t.Run("ok/jump", func(t *testing.T) {
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-1", "id -un")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
			t.Fatalf("ssh -J alice@node alice@web-1 id -un: exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// A group change travels through the long-poll.
	t.Run("ok/group-change", func(t *testing.T) {
		changed := time.Now()
		grant(t, e.api(), "web", "rampart-admins")
		fatalIf(t, waitFor(waitLong, func() error {
			if err := ag.alive(); err != nil {
				return err
			}
			if gs, err := targetGroups(tg, "alice"); err != nil || !slices.Contains(gs, "rampart-admins") {
				return fmt.Errorf("id -Gn alice: %v, %v", gs, err)
			}
			return nil
		}))
		t.Logf("rampart-admins reached alice on the target %s after the grant", time.Since(changed).Round(time.Millisecond))
		if got, want := targetGID(t, tg, "rampart-admins"), clusterGID(t, e, "rampart-admins"); got != want {
			t.Errorf("rampart-admins' gid on the target is %d, the cluster's is %d", got, want)
		}
	})

	// Deprovisioning: alice loses every grant on web while a process of
	// hers runs on the target.
	t.Run("ok/deprovision", func(t *testing.T) {
		uid := strconv.FormatUint(uint64(who.UID), 10)
		sleep, err := tg.Command(context.Background(), "setpriv", "--reuid", uid, "--regid", uid, "--init-groups", "sleep", "300")
		fatalIf(t, err)
		fatalIf(t, sleep.Start(), "start alice's sleep")
		ended := make(chan struct{})
		go func() { _ = sleep.Wait(); close(ended) }()
		t.Cleanup(func() { _ = sleep.Process.Kill(); <-ended })
		statusUID := regexp.MustCompile(`(?m)^Uid:\s+` + uid + `\s`)
		fatalIf(t, waitFor(waitLong, func() error {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", sleep.Process.Pid))
			if err != nil || !statusUID.Match(b) {
				return fmt.Errorf("alice's sleep not running as uid %s yet (%v)", uid, err)
			}
			return nil
		}), "alice's sleep")

		revoked := time.Now()
		for _, g := range []string{"engineering", "rampart-admins"} {
			revoke(t, e.api(), "web", g)
		}
		ag.waitApplied(t, "deprovision", func() error {
			select {
			case <-ended:
			default:
				return errors.New("alice's sleep is still running")
			}
			out, err := tg.Exec(context.Background(), "getent", "shadow", "alice")
			f := strings.Split(strings.TrimSpace(out), ":")
			if err != nil || len(f) < 9 {
				return fmt.Errorf("getent shadow alice: %q, %v", out, err)
			}
			if !strings.HasPrefix(f[1], "!") || f[7] != "1" {
				return fmt.Errorf("alice is not locked and expired yet: password field %q, expiry %q", f[1], f[7])
			}
			if _, err := os.Stat(tg.Path(agentAlicePrin)); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("alice's principals file is still there (%v)", err)
			}
			return nil
		})
		t.Logf("alice locked, expired and her processes ended %s after the revocation", time.Since(revoked).Round(time.Millisecond))
		if out, err := tg.Exec(context.Background(), "chage", "-l", "alice"); err != nil || !strings.Contains(out, "1970") {
			t.Errorf("chage -l alice: %v\n%s", err, out)
		}
		if gs, err := targetGroups(tg, "alice"); err != nil || slices.Contains(gs, "engineering") || slices.Contains(gs, "rampart-admins") {
			t.Errorf("id -Gn alice after deprovisioning: %v, %v", gs, err)
		}
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-1", "true")
		if r.code == 0 {
			t.Fatalf("ssh -J … alice@web-1 after deprovisioning: exit 0; stderr:\n%s", r.stderr)
		}
		t.Logf("ssh -J after deprovisioning: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	})

	// Bad input: each agent exits with a clear error and changes nothing.
	t.Run("bad-tokens", func(t *testing.T) {
		// A grant again, so that a wrongly enrolled agent would have
		// something to create.
		grant(t, e.api(), "web", "engineering")
		// As tokens create --json and tokens ls --json print them.
		type created struct {
			Token     string    `json:"token"`
			Hash      string    `json:"hash"`
			ExpiresAt time.Time `json:"expires_at"`
			UsesLeft  *int      `json:"uses_left"`
		}
		newToken := func(t testing.TB, args ...string) created {
			out := e.admin(t, append([]string{"tokens", "create", "web", "--json"}, args...)...).stdout
			var c created
			fatalIf(t, json.Unmarshal([]byte(out), &c), "tokens create --json: "+out)
			return c
		}
		bad := NewTarget(t, TargetConfig{Name: "web-bad", IP: newIP(t, "web-bad"), UsePAM: true, HostKeyTypes: []string{"ed25519"}})
		var pinned created
		for _, tc := range []struct {
			name  string
			token func(t *testing.T) string
			want  string
		}{
			{"fail/malformed-token", func(*testing.T) string { return "rpt1_not-a-token!" }, "malformed token"},
			{"fail/used-up-token", func(*testing.T) string { return token }, "used up"},
			{"fail/expired-token", func(t *testing.T) string {
				c := newToken(t, "--ttl", "1s", "--uses", "1")
				// What is tested is the expiry itself: wait it out.
				time.Sleep(time.Until(c.ExpiresAt) + 500*time.Millisecond)
				return c.Token
			}, "enrollment token has expired"},
			{"fail/wrong-ca-pin", func(t *testing.T) string {
				pinned = newToken(t, "--uses", "1")
				tok, err := api.ParseToken(pinned.Token)
				fatalIf(t, err)
				sum := sha256.Sum256([]byte("not the cluster CA " + randomHex(t)))
				tok.CAPin = "sha256:" + hex.EncodeToString(sum[:])
				return tok.String()
			}, "does not match the pin"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				token := tc.token(t)
				writeAgentFiles(t, bad, e.node, token)
				ctx, cancel := context.WithTimeout(context.Background(), waitLong)
				defer cancel()
				cmd, logPath := agentCommand(ctx, t, bad)
				err := cmd.Run()
				out, _ := os.ReadFile(logPath)
				var ee *exec.ExitError
				if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("agent: %v (ctx %v), want exit status 1; output:\n%s", err, ctx.Err(), out)
				}
				if !strings.Contains(string(out), tc.want) {
					t.Errorf("agent output does not say %q:\n%s", tc.want, out)
				}
				t.Logf("agent refused:\n%s", strings.TrimSpace(string(out)))
				if tok, err := api.ParseToken(token); err == nil && strings.Contains(string(out), tok.Secret) {
					t.Errorf("the agent printed the token's secret")
				}
				if m := managedAccounts(t, bad); len(m) > 0 {
					t.Errorf("accounts created: %q", m)
				}
				if _, err := os.Stat(bad.Path(agentTokenFile)); err != nil {
					t.Errorf("the token file is gone after a failed enrollment: %v", err)
				}
				if _, err := os.Stat(bad.Path(agentDataDir + "/identity.json")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("identity.json after a failed enrollment: %v", err)
				}
				for _, f := range []string{agentSudoers, agentDropIn, agentCAKeys} {
					if _, err := os.Stat(bad.Path(f)); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s exists after a failed enrollment (%v)", f, err)
					}
				}
			})
		}
		// The wrong pin stopped the agent before it sent the secret: the
		// token is still unspent.
		if pinned.Hash != "" {
			out := e.admin(t, "tokens", "ls", "--project", "web", "--json").stdout
			var toks []created
			fatalIf(t, json.Unmarshal([]byte(out), &toks), "tokens ls --json: "+out)
			i := slices.IndexFunc(toks, func(c created) bool { return c.Hash == pinned.Hash })
			if i < 0 || toks[i].UsesLeft == nil || *toks[i].UsesLeft != 1 {
				t.Errorf("the token behind the wrong pin was spent or is gone: %s", out)
			}
		}
	})
}
