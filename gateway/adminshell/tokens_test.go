package adminshell

import (
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// An enrollment token is printed once: the cluster stores only its hash, and
// neither listings, the audit log nor the logs hold the secret.
func TestEnrollmentTokenShownOnceStoredHashed(t *testing.T) {
	h := newHarness(t)
	r := h.run("tokens", "create", "db", "--ttl", "2h", "--uses", "5", "--description", "db fleet")
	// stdout is the token alone, so that `ssh admin@bastion tokens create
	// db > token` makes a token file; the prose goes to stderr.
	tokText := strings.TrimSuffix(r.stdout, "\n")
	out := r.stderr
	if r.code != 0 || !strings.HasPrefix(tokText, api.TokenPrefix) || strings.ContainsAny(tokText, " \n") {
		t.Fatalf("stdout is not the token alone: %s", r)
	}
	if !strings.Contains(out, "shown only this once") || !strings.Contains(out, "5 uses") || strings.Contains(out, tokText) {
		t.Fatalf("stderr:\n%s", out)
	}
	tok, err := api.ParseToken(tokText)
	if err != nil {
		t.Fatal(err)
	}
	cl := fakeCluster{}
	if tok.Kind != api.TokenEnroll || tok.CAPin != cl.CAPin() || strings.Join(tok.Addrs, ",") != strings.Join(cl.JoinAddrs(), ",") {
		t.Errorf("token %+v", tok)
	}
	hash := api.HashSecret(tok.Secret)
	_, stored, err := h.store.State().TokenByHash(nil, hash)
	if err != nil || stored == nil {
		t.Fatalf("token not stored by its hash: %v", err)
	}
	if stored.Kind != raftstore.TokenEnroll || stored.Project != "db" || stored.UsesLeft != 5 ||
		!stored.ExpiresAt.Equal(h.now.Add(2*time.Hour)) || stored.CreatedBy != "alice" || stored.Description != "db fleet" {
		t.Errorf("stored %+v", stored)
	}
	if !strings.Contains(out, "tokens revoke "+hash[:shortHash]) {
		t.Errorf("no revoke hint:\n%s", out)
	}
	e := h.lastAudit()
	if e.Type != "enrollment_token.create" || e.Fields["token"] != hash || e.Fields["project"] != "db" || e.Fields["uses"] != "5" {
		t.Errorf("audit %+v", e)
	}
	for _, args := range [][]string{{"tokens", "ls"}, {"tokens", "ls", "--json"}, {"audit", "export"}, {"audit", "ls", "--json"}} {
		if o := h.mustRun(args...); strings.Contains(o, tok.Secret) || strings.Contains(o, tokText) {
			t.Errorf("%v shows the secret:\n%s", args, o)
		}
	}

	// --json and --quiet forms, for scripts.
	j := decodeJSON[map[string]any](t, h.mustRun("tokens", "create", "web", "--json"))
	jt, err := api.ParseToken(j["token"].(string))
	if err != nil || j["hash"] != api.HashSecret(jt.Secret) || j["uses_left"] != nil || j["project"] != "web" {
		t.Errorf("json %v (%v)", j, err)
	}
	q := h.mustRun("tokens", "create", "web", "--ttl", "0", "-q")
	qt, err := api.ParseToken(strings.TrimSpace(q))
	if err != nil {
		t.Fatalf("quiet output %q: %v", q, err)
	}
	if _, st, _ := h.store.State().TokenByHash(nil, api.HashSecret(qt.Secret)); st == nil || !st.ExpiresAt.IsZero() || st.UsesLeft != raftstore.UnlimitedUses {
		t.Errorf("stored %+v", st)
	}
}

func TestTokenCreateWithoutCluster(t *testing.T) {
	h := newHarness(t)
	h.sh = New(Deps{Store: h.store, Now: func() time.Time { return h.now }})
	r := h.run("tokens", "create", "web")
	if r.code != ExitError || !strings.Contains(r.stderr, "cannot create tokens") {
		t.Fatal(r)
	}
}

func TestServiceTokenShownOnceStoredHashed(t *testing.T) {
	h := newHarness(t)
	j := decodeJSON[map[string]any](t, h.mustRun("service-tokens", "create", "ci", "--ttl", "720h", "--json"))
	secret, _ := j["token"].(string)
	if !strings.HasPrefix(secret, control.ServiceTokenPrefix) || j["name"] != "ci" || j["role"] != "admin" {
		t.Fatalf("json %v", j)
	}
	_, st, err := h.store.State().ServiceTokenByHash(nil, api.HashSecret(secret))
	if err != nil || st == nil || st.ID != j["id"] || st.CreatedBy != "alice" || !st.ExpiresAt.Equal(h.now.Add(720*time.Hour)) {
		t.Fatalf("stored %+v (%v)", st, err)
	}
	if e := h.lastAudit(); e.Type != "service_token.create" || e.Fields["service_token"] != st.ID || e.Fields["name"] != "ci" {
		t.Errorf("audit %+v", e)
	}
	for _, args := range [][]string{{"service-tokens", "ls"}, {"service-tokens", "ls", "--json"}, {"audit", "export"}} {
		if o := h.mustRun(args...); strings.Contains(o, secret) {
			t.Errorf("%v shows the secret", args)
		}
	}
	out := h.mustRun("service-tokens", "create", "deploy-bot")
	if !strings.Contains(out, "shown only this once") || !strings.Contains(out, "expires never") {
		t.Errorf("output:\n%s", out)
	}
	if r := h.run("service-tokens", "create", "ci"); r.code != ExitError || !strings.Contains(r.stderr, "conflict") {
		t.Errorf("duplicate name: %s", r)
	}
}

// TestServiceTokenScopes: --scope picks the token's scope (admin when
// absent), an unknown scope is a usage error that writes nothing, and ls
// shows each token's scope and when it was last used.
func TestServiceTokenScopes(t *testing.T) {
	h := newHarness(t)
	for _, scope := range []string{"read", "auditor", "provisioning", "admin"} {
		j := decodeJSON[map[string]any](t, h.mustRun("service-tokens", "create", "t-"+scope, "--scope", scope, "--json"))
		if j["scope"] != scope {
			t.Fatalf("--scope %s: json %v", scope, j)
		}
		_, st, err := h.store.State().ServiceTokenByName(nil, "t-"+scope)
		if err != nil || st == nil || st.Role != scope {
			t.Fatalf("stored %+v (%v)", st, err)
		}
		if e := h.lastAudit(); e.Fields["scope"] != scope {
			t.Errorf("audit %+v", e)
		}
	}
	before := h.store.State().LatestIndex()
	if r := h.run("service-tokens", "create", "x", "--scope", "root"); r.code != ExitUsage || !strings.Contains(r.stderr, `--scope "root" is not one of read, admin, provisioning, auditor`) {
		t.Errorf("unknown scope: %s", r)
	}
	if h.store.State().LatestIndex() != before {
		t.Error("a refused create wrote")
	}
	out := h.mustRun("service-tokens", "ls")
	for _, want := range []string{"SCOPE", "LAST USED", "t-read", "read", "auditor", "never"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls lacks %q:\n%s", want, out)
		}
	}
}
