package enroll

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
	"github.com/rampart-ssh/rampart/raftstore"
)

const awsAccount = "123456789012"

// awsCloud is an AWS region's signer, its certificate in a bundle file, and
// the configuration that trusts it for account awsAccount → project web.
type awsCloud struct {
	signer *cloudidtest.AWSSigner
	cfg    AWS
}

func newAWSCloud(t *testing.T) *awsCloud {
	t.Helper()
	signer, err := cloudidtest.NewAWSSigner("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "aws-certs.pem")
	if err := os.WriteFile(path, signer.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &awsCloud{signer: signer, cfg: AWS{CertsFile: path, Accounts: map[string]string{awsAccount: "web"}, MaxAge: time.Hour}}
}

// request is an AWS enrollment of instance at privateIP, signed by signer,
// asking for name at addr.
func (c *awsCloud) request(t *testing.T, signer *cloudidtest.AWSSigner, instance, privateIP, name, addr string) *api.EnrollRequest {
	t.Helper()
	doc := cloudidtest.AWSDocument{AccountID: awsAccount, InstanceID: instance, Region: "us-east-1", AvailabilityZone: "us-east-1a",
		PrivateIP: privateIP, PendingTime: testNow.Add(-time.Minute)}.Bytes()
	sig, err := signer.Signature(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &api.EnrollRequest{Method: api.EnrollAWS, MachineID: "m-" + instance, Name: name, Addr: addr,
		HostKeys: []string{hostKeyLine(t)}, PublicKey: agentKeyPEM(t), AWSDocument: string(doc), AWSSignature: sig}
}

func TestEnrollAWS(t *testing.T) {
	aws := newAWSCloud(t)
	const instance = "i-0123456789abcdef0"
	t.Run("ok/enrolls-then-refused-again", func(t *testing.T) {
		fx := newFixture(t, Config{AWS: aws.cfg})
		resp, err := fx.svc.Enroll(t.Context(), aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.17"))
		if err != nil {
			t.Fatal(err)
		}
		srv := fx.server(t, "web-1")
		if srv == nil || srv.ID != resp.ServerID || srv.Project != "web" || srv.EnrollMethod != raftstore.EnrollAWS || srv.InstanceID != instance {
			t.Fatalf("server recorded as %+v", srv)
		}
		if ev := fx.audit.last("server.enroll"); ev == nil || ev.fields["instance_id"] != instance || ev.fields["method"] != api.EnrollAWS {
			t.Fatalf("audit: %+v", ev)
		}
		_, err = fx.svc.Enroll(t.Context(), aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.17"))
		wantRefusal(t, err, http.StatusForbidden, "instance "+instance+" is already enrolled as server web-1 ("+srv.ID+")",
			"servers delete web-1", "agents.aws.allow_reenroll")
	})
	t.Run("ok/reenroll-allowed-keeps-the-server", func(t *testing.T) {
		cfg := aws.cfg
		cfg.AllowReenroll = true
		fx := newFixture(t, Config{AWS: cfg})
		first, err := fx.svc.Enroll(t.Context(), aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.17"))
		if err != nil {
			t.Fatal(err)
		}
		before := fx.server(t, "web-1").AgentKeyHash
		again, err := fx.svc.Enroll(t.Context(), aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.17"))
		if err != nil {
			t.Fatal(err)
		}
		if srv := fx.server(t, "web-1"); again.ServerID != first.ServerID || srv.AgentKeyHash == before {
			t.Fatalf("re-enrollment: server %s then %s, agent key %s then %s", first.ServerID, again.ServerID, before, srv.AgentKeyHash)
		}
		// A re-enrollment keeps the server's name.
		_, err = fx.svc.Enroll(t.Context(), aws.request(t, aws.signer, instance, "10.0.3.17", "web-2", "10.0.3.17"))
		wantRefusal(t, err, http.StatusForbidden, "keeps the server's name (web-1)")
	})
	forger, err := cloudidtest.NewAWSSigner("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cfg    func(c *AWS)
		req    func(t *testing.T) *api.EnrollRequest
		status int
		says   []string
	}{
		{"fail/not-configured", func(c *AWS) { *c = AWS{} }, func(t *testing.T) *api.EnrollRequest {
			return aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.17")
		}, http.StatusForbidden, []string{"this cluster does not accept AWS auto-enrollment (node n1 has no agents.aws configuration)"}},
		{"fail/addr-not-the-private-ip", nil, func(t *testing.T) *api.EnrollRequest {
			return aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.18")
		}, http.StatusForbidden, []string{"addr 10.0.3.18 is not the private IP of AWS instance " + instance}},
		{"fail/unprivileged-port", nil, func(t *testing.T) *api.EnrollRequest {
			r := aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.17")
			r.SSHPort = 2222
			return r
		}, http.StatusForbidden, []string{"ssh_port 2222: a server that enrolls with its cloud identity must run sshd on a privileged port"}},
		{"fail/forged", nil, func(t *testing.T) *api.EnrollRequest {
			return aws.request(t, forger, instance, "10.0.3.17", "web-1", "10.0.3.17")
		}, http.StatusForbidden, nil},
		{"fail/account-not-mapped", func(c *AWS) { c.Accounts = map[string]string{"210987654321": "web"} }, func(t *testing.T) *api.EnrollRequest {
			return aws.request(t, aws.signer, instance, "10.0.3.17", "web-1", "10.0.3.17")
		}, http.StatusForbidden, []string{awsAccount}},
		{"fail/node-name", nil, func(t *testing.T) *api.EnrollRequest {
			return aws.request(t, aws.signer, instance, "10.0.3.17", "bastion.example.com", "10.0.3.17")
		}, http.StatusForbidden, []string{"bastion.example.com is a name or address of a node"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := aws.cfg
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			fx := newFixture(t, Config{AWS: cfg})
			req := tc.req(t)
			_, err := fx.svc.Enroll(t.Context(), req)
			wantRefusal(t, err, tc.status, tc.says...)
			if srv := fx.server(t, req.Name); srv != nil {
				t.Fatalf("refused enrollment registered %+v", srv)
			}
		})
	}
}

func TestEnrollGCP(t *testing.T) {
	iss := mustCloudIssuer(t)
	serveCountingIssuer(t, iss)
	const audience = "https://bastion.example.com:8443"
	cfg := GCP{Issuer: iss.URL, Audience: audience, Projects: map[string]string{"acme-prod": "web"}, MaxAge: time.Hour}
	inst := cloudidtest.GCPInstance{ProjectID: "acme-prod", InstanceID: "4567890123456789012", InstanceName: "web-1", Zone: "europe-west1-b"}
	request := func(t *testing.T, inst cloudidtest.GCPInstance, audience, name string) *api.EnrollRequest {
		t.Helper()
		// Tokens are issued at the wall clock's now, and each test sets the
		// service's clock to it.
		tok, err := iss.GCPToken(inst, audience, time.Now(), time.Time{}, true)
		if err != nil {
			t.Fatal(err)
		}
		return &api.EnrollRequest{Method: api.EnrollGCP, MachineID: "m-" + name, Name: name, Addr: "10.0.4.9",
			HostKeys: []string{hostKeyLine(t)}, PublicKey: agentKeyPEM(t), GCPToken: tok}
	}
	t.Run("ok/enrolls-then-refused-again", func(t *testing.T) {
		fx := newFixture(t, Config{GCP: cfg})
		fx.now = time.Now()
		resp, err := fx.svc.Enroll(t.Context(), request(t, inst, audience, "web-1"))
		if err != nil {
			t.Fatal(err)
		}
		if srv := fx.server(t, "web-1"); srv == nil || srv.ID != resp.ServerID || srv.Project != "web" || srv.EnrollMethod != raftstore.EnrollGCP ||
			srv.InstanceID != inst.InstanceID {
			t.Fatalf("server recorded as %+v", srv)
		}
		_, err = fx.svc.Enroll(t.Context(), request(t, inst, audience, "web-1"))
		wantRefusal(t, err, http.StatusForbidden, "instance "+inst.InstanceID+" is already enrolled as server web-1", "agents.gcp.allow_reenroll")
	})
	other := inst
	other.ProjectID = "acme-dev"
	for _, tc := range []struct {
		name   string
		cfg    GCP
		req    func(t *testing.T) *api.EnrollRequest
		status int
		says   []string
	}{
		{"fail/not-configured", GCP{}, func(t *testing.T) *api.EnrollRequest { return request(t, inst, audience, "web-1") },
			http.StatusForbidden, []string{"this cluster does not accept GCP auto-enrollment (node n1 has no agents.gcp configuration)"}},
		{"fail/other-audience", cfg, func(t *testing.T) *api.EnrollRequest {
			return request(t, inst, "https://elsewhere.example.com", "web-1")
		},
			http.StatusForbidden, nil},
		{"fail/project-not-mapped", cfg, func(t *testing.T) *api.EnrollRequest { return request(t, other, audience, "web-1") },
			http.StatusForbidden, []string{"acme-dev"}},
		{"fail/unprivileged-port", cfg, func(t *testing.T) *api.EnrollRequest {
			r := request(t, inst, audience, "web-1")
			r.SSHPort = 8022
			return r
		}, http.StatusForbidden, []string{"ssh_port 8022"}},
		{"fail/malformed-token", cfg, func(t *testing.T) *api.EnrollRequest {
			r := request(t, inst, audience, "web-1")
			r.GCPToken = "not-a-jwt"
			return r
		}, http.StatusForbidden, []string{"is not a valid token of the issuer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, Config{GCP: tc.cfg})
			fx.now = time.Now()
			req := tc.req(t)
			_, err := fx.svc.Enroll(t.Context(), req)
			wantRefusal(t, err, tc.status, tc.says...)
			if srv := fx.server(t, req.Name); srv != nil {
				t.Fatalf("refused enrollment registered %+v", srv)
			}
		})
	}
}
