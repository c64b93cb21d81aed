package e2e

// The admin shell with the real OpenSSH client: `ssh admin@bastion COMMAND`
// parsed as a script would, the interactive shell in a terminal (tmux) with
// Tab completion and a followed audit log, CA rotations that never refuse a
// login, the replay of a recorded session, and a disabled user's live
// session ended.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// adminEnv is a dev node with alice's key bound to her (an admin), and an
// ssh_config that trusts the cluster's host CAs.
type adminEnv struct {
	*policyEnv
	// targetCA is the target host CA's key, trusted for the targets the
	// jump reaches.
	targetCA string
}

func setupAdmin(t *testing.T) *adminEnv {
	t.Helper()
	e := &adminEnv{policyEnv: signedInEnv(t, StartDevNode(t, "admin", newIP(t, "admin node")))}
	// signedInEnv's known_hosts has checked that the target host CA has
	// one key.
	hostCA := hostCAKeys(t, e.api())
	e.targetCA = hostCA.Keys[0]
	return e
}

// trustHostCAs writes the known_hosts file: an @cert-authority line per
// node host CA key, as `rampart setup` keeps it during a node host CA
// rotation, and the target host CA's line.
func (e *adminEnv) trustHostCAs(t testing.TB, keys ...string) {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "@cert-authority * %s\n", k)
	}
	fmt.Fprintf(&b, "@cert-authority * %s\n", e.targetCA)
	fatalIf(t, os.WriteFile(e.knownHosts, []byte(b.String()), 0o600))
}

// admin runs one admin command with OpenSSH, no terminal, no prompts.
func (e *adminEnv) admin(t testing.TB, opts []string, command ...string) sshResult {
	t.Helper()
	args := append([]string{"ssh", "-F", e.config, "-T", "-o", "BatchMode=yes"}, opts...)
	return runSSH(t, append(append(args, "admin@"+e.node.IP), command...))
}

