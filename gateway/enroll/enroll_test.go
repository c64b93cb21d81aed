package enroll

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

// tokenRequest is a token enrollment of server name at addr.
func tokenRequest(t *testing.T, secret, name, addr string) *api.EnrollRequest {
	t.Helper()
	return &api.EnrollRequest{Method: api.EnrollToken, Secret: secret, MachineID: "m-" + name, Name: name, Addr: addr,
		HostKeys: []string{hostKeyLine(t), hostKeyLine(t)}, PublicKey: agentKeyPEM(t)}
}

// A token enrollment registers the server into the token's project, spends
// one use, and hands the agent its certificate, host certificates for each
// host key and the project's user CA keys.
func TestEnrollToken(t *testing.T) {
	fx := newFixture(t, Config{})
	secret := fx.token(t, "web", 2, testNow.Add(time.Hour))
	req := tokenRequest(t, secret, "Web-1", "10.0.0.5")
	req.AltNames = []string{"web-1.example.com"}
	resp, err := fx.svc.Enroll(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	srv := fx.server(t, "web-1")
	if srv == nil || srv.ID != resp.ServerID || srv.Project != "web" || srv.EnrollMethod != raftstore.EnrollToken || srv.SSHPort != raftstore.DefaultSSHPort ||
		srv.MachineID != "m-Web-1" || len(srv.HostKeys) != 2 || srv.AgentKeyHash == "" {
		t.Fatalf("server recorded as %+v (response %+v)", srv, resp)
	}
	if fx.usesLeft(t, secret) != 1 {
		t.Fatalf("uses left %d, want 1", fx.usesLeft(t, secret))
	}
	cert, err := api.ParseCertPEM([]byte(resp.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	if role, id, ok := api.Identity(cert); !ok || role != api.RoleAgent || id != srv.ID {
		t.Fatalf("agent certificate names %s %s", role, id)
	}
	if got := cert.NotAfter.Sub(testNow); got < agentCertValidity-time.Minute || got > agentCertValidity+time.Minute ||
		!resp.CertExpires.Equal(testNow.Add(agentCertValidity)) {
		t.Fatalf("agent certificate valid %s (response says until %s), want the default %s", got, resp.CertExpires, agentCertValidity)
	}
	if resp.CAPEM != string(fx.certs.tca.CertPEM) || resp.Project != "web" {
		t.Fatalf("response: project %q, CA %q", resp.Project, resp.CAPEM)
	}
	if len(resp.HostCerts) != 2 || fx.certs.hostCerts["web-1"] != targetHostCertValidity {
		t.Fatalf("host certs %q, asked for %s", resp.HostCerts, fx.certs.hostCerts["web-1"])
	}
	if len(fx.certs.userCAs) != 1 || fx.certs.userCAs[0] != "web" || len(resp.UserCAKeys) != 1 {
		t.Fatalf("user CA ensured for %q; response keys %q", fx.certs.userCAs, resp.UserCAKeys)
	}
	ev := fx.audit.last("server.enroll")
	if ev == nil || ev.actor != "agent" || ev.fields["server"] != "web-1" || ev.fields["server_id"] != srv.ID || ev.fields["project"] != "web" ||
		ev.fields["method"] != api.EnrollToken {
		t.Fatalf("audit: %+v", ev)
	}
}

// The token names the project: a server enrolls into it, whatever other
// projects there are.
func TestEnrollTokenNamesProject(t *testing.T) {
	fx := newFixture(t, Config{})
	fx.apply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db"}, Now: testNow})
	resp, err := fx.svc.Enroll(t.Context(), tokenRequest(t, fx.token(t, "db", 1, time.Time{}), "db-1", "10.0.0.7"))
	if err != nil {
		t.Fatal(err)
	}
	if srv := fx.server(t, "db-1"); resp.Project != "db" || srv == nil || srv.Project != "db" || fx.certs.userCAs[0] != "db" {
		t.Fatalf("enrolled into %q (server %+v, user CA of %q)", resp.Project, srv, fx.certs.userCAs)
	}
}

// The validities configured are the ones asked for.
func TestEnrollTokenConfiguredValidity(t *testing.T) {
	fx := newFixture(t, Config{AgentCertValidity: 48 * time.Hour, HostCertValidity: 72 * time.Hour})
	resp, err := fx.svc.Enroll(t.Context(), tokenRequest(t, fx.token(t, "web", 1, time.Time{}), "web-1", "10.0.0.5"))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.CertExpires.Equal(testNow.Add(48*time.Hour)) || fx.certs.issued[0].validity != 48*time.Hour || fx.certs.hostCerts["web-1"] != 72*time.Hour {
		t.Fatalf("agent cert until %s (asked %s), host certs asked %s", resp.CertExpires, fx.certs.issued[0].validity, fx.certs.hostCerts["web-1"])
	}
}

// Refusals of a token enrollment: none registers a server, and those made
// before the token is looked at (or when the token is not usable) spend no
// use of it.
func TestEnrollTokenRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns the token's secret and the request.
		setup  func(t *testing.T, fx *fixture) (string, *api.EnrollRequest)
		status int
		says   []string
		// usesLeft after the refusal; -2: the token is gone.
		usesLeft int
		// audited is the reason of the server.enroll_refused event, if any.
		audited string
	}{
		{name: "fail/expired-token", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 3, testNow.Add(time.Hour))
			fx.now = testNow.Add(time.Hour + time.Second)
			return s, tokenRequest(t, s, "web-1", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"enrollment token has expired"}, usesLeft: 3},
		{name: "fail/expires-now", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 3, testNow.Add(time.Hour))
			fx.now = testNow.Add(time.Hour)
			return s, tokenRequest(t, s, "web-1", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"enrollment token has expired"}, usesLeft: 3},
		{name: "fail/used-up-token", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 1, time.Time{})
			if _, err := fx.svc.Enroll(t.Context(), tokenRequest(t, s, "web-0", "10.0.0.4")); err != nil {
				t.Fatal(err)
			}
			return s, tokenRequest(t, s, "web-1", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"enrollment token is not valid for this cluster (unknown, revoked or used up)"}, usesLeft: -2},
		{name: "fail/unknown-token", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			return "rpe_nobody-made-this", tokenRequest(t, "rpe_nobody-made-this", "web-1", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"not valid for this cluster"}, usesLeft: -2},
		{name: "fail/join-token", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			fx.apply(t, &raftstore.TokenCreate{Token: raftstore.Token{Hash: api.HashSecret("rpj_join"), Kind: raftstore.TokenKind(api.TokenJoin), UsesLeft: 1}, Now: testNow})
			return "rpj_join", tokenRequest(t, "rpj_join", "web-1", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"not valid for this cluster"}, usesLeft: 1},
		{name: "fail/outside-project-name-rules", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			fx.apply(t, &raftstore.ProjectUpsert{Project: raftstore.Project{Name: "db", Settings: raftstore.ProjectSettings{ServerNames: []string{"db-*"}}}, Now: testNow})
			s := fx.token(t, "db", 2, time.Time{})
			return s, tokenRequest(t, s, "web-1", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"the name web-1 is outside project db's server name rules (db-*)"}, usesLeft: 2, audited: "name rules"},
		{name: "fail/already-enrolled", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			if _, err := fx.svc.Enroll(t.Context(), tokenRequest(t, fx.token(t, "web", 1, time.Time{}), "web-1", "10.0.0.5")); err != nil {
				t.Fatal(err)
			}
			s := fx.token(t, "web", 2, time.Time{})
			return s, tokenRequest(t, s, "WEB-1", "10.0.0.6")
		}, status: http.StatusConflict, says: []string{"server web-1 is already enrolled: a server enrolls once", "servers delete web-1"}, usesLeft: 2, audited: "name already enrolled"},
		{name: "fail/already-enrolled-as-alt-name", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			req := tokenRequest(t, fx.token(t, "web", 1, time.Time{}), "web-1", "10.0.0.5")
			req.AltNames = []string{"www"}
			if _, err := fx.svc.Enroll(t.Context(), req); err != nil {
				t.Fatal(err)
			}
			s := fx.token(t, "web", 2, time.Time{})
			return s, tokenRequest(t, s, "www", "10.0.0.6")
		}, status: http.StatusConflict, says: []string{"server web-1 is already enrolled"}, usesLeft: 2, audited: "name already enrolled"},
		{name: "fail/node-host-name", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			return s, tokenRequest(t, s, "Bastion.Example.com", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"Bastion.Example.com is a name or address of a node of this cluster"}, usesLeft: 2, audited: "node name"},
		{name: "fail/node-address-as-alt-name", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.AltNames = []string{"10.9.0.1"}
			return s, req
		}, status: http.StatusForbidden, says: []string{"10.9.0.1 is a name or address of a node"}, usesLeft: 2, audited: "node name"},
		{name: "fail/node-address", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			return s, tokenRequest(t, s, "web-1", "10.9.0.1")
		}, status: http.StatusForbidden, says: []string{"10.9.0.1 is a name or address of a node"}, usesLeft: 2, audited: "node name"},
		{name: "fail/this-node-host-name", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			return s, tokenRequest(t, s, "gw.example.com", "10.0.0.5")
		}, status: http.StatusForbidden, says: []string{"gw.example.com is a name or address of a node"}, usesLeft: 2, audited: "node name"},
		{name: "fail/this-node-listener", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.AltNames = []string{"10.9.0.2"}
			return s, req
		}, status: http.StatusForbidden, says: []string{"10.9.0.2 is a name or address of a node"}, usesLeft: 2, audited: "node name"},
		{name: "fail/address-among-names-not-its-own", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.AltNames = []string{"10.0.0.99"}
			return s, req
		}, status: http.StatusForbidden, says: []string{"10.0.0.99 is not this server's address (10.0.0.5)"}, usesLeft: 2, audited: "address not its own"},
		{name: "fail/metadata-address", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			return s, tokenRequest(t, s, "web-1", "169.254.169.254")
		}, status: http.StatusBadRequest, says: []string{"cannot enroll a server at 169.254.169.254 port 22"}, usesLeft: 2, audited: "address not allowed"},
		{name: "fail/this-node-port", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.9.0.2")
			req.SSHPort = 2222
			return s, req
		}, status: http.StatusBadRequest, says: []string{"cannot enroll a server at 10.9.0.2 port 2222"}, usesLeft: 2, audited: "address not allowed"},
		{name: "fail/missing-machine-id", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.MachineID = ""
			return s, req
		}, status: http.StatusBadRequest, says: []string{"machine_id is missing or malformed"}, usesLeft: 2},
		{name: "fail/no-host-keys", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.HostKeys = nil
			return s, req
		}, status: http.StatusBadRequest, says: []string{"at least one host key is required"}, usesLeft: 2},
		{name: "fail/agent-key-not-pem", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.PublicKey = hostKeyLine(t)
			return s, req
		}, status: http.StatusBadRequest, says: []string{"public_key is not a PEM PUBLIC KEY"}, usesLeft: 2},
		{name: "fail/malformed-label", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.Labels = map[string]string{"bad key": "x"}
			return s, req
		}, status: http.StatusBadRequest, usesLeft: 2},
		{name: "fail/unknown-method", setup: func(t *testing.T, fx *fixture) (string, *api.EnrollRequest) {
			s := fx.token(t, "web", 2, time.Time{})
			req := tokenRequest(t, s, "web-1", "10.0.0.5")
			req.Method = "azure"
			return s, req
		}, status: http.StatusBadRequest, says: []string{`enrollment method "azure" is not token, aws or gcp`}, usesLeft: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, Config{NodeHostNames: []string{"gw.example.com"},
				Targets: targetaddr.Rule{Listeners: []netip.AddrPort{netip.MustParseAddrPort("10.9.0.2:2222")}}})
			secret, req := tc.setup(t, fx)
			before := len(fx.audit.events)
			_, err := fx.svc.Enroll(t.Context(), req)
			wantRefusal(t, err, tc.status, tc.says...)
			if got := fx.usesLeft(t, secret); got != tc.usesLeft {
				t.Errorf("uses left %d, want %d", got, tc.usesLeft)
			}
			if srv := fx.server(t, req.Name); srv != nil && srv.MachineID == req.MachineID {
				t.Errorf("refused enrollment registered %+v", srv)
			}
			ev := fx.audit.last("enrollment.refuse")
			switch {
			case tc.audited == "" && ev != nil && len(fx.audit.events) > before:
				t.Errorf("audited %+v", ev)
			case tc.audited != "" && (ev == nil || ev.fields["reason"] != tc.audited || ev.fields["server"] != req.Name):
				t.Errorf("audit %+v, want reason %q", ev, tc.audited)
			}
		})
	}
}
