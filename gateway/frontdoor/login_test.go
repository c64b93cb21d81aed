package frontdoor

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/raftstore"
)

func whoamiOf(t *testing.T, c *gossh.Client) Whoami {
	t.Helper()
	out, errOut, code := run(t, c, "whoami --json")
	if code != 0 {
		t.Fatalf("whoami exit %d: %s", code, errOut)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("whoami --json is not one line: %q", out)
	}
	var w Whoami
	if err := json.Unmarshal([]byte(out), &w); err != nil {
		t.Fatalf("whoami --json: %v in %q", err, out)
	}
	return w
}

func TestFirstLoginThenBoundKeyWithoutIdP(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	key := newKey(t)

	c := &client{key: key, onPrompt: approveAs("alice", "alice-pw")}
	conn, err := c.dial(t, d.addr)
	if err != nil {
		t.Fatalf("first login: %v (banner %q)", err, c.banner())
	}
	if !c.prompted {
		t.Fatal("first login did not run the device flow")
	}
	if len(c.instruction) >= 1000 || !isPlainASCII(c.instruction) {
		t.Fatalf("instruction must be plain ASCII under 1000 bytes: %d bytes %q", len(c.instruction), c.instruction)
	}
	if !strings.Contains(c.instruction, "user_code=") || !strings.Contains(c.instruction, "enter the code") {
		t.Fatalf("instruction lacks URL or code: %q", c.instruction)
	}
	if !strings.Contains(c.banner(), "█") {
		t.Fatalf("no QR code in the banner: %q", c.banner())
	}
	w := whoamiOf(t, conn)
	if w.Login != "alice" || w.UnixName != "alice" || w.UID != raftstore.DefaultUIDStart || !w.Admin || w.BindingExpires == "" {
		t.Fatalf("whoami = %+v", w)
	}
	out, _, code := run(t, conn, "")
	if code != 0 || !strings.Contains(out, "Signed in to Rampart as alice") || !strings.Contains(out, "No servers") {
		t.Fatalf("greeting (exit %d): %q", code, out)
	}
	conn.Close()

	// The IdP goes away: the bound key still signs alice in, silently.
	idp.stop()
	again := &client{key: key}
	conn, err = again.dial(t, d.addr)
	if err != nil {
		t.Fatalf("bound-key login: %v", err)
	}
	defer conn.Close()
	if again.prompted {
		t.Fatal("bound key still ran the device flow")
	}
	if w := whoamiOf(t, conn); w.Login != "alice" {
		t.Fatalf("bound key signed in as %+v", w)
	}
	if !d.audit.has("login.accept alice") {
		t.Fatal("logins were not audited")
	}
	d.wantLogins(t, map[[2]string]float64{{"device_flow_bind", "ok"}: 1, {"bound_key", "ok"}: 1})
}

// The SSH user name is the client's to choose: it reaches the audit log
// bounded, valid UTF-8, without control characters, its cut marked.
func TestClientUserNameBoundedInAudit(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	long := "x\x1b[31m\xff" + strings.Repeat("y", 50_000)
	c := &client{key: newKey(t), user: long, onPrompt: approveAs("alice", "alice-pw")}
	conn, err := c.dial(t, d.addr)
	if err != nil {
		t.Fatalf("login: %v (banner %q)", err, c.banner())
	}
	conn.Close()
	d.audit.mu.Lock()
	defer d.audit.mu.Unlock()
	var got string
	for i, e := range d.audit.events {
		if strings.HasPrefix(e, "login.accept alice") {
			got = d.audit.fields[i]["ssh_user"]
		}
	}
	if len(got) > raftstore.MaxClientText || !strings.HasSuffix(got, raftstore.TruncatedMark) ||
		!strings.HasPrefix(got, "x\uFFFD[31m\uFFFDyyy") {
		t.Fatalf("ssh_user in the login event: %d bytes %q", len(got), got)
	}
}