// mustAdmin runs an admin command that must succeed and returns its stdout.
func (e *adminEnv) mustAdmin(t testing.TB, command ...string) string {
	t.Helper()
	r := e.admin(t, nil, command...)
	if r.code != 0 {
		t.Fatalf("ssh admin@… %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(command, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func adminJSON[T any](t testing.TB, e *adminEnv, command ...string) T {
	t.Helper()
	out := e.mustAdmin(t, append(command, "--json")...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%s --json is not the JSON expected (%v):\n%s", strings.Join(command, " "), err, out)
	}
	return v
}

// adminCAKey is a CA key as `ca rotate --json` and `ca ls --json` show it.
type adminCAKey struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Role      string `json:"role"`
	PublicKey string `json:"public_key"`
}

type adminRotation struct {
	Phase    string      `json:"phase"`
	Active   *adminCAKey `json:"active"`
	Waiting  *adminCAKey `json:"waiting"`
	Previous *adminCAKey `json:"previous"`
}

// adminCAKeys are the CA keys the API tells targets and clients to trust,
// sorted (the API lists them by record id).
func adminCAKeys(t testing.TB, e *adminEnv, keys func(testing.TB, *client.Client) api.CAKeys) []string {
	t.Helper()
	k := keys(t, e.api())
	slices.Sort(k.Keys)
	return k.Keys
}

// webUserCAKeys is project web's user CA keys.
func webUserCAKeys(t testing.TB, c *client.Client) api.CAKeys {
	t.Helper()
	return userCAKeys(t, c, "web")
}

func adminSorted(keys ...string) []string {
	return slices.Sorted(slices.Values(keys))
}

func TestAdminShellOpenSSH(t *testing.T) {
	e := setupAdmin(t)
	_, hostPub, _ := adminHostKey(t)
	writeProject(t, e.api(), "web", api.Project{Description: "web servers"})
	putServer(t, e.api(), "db-1", api.Server{Project: "web", Name: "db-1", Addr: "192.0.2.10",
		Labels: map[string]string{"env": "prod"}, HostKeys: []string{hostPub}})

	t.Run("ok/servers-ls-json", func(t *testing.T) {
		type server struct {
			ID      string            `json:"id"`
			Name    string            `json:"name"`
			Project string            `json:"project"`
			Addr    string            `json:"addr"`
			SSHPort int               `json:"ssh_port"`
			Labels  map[string]string `json:"labels"`
		}
		servers := adminJSON[[]server](t, e, "servers", "ls")
		if len(servers) != 1 || servers[0].Name != "db-1" || servers[0].Project != "web" || servers[0].Addr != "192.0.2.10" ||
			servers[0].SSHPort != 22 || servers[0].Labels["env"] != "prod" {
			t.Fatalf("servers ls --json = %+v", servers)
		}
		// The same command for people: an aligned table.
		if out := e.mustAdmin(t, "servers", "ls"); !strings.Contains(out, "NAME") || !strings.Contains(out, "db-1") {
			t.Errorf("servers ls:\n%s", out)
		}
	})
	t.Run("fail/misuse-and-refusals", func(t *testing.T) {
		for _, tc := range []struct {
			command []string
			code    int
			want    string
		}{
			{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
			{[]string{"servers", "ls", "--frob"}, 2, "unknown flag: --frob"},
			{[]string{"servers", "show", "nope"}, 1, `server "nope": not found`},
			{[]string{"servers", "delete", "db-1"}, 1, "run it again with --yes"},
		} {
			r := e.admin(t, nil, tc.command...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Errorf("%s: exit %d, want %d and %q\nstdout %q\nstderr %q", strings.Join(tc.command, " "), r.code, tc.code, tc.want, r.stdout, r.stderr)
			}
		}
	})

	t.Run("ok/interactive-tab-completion", func(t *testing.T) {
		dir := filepath.Join(e.dir, "interactive")
		fatalIf(t, os.Mkdir(dir, 0o700))
		term := startTerminal(t, dir, []string{"ssh", "-F", e.config, "-t", "admin@" + e.node.IP})
		adminWaitPrompt(t, term, 1)
		adminKeys(t, term, "proj", "Tab")
		term.WaitScreen(waitLong, "projects completed", adminScreenHas("rampart> projects"))
		adminKeys(t, term, "ls", "Enter")
		term.WaitScreen(waitLong, "projects ls", adminScreenHas("rampart> projects ls", "web servers"))
		adminWaitPrompt(t, term, 2)
		// Two commands start with "ser": Tab twice lists both.
		adminKeys(t, term, "ser", "Tab", "Tab")
		term.WaitScreen(waitLong, "the completions of ser", adminScreenHas("servers  service-tokens"))
		adminKeys(t, term, "C-u", "servers show d", "Tab", "Enter")
		term.WaitScreen(waitLong, "servers show db-1", adminScreenHas("rampart> servers show db-1", "192.0.2.10:22"))
		adminWaitPrompt(t, term, 4)

		// Follow the audit log; a change made from another connection shows
		// up; Ctrl-C returns to the prompt.
		adminKeys(t, term, "audit tail -f -n 1", "Enter")
		term.WaitScreen(waitLong, "the audit log followed", adminScreenHas("Ctrl-C stops"))
		e.mustAdmin(t, "projects", "create", "tailed")
		term.WaitScreen(waitLong, "the new event", adminScreenHas("project.create", "project=tailed"))
		adminKeys(t, term, "C-c")
		adminWaitPrompt(t, term, 5)
		adminKeys(t, term, "exit", "Enter")
		if screen, code := waitExit(t, term); code != 0 {
			t.Fatalf("the admin shell exited %d:\n%s", code, screen)
		}
	})

	t.Run("ok/audit-tail-json", func(t *testing.T) {
		out := e.mustAdmin(t, "audit", "tail", "-n", "2", "--type", "project", "--json")
		sc := bufio.NewScanner(strings.NewReader(out))
		var types, actors []string
		for sc.Scan() {
			var ev struct {
				Type  string `json:"type"`
				Actor string `json:"actor"`
				Hash  string `json:"hash"`
			}
			fatalIf(t, json.Unmarshal(sc.Bytes(), &ev), "audit tail line "+sc.Text())
			types, actors = append(types, ev.Type), append(actors, ev.Actor)
		}
		// The setup's project, created through the API with the bootstrap
		// token, then the shell's.
		if !slices.Equal(types, []string{"project.create", "project.create"}) || !slices.Equal(actors, []string{"api:bootstrap", "alice"}) {
			t.Errorf("audit tail -n 2 --type project --json: %v by %v\n%s", types, actors, out)
		}
	})

	// The node host CA rotates while clients that trust both keys keep
	// connecting; after promote the node presents a certificate of the new
	// key without a restart.
	t.Run("ok/node-host-ca-rotation", func(t *testing.T) {
		oldKey := adminCAKeys(t, e, nodeHostCAKeys)[0]
		r := adminJSON[adminRotation](t, e, "ca", "rotate", "node-host", "begin")
		if r.Phase != "staged" || r.Waiting == nil || r.Active == nil || r.Active.PublicKey != oldKey {
			t.Fatalf("begin: %+v", r)
		}
		newKey := r.Waiting.PublicKey
		if got := adminCAKeys(t, e, nodeHostCAKeys); !slices.Equal(got, adminSorted(oldKey, newKey)) {
			t.Fatalf("node host CA keys after begin: %v", got)
		}
		onlyNew := filepath.Join(e.dir, "known_hosts.new")
		fatalIf(t, os.WriteFile(onlyNew, []byte("@cert-authority * "+newKey+"\n"), 0o600))
		if r := e.admin(t, []string{"-o", "UserKnownHostsFile=" + onlyNew}, "whoami"); r.code != 255 || !strings.Contains(r.stderr, "Host key verification failed") {
			t.Fatalf("before promote the node must still present the old key's certificate: exit %d, %s", r.code, r.stderr)
		}
		e.trustHostCAs(t, oldKey, newKey)
		e.mustAdmin(t, "whoami")

		e.mustAdmin(t, "ca", "rotate", "node-host", "promote", "--yes")
		promoted := time.Now()
		fatalIf(t, waitFor(waitLong, func() error {
			if r := e.admin(t, []string{"-o", "UserKnownHostsFile=" + onlyNew}, "whoami"); r.code != 0 {
				return fmt.Errorf("exit %d: %s", r.code, r.stderr)
			}
			return nil
		}), "connect trusting only the new node host CA")
		t.Logf("front door re-signed %s after promote", time.Since(promoted).Round(time.Millisecond))
		e.mustAdmin(t, "whoami")

		r = adminJSON[adminRotation](t, e, "ca", "rotate", "node-host", "retire", "--yes")
		if r.Phase != "stable" || r.Active.PublicKey != newKey {
			t.Fatalf("retire: %+v", r)
		}
		if got := adminCAKeys(t, e, nodeHostCAKeys); !slices.Equal(got, []string{newKey}) {
			t.Fatalf("node host CA keys after retire: %v", got)
		}
		e.trustHostCAs(t, newKey)
		keys := adminJSON[[]adminCAKey](t, e, "ca", "ls", "--kind", "node-host")
		if len(keys) != 2 || keys[0].State != "retired" || keys[1].Role != "signing" || keys[1].PublicKey != newKey {
			t.Errorf("ca ls --kind node-host --json: %+v", keys)
		}
	})
}

// waitAdminPrompt waits for the n-th prompt of the shell.
func adminWaitPrompt(t *testing.T, term *terminal, n int) {
	t.Helper()
	term.WaitScreen(waitLong, fmt.Sprintf("prompt %d of the admin shell", n), func(screen string) error {
		if m := exitMarker.FindStringSubmatch(screen); m != nil {
			return stopWaiting(fmt.Errorf("ssh exited %s", m[1]))
		}
		if got := strings.Count(screen, "rampart> "); got < n {
			return fmt.Errorf("%d prompts", got)
		}
		return nil
	})
}

func adminKeys(t *testing.T, term *terminal, keys ...string) {
	t.Helper()
	out, err := term.tmux(append([]string{"send-keys", "-t", "rampart"}, keys...)...)
	fatalIf(t, err, "tmux send-keys: "+out)
}

func adminScreenHas(want ...string) func(string) error {
	return func(screen string) error {
		if m := exitMarker.FindStringSubmatch(screen); m != nil {
			return stopWaiting(fmt.Errorf("ssh exited %s", m[1]))
		}
		for _, w := range want {
			if !strings.Contains(screen, w) {
				return fmt.Errorf("no %q on the screen", w)
			}
		}
		return nil
	}
}

func adminHostKey(t testing.TB) (gossh.PublicKey, string, error) {
	t.Helper()
	pk, err := gossh.NewPublicKey(mustEd25519(t))
	fatalIf(t, err)
	return pk, strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pk))), nil
}

