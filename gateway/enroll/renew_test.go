package enroll

import (
	"errors"
	"net/http"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

func TestRenewHostCerts(t *testing.T) {
	fx := newFixture(t, Config{HostCertValidity: 10 * 24 * time.Hour})
	if _, err := fx.svc.Enroll(t.Context(), tokenRequest(t, fx.token(t, "web", 1, time.Time{}), "web-1", "10.0.0.5")); err != nil {
		t.Fatal(err)
	}
	srv := fx.server(t, "web-1")
	resp, err := fx.svc.RenewHostCerts(t.Context(), srv)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.HostCerts) != 2 || resp.HostCAKey != fx.certs.hostCAKey || fx.certs.hostCerts["web-1"] != 10*24*time.Hour {
		t.Fatalf("renewed %q by %q, validity asked %s", resp.HostCerts, resp.HostCAKey, fx.certs.hostCerts["web-1"])
	}
	caKey, _, _, _, err := gossh.ParseAuthorizedKey([]byte(fx.certs.hostCAKey))
	if err != nil {
		t.Fatal(err)
	}
	ev := fx.audit.last("host_cert.renew")
	if ev == nil || ev.fields["server_id"] != srv.ID || ev.fields["validity"] != "240h0m0s" || ev.fields["host_ca"] != gossh.FingerprintSHA256(caKey) {
		t.Fatalf("audit: %+v", ev)
	}

	bare := *srv
	bare.HostKeys = nil
	_, err = fx.svc.RenewHostCerts(t.Context(), &bare)
	wantRefusal(t, err, http.StatusConflict, "server web-1 has no pinned host keys to certify")

	fx.certs.err = errors.New("no active host CA")
	if _, err := fx.svc.RenewHostCerts(t.Context(), srv); err == nil || err.Error() != "no active host CA" {
		t.Fatalf("certifier failure: %v", err)
	}
}

func TestRenewAgent(t *testing.T) {
	fx := newFixture(t, Config{})
	if _, err := fx.svc.Enroll(t.Context(), tokenRequest(t, fx.token(t, "web", 1, time.Time{}), "web-1", "10.0.0.5")); err != nil {
		t.Fatal(err)
	}
	srv := fx.server(t, "web-1")
	fx.now = testNow.Add(20 * 24 * time.Hour)
	resp, err := fx.svc.RenewAgent(t.Context(), srv, &api.AgentRenewRequest{PublicKey: agentKeyPEM(t)})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := api.ParseCertPEM([]byte(resp.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	if role, id, ok := api.Identity(cert); !ok || role != api.RoleAgent || id != srv.ID || !resp.CertExpires.Equal(cert.NotAfter.UTC()) {
		t.Fatalf("renewed certificate names %s %s, until %s (response %s)", role, id, cert.NotAfter, resp.CertExpires)
	}
	if ev := fx.audit.last("agent_cert.renew"); ev == nil || ev.fields["server_id"] != srv.ID || ev.fields["project"] != "web" {
		t.Fatalf("audit: %+v", ev)
	}
	_, err = fx.svc.RenewAgent(t.Context(), srv, &api.AgentRenewRequest{PublicKey: agentKeyPEM(t) + agentKeyPEM(t)})
	wantRefusal(t, err, http.StatusBadRequest, "public_key holds more than one PEM block")
}