func TestBindingExpiry(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	key := newKey(t)
	c := &client{key: key, onPrompt: approveAs("bob", "bob-pw")}
	conn, err := c.dial(t, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// Two hours later (the binding TTL here is one hour) the key needs the
	// browser again.
	d.svc.SetClock(func() time.Time { return time.Now().Add(2 * time.Hour) })
	later := &client{key: key, onPrompt: denyAs("bob", "bob-pw")}
	if conn, err := later.dial(t, d.addr); err == nil {
		conn.Close()
		t.Fatal("expired binding still signed in without the IdP")
	}
	if !later.prompted {
		t.Fatal("expired binding did not fall back to the device flow")
	}
}

func TestLoginRefusals(t *testing.T) {
	cases := []struct {
		name       string
		idpMod     func(*devidp.Config)
		onPrompt   func(idp *testIdP) func(string) error
		noKey      bool
		wantBanner string
	}{
		{name: "fail/denied", onPrompt: func(*testIdP) func(string) error { return denyAs("alice", "alice-pw") }, wantBanner: "denied"},
		{name: "fail/expired-code", onPrompt: func(idp *testIdP) func(string) error {
			return func(string) error { idp.advance(time.Hour); return nil }
		}, wantBanner: "expired"},
		{name: "fail/hostile-root", onPrompt: func(*testIdP) func(string) error { return approveAs("mallory-root", "pw") }, wantBanner: "reserved system name"},
		{name: "fail/hostile-dotdot", onPrompt: func(*testIdP) func(string) error { return approveAs("mallory-dots", "pw") }, wantBanner: "cannot be used"},
		{name: "fail/hostile-newline", onPrompt: func(*testIdP) func(string) error { return approveAs("mallory-newline", "pw") }, wantBanner: "cannot be used"},
		{name: "fail/hostile-space", onPrompt: func(*testIdP) func(string) error { return approveAs("mallory-space", "pw") }, wantBanner: "cannot be used"},
		{name: "fail/hostile-200-chars", onPrompt: func(*testIdP) func(string) error { return approveAs("mallory-long", "pw") }, wantBanner: "longer than 32"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idp := startIdP(t, tc.idpMod)
			d := startDoor(t, doorOpts{issuer: idp.issuer})
			c := &client{key: newKey(t), onPrompt: tc.onPrompt(idp)}
			conn, err := c.dial(t, d.addr)
			if err == nil {
				conn.Close()
				t.Fatal("sign-in succeeded")
			}
			if b := c.banner(); !strings.Contains(b, tc.wantBanner) {
				t.Fatalf("banner %q does not say %q", b, tc.wantBanner)
			}
			if strings.ContainsAny(strings.TrimSuffix(c.banner(), "\r\n"), "\n\x00") && !strings.Contains(c.banner(), "█") {
				t.Fatalf("refusal banner carries raw control characters: %q", c.banner())
			}
			if _, users, _ := d.store.State().Users(nil); len(users) != 0 {
				t.Fatalf("refused sign-in created users: %+v", users[0])
			}
			if _, b, _ := d.store.State().Bindings(nil); len(b) != 0 {
				t.Fatal("refused sign-in bound a key")
			}
		})
	}
}

func TestSlowDownIsHonoured(t *testing.T) {
	idp := startIdP(t, func(c *devidp.Config) { c.SlowDownPolls = 1 })
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	c := &client{key: newKey(t), onPrompt: approveAs("alice", "alice-pw")}
	conn, err := c.dial(t, d.addr)
	if err != nil {
		t.Fatalf("sign-in with slow_down: %v (banner %q)", err, c.banner())
	}
	conn.Close()
}

func TestIdPUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	ln.Close()
	d := startDoor(t, doorOpts{issuer: issuer})
	c := &client{key: newKey(t)}
	if conn, err := c.dial(t, d.addr); err == nil {
		conn.Close()
		t.Fatal("signed in with no IdP")
	}
	if !strings.Contains(c.banner(), "cannot be reached") {
		t.Fatalf("banner %q does not say the IdP cannot be reached", c.banner())
	}
}