// A project's user CA rotates under a real target: logins through the jump
// work at every step; a recorded session replays from the admin shell, and
// a tampered recording is refused; disabling the user ends their live
// session.
func TestAdminCARotationReplayAndDisable(t *testing.T) {
	e := setupAdmin(t)
	e.setProject(t, api.ProjectSettings{Recording: new(true)})
	grant(t, e.api(), "web", "engineering")
	userCA := e.userCA(t, "web")
	e.target = e.startTarget(t, "web-1", newIP(t, "web-1"), "web", userCA, true, nil)
	hop := func(t *testing.T, what string, wantOK bool) {
		t.Helper()
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-1", "echo hop-ok")
		if ok := r.code == 0 && strings.TrimSpace(r.stdout) == "hop-ok"; ok != wantOK {
			t.Fatalf("%s: ssh -J web-1 exit %d (want success %v)\nstderr:\n%s", what, r.code, wantOK, r.stderr)
		}
	}
	trust := func(t *testing.T, keys ...string) {
		t.Helper()
		var pks []gossh.PublicKey
		for _, k := range keys {
			pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(k))
			fatalIf(t, err)
			pks = append(pks, pk)
		}
		fatalIf(t, e.target.TrustCA(pks...), "trust")
	}

	t.Run("ok/user-ca-rotation", func(t *testing.T) {
		hop(t, "before the rotation", true)
		oldKey := userCA.Keys[0]
		r := adminJSON[adminRotation](t, e, "ca", "rotate", "web", "begin")
		newKey := r.Waiting.PublicKey
		if got := adminCAKeys(t, e, webUserCAKeys); !slices.Equal(got, adminSorted(oldKey, newKey)) {
			t.Fatalf("user CA keys after begin: %v", got)
		}
		// The target has not learned the new key yet: the old one still signs.
		hop(t, "after begin, target trusting the old key only", true)
		trust(t, oldKey, newKey)
		hop(t, "after begin, target trusting both", true)

		e.mustAdmin(t, "ca", "rotate", "web", "promote", "--yes")
		hop(t, "after promote, target trusting both", true)
		trust(t, newKey)
		hop(t, "after promote, target trusting the new key only", true)
		trust(t, oldKey)
		hop(t, "after promote, target trusting the old key only", false)
		trust(t, oldKey, newKey)

		e.mustAdmin(t, "ca", "rotate", "web", "retire", "--yes")
		if got := adminCAKeys(t, e, webUserCAKeys); !slices.Equal(got, []string{newKey}) {
			t.Fatalf("user CA keys after retire: %v", got)
		}
		trust(t, newKey)
		hop(t, "after retire", true)
	})

	// The same rotation again, through the HTTPS API with an admin service
	// token (one service behind the shell and the API): the jump works with
	// the key it makes, and each step is audited by the token.
	t.Run("ok/user-ca-rotation-api", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		c := e.api()
		before := adminCAKeys(t, e, webUserCAKeys)
		if len(before) != 1 {
			t.Fatalf("user CA keys before: %v", before)
		}
		oldKey := before[0]
		r, err := c.RotateUserCA(ctx, "web", client.RotationBegin, "ecdsa-p256")
		fatalIf(t, err, "POST /v1/ca/user/web/rotation/begin")
		if r.Phase != "staged" || r.Active == nil || r.Active.PublicKey != oldKey || r.Waiting == nil || r.Waiting.Algorithm != "ecdsa-sha2-nistp256" {
			t.Fatalf("after begin: %+v", r)
		}
		newKey := r.Waiting.PublicKey
		hop(t, "API begin, target trusting the old key only", true)
		trust(t, oldKey, newKey)
		r, err = c.RotateUserCA(ctx, "web", client.RotationPromote, "")
		fatalIf(t, err, "POST /v1/ca/user/web/rotation/promote")
		if r.Phase != "promoted" || r.Active.PublicKey != newKey {
			t.Fatalf("after promote: %+v", r)
		}
		trust(t, newKey)
		hop(t, "API promote, target trusting the new key only", true)
		if _, err := c.RotateUserCA(ctx, "web", client.RotationPromote, ""); client.StatusOf(err) != http.StatusConflict {
			t.Fatalf("a second promote: %v, want 409", err)
		}
		r, err = c.RotateUserCA(ctx, "web", client.RotationRetire, "")
		fatalIf(t, err, "POST /v1/ca/user/web/rotation/retire")
		if got := adminCAKeys(t, e, webUserCAKeys); r.Phase != "stable" || !slices.Equal(got, []string{newKey}) {
			t.Fatalf("after retire: %+v, keys %v", r, got)
		}
		hop(t, "after the API rotation", true)
		p, err := c.Audit(ctx, client.ListOptions{Filter: url.Values{"type": {"ca"}}})
		fatalIf(t, err, "GET /v1/audit?type=ca")
		var steps []string
		for _, ev := range p.Items {
			if strings.HasPrefix(ev.Actor, "api:") {
				steps = append(steps, ev.Type)
			}
		}
		if want := []string{"ca.rotate_begin", "ca.rotate_promote", "ca.rotate_retire"}; !slices.Equal(steps, want) {
			t.Fatalf("audited API steps %v, want %v", steps, want)
		}
	})

	t.Run("ok/replay-recorded-session", func(t *testing.T) {
		type session struct {
			ID              string `json:"id"`
			Status          string `json:"status"`
			RecordingSHA256 string `json:"recording_sha256"`
		}
		// Exec sessions are recorded too: the hops above have recordings.
		before := map[string]bool{}
		for _, s := range adminJSON[[]session](t, e, "sessions", "ls") {
			before[s.ID] = true
		}
		r := e.ssh(t, []string{"-tt"}, "alice@web-1", "echo hello-$((6*7))")
		if r.code != 0 {
			t.Fatalf("recorded session: exit %d: %s", r.code, r.stderr)
		}
		var id string
		fatalIf(t, waitFor(waitLong, func() error {
			for _, s := range adminJSON[[]session](t, e, "sessions", "ls") {
				if !before[s.ID] && s.Status == "closed" && s.RecordingSHA256 != "" {
					id = s.ID
					return nil
				}
			}
			return errors.New("no closed, recorded session yet")
		}), "the recorded session")
		out := e.mustAdmin(t, "sessions", "replay", id, "--speed", "0")
		if !strings.Contains(out, "hello-42") || !strings.Contains(out, "end of session "+id) {
			t.Fatalf("replay:\n%q", out)
		}
		cast := e.mustAdmin(t, "sessions", "replay", id, "--cast")
		if !strings.HasPrefix(cast, `{"version":2`) || !strings.Contains(cast, "hello-42") {
			t.Fatalf("replay --cast:\n%q", cast)
		}
		// Someone edits the recording on the node's disk.
		files, _ := filepath.Glob(filepath.Join(e.node.DataDir, "recordings", "*", id+".cast"))
		if len(files) != 1 {
			t.Fatalf("recording files of %s: %v", id, files)
		}
		data, err := os.ReadFile(files[0])
		fatalIf(t, err)
		fatalIf(t, os.WriteFile(files[0], []byte(strings.ReplaceAll(string(data), "hello-42", "hello-43")), 0o600))
		res := e.admin(t, nil, "sessions", "replay", id, "--speed", "0")
		if res.code != 1 || !strings.Contains(res.stderr, "does not match the SHA-256 recorded when the session closed") || strings.Contains(res.stdout, "hello-43") {
			t.Fatalf("tampered recording: exit %d\nstdout %q\nstderr %q", res.code, res.stdout, res.stderr)
		}
	})

	// Last: alice disables herself, and her live hop ends.
	t.Run("ok/disable-ends-live-session", func(t *testing.T) {
		s := startRunningSSH(t, []string{"ssh", "-F", e.config, "-J", "alice@" + net.JoinHostPort(e.node.IP, portSSH), "alice@web-1", "echo started; sleep 300"})
		disabled := time.Now()
		out := e.mustAdmin(t, "users", "disable", "alice")
		if !strings.Contains(out, "every node ends their live sessions") {
			t.Errorf("users disable: %q", out)
		}
		s.waitEnded(t, "ssh admin@… users disable alice", disabled)
		if !strings.Contains(s.stderr.String(), "disabled") {
			t.Errorf("the person was not told why: %q", s.stderr.String())
		}
		if r := e.admin(t, nil, "whoami"); r.code != 255 || !strings.Contains(r.stderr, "disabled") {
			t.Errorf("a disabled admin signed in again: exit %d, %s", r.code, r.stderr)
		}
	})
}