func TestDisabledUserWithBoundKey(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	key := newKey(t)
	c := &client{key: key, onPrompt: approveAs("bob", "bob-pw")}
	conn, err := c.dial(t, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	w := whoamiOf(t, conn)
	conn.Close()
	_, u, _ := d.store.State().UserByUnixName(nil, w.UnixName)
	if _, err := d.store.Apply(t.Context(), &raftstore.UserSetStatus{ID: u.ID, Status: raftstore.UserDisabled, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	again := &client{key: key}
	if conn, err := again.dial(t, d.addr); err == nil {
		conn.Close()
		t.Fatal("disabled user signed in with a bound key")
	}
	if !strings.Contains(again.banner(), "disabled") {
		t.Fatalf("banner %q does not say the account is disabled", again.banner())
	}
	if again.prompted {
		t.Fatal("a disabled user's key was offered a browser sign-in")
	}
	if !d.audit.has("login.refuse") {
		t.Fatal("refusal not audited")
	}
	d.wantLogins(t, map[[2]string]float64{{"device_flow_bind", "ok"}: 1, {"bound_key", "refused"}: 1})
}

func TestStaleReplicaRefusesBoundKey(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	key := newKey(t)
	conn, err := (&client{key: key, onPrompt: approveAs("bob", "bob-pw")}).dial(t, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	d.store.SetStale(true)
	c := &client{key: key}
	if conn, err := c.dial(t, d.addr); err == nil {
		conn.Close()
		t.Fatal("a stale replica admitted a bound key")
	}
	if !strings.Contains(c.banner(), "cannot reach its cluster") {
		t.Fatalf("banner %q", c.banner())
	}
	if c.prompted {
		t.Fatal("a stale node offered a browser sign-in")
	}
	d.wantLogins(t, map[[2]string]float64{{"device_flow_bind", "ok"}: 1, {"bound_key", "refused"}: 1})
}

func TestKeyboardInteractiveWithoutKey(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	c := &client{onPrompt: approveAs("alice", "alice-pw")}
	conn, err := c.dial(t, d.addr)
	if err != nil {
		t.Fatalf("keyboard-interactive only: %v", err)
	}
	defer conn.Close()
	if w := whoamiOf(t, conn); w.Login != "alice" || w.BindingExpires != "" {
		t.Fatalf("whoami = %+v; want alice with no binding", w)
	}
	if _, b, _ := d.store.State().Bindings(nil); len(b) != 0 {
		t.Fatal("a login without a key made a binding")
	}
}

func TestNoAuthIsRefused(t *testing.T) {
	d := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1"})
	cfg := &gossh.ClientConfig{User: "alice", HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	if conn, err := gossh.Dial("tcp", d.addr, cfg); err == nil {
		conn.Close()
		t.Fatal("the front door admitted a client with no authentication")
	}
}

func TestSecondIdPWithOtherClaimNames(t *testing.T) {
	idp := startIdP(t, func(c *devidp.Config) {
		c.ClaimNames = devidp.ClaimNames{Username: "upn", Groups: "rampart.groups"}
	})
	d := startDoor(t, doorOpts{issuer: idp.issuer, claims: login.ClaimMapping{Username: "upn", Groups: "rampart.groups", AdminGroup: "eng"}})
	conn, err := (&client{key: newKey(t), onPrompt: approveAs("bob", "bob-pw")}).dial(t, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := whoamiOf(t, conn)
	if w.Login != "bob" || len(w.Groups) != 1 || w.Groups[0] != "eng" || !w.Admin {
		t.Fatalf("whoami = %+v; want bob in eng (admin group here)", w)
	}
}

func TestPreauthLimitPerIP(t *testing.T) {
	d := startDoor(t, doorOpts{issuer: "http://127.0.0.1:1", perIP: 2})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		nc, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, nc)
		// Wait for the server's version line: the connection is admitted.
		buf := make([]byte, 64)
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Read(buf); err != nil {
			t.Fatalf("connection %d not admitted: %v", i, err)
		}
	}
	third, err := net.Dial("tcp", d.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := third.Read(make([]byte, 64)); err == nil {
		t.Fatalf("third half-open connection from one address was admitted (%d bytes)", n)
	}
	third.Close()
	if got := testutil.ToFloat64(d.srv.cfg.Metrics.Refusals.WithLabelValues("preauth_per_source")); got != 1 {
		t.Fatalf(`rampart_ssh_refusals_total{limit="preauth_per_source"} = %v, want 1`, got)
	}
	held[0].Close()
	// The slot frees when a connection closes; poll until a new one is admitted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = nc.Read(make([]byte, 64))
		nc.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slot never freed after a held connection closed")
		}
	}
	held[1].Close()
}

func TestAdminUserName(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	key := newKey(t)
	conn, err := (&client{key: key, user: "admin", onPrompt: approveAs("bob", "bob-pw")}).dial(t, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, errOut, code := run(t, conn, "")
	if code == 0 || !strings.Contains(errOut, "not an administrator") {
		t.Fatalf("non-admin on the admin user: exit %d, %q", code, errOut)
	}
	if !d.audit.has("admin_shell.refuse bob") {
		t.Fatal("admin refusal not audited")
	}
	_, errOut, code = run(t, conn, "frobnicate")
	if code != 1 {
		t.Fatalf("exit %d %q", code, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	idp := startIdP(t, nil)
	d := startDoor(t, doorOpts{issuer: idp.issuer})
	conn, err := (&client{key: newKey(t), onPrompt: approveAs("bob", "bob-pw")}).dial(t, d.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, errOut, code := run(t, conn, "rm -rf /"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("exit %d %q", code, errOut)
	}
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < 0x20 && s[i] != '\r' && s[i] != '\n') || s[i] > 0x7e {
			return false
		}
	}
	return true
}
