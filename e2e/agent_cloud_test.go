package e2e

// Cloud auto-enrollment with real parts: the real rampart-agent, inside a
// target's mount namespace, reads its instance identity from a fake EC2
// instance metadata service (IMDSv2) or a fake Compute Engine metadata
// server, both served over HTTP by this test, and enrolls with it into a
// dev node configured (through its config file) with a test AWS certificate
// bundle and a test OpenID issuer standing in for Google. The verification
// on the node is the production code; only the clouds are played by the
// test, signing with keys it made.
//
// Addresses: the dev node on 127.0.0.60, targets on .61-.63 and .65, the
// fake metadata services and issuer on .64, a node without cloud settings
// on .67, one with broken ones on .68.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
)

const (
	cloudNodeIP     = "127.0.0.60"
	cloudAWSIP      = "127.0.0.61"
	cloudGCPIP      = "127.0.0.62"
	cloudBadIP      = "127.0.0.63"
	cloudFakesIP    = "127.0.0.64"
	cloudTokenIP    = "127.0.0.65"
	cloudPlainIP    = "127.0.0.67"
	cloudAccount    = "123456789012"
	cloudGCPProject = "acme-prod"
)

// serveOn serves h over HTTP on ip (any port) until the test ends, and
// returns its base URL.
func serveOn(t testing.TB, ip string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	fatalIf(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// pinOf is the pin of a CA certificate in PEM.
func pinOf(t testing.TB, caPEM []byte) string {
	t.Helper()
	cert, err := ca.ParseCertPEM(caPEM)
	fatalIf(t, err, "cluster CA")
	return ca.Pin(cert)
}

// cloudAgent is the cloud part of an agent's configuration.
type cloudAgent struct {
	apiAddr, pin, mode string
	// awsURL, awsForm, gcpURL, audience: the metadata services and
	// what to ask them.
	awsURL, awsForm, gcpURL, audience string
}

// writeCloudAgentFiles writes an agent configuration that auto-enrolls as
// name, and a fresh machine id, into the target; there is no token.
func writeCloudAgentFiles(t testing.TB, tg *Target, name string, c cloudAgent) {
	t.Helper()
	dir := tg.Path(agentEtc)
	fatalIf(t, os.RemoveAll(dir))
	fatalIf(t, os.Mkdir(dir, 0o700))
	cfg := fmt.Sprintf(`cluster: [%q]
ca_pin: %s
auto_enroll: %s
aws_metadata_url: %q
aws_identity_form: %q
gcp_metadata_url: %q
gcp_audience: %q
token_file: %s
data_dir: %s
name: %s
addr: %s
ssh_port: %d
machine_id_file: %s/machine-id
state_file: %s/managed.json
home_archive_dir: %s/home-archive
poll_wait: 5s
delete_grace: 1h
log_level: debug
`, c.apiAddr, c.pin, c.mode, c.awsURL, c.awsForm, c.gcpURL, c.audience, agentTokenFile, agentDataDir, name, tg.IP(), tg.Port(),
		agentEtc, agentEtc, agentEtc)
	fatalIf(t, os.WriteFile(tg.Path(agentConfig), []byte(cfg), 0o600))
	fatalIf(t, os.WriteFile(tg.Path(agentEtc+"/machine-id"), []byte(randomHex(t)+randomHex(t)+"\n"), 0o444))
}

// cloudServer is a server as `servers ls --json` shows it.
type cloudServer struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Project      string `json:"project"`
	EnrollMethod string `json:"enroll_method"`
	InstanceID   string `json:"instance_id"`
	MachineID    string `json:"machine_id"`
}

func listServers(t testing.TB, e *policyEnv) map[string]cloudServer {
	t.Helper()
	out := e.admin(t, "servers", "ls", "--json").stdout
	var list []cloudServer
	fatalIf(t, json.Unmarshal([]byte(out), &list), "servers ls --json: "+out)
	m := map[string]cloudServer{}
	for _, s := range list {
		m[s.Name] = s
	}
	return m
}

// waitEnrolled waits until the agent has enrolled and applied its
// project's trust: identity.json written, and sshd's TrustedUserCAKeys file
// holding the project's user CA key. It returns the identity.
func waitEnrolled(t *testing.T, e *policyEnv, tg *Target, ag *runningAgent, project string) map[string]any {
	t.Helper()
	var id map[string]any
	fatalIf(t, waitFor(waitLong, func() error {
		if err := ag.alive(); err != nil {
			return err
		}
		b, err := os.ReadFile(tg.Path(agentDataDir + "/identity.json"))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &id)
	}), "enrollment of "+tg.Name())
	if id["project"] != project {
		t.Fatalf("identity.json of %s: project %v, want %s", tg.Name(), id["project"], project)
	}
	want := e.userCA(t, project).Keys[0]
	fatalIf(t, waitFor(waitLong, func() error {
		if err := ag.alive(); err != nil {
			return err
		}
		b, err := os.ReadFile(tg.Path(agentCAKeys))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), strings.TrimSpace(want)) {
			return fmt.Errorf("%s does not hold project %s's user CA key yet", agentCAKeys, project)
		}
		return nil
	}), "first apply on "+tg.Name())
	return id
}

func TestAgentCloudEnrollment(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	now := time.Now()

	// The clouds: a region's signing certificate (and another region's) in
	// the bundle, an attacker's outside it; an issuer standing in for
	// Google, and a forger claiming to be it.
	region, otherRegion, attacker := awsSigner(t, "us-east-1"), awsSigner(t, "eu-west-1"), awsSigner(t, "attacker")
	bundle := filepath.Join(dir, "aws-certs.pem")
	fatalIf(t, os.WriteFile(bundle, append(append([]byte(nil), otherRegion.CertPEM...), region.CertPEM...), 0o644))
	issuer, forger := newIssuer(t), newIssuer(t)
	issuer.URL = serveOn(t, cloudFakesIP, issuer)
	forger.URL = issuer.URL
	audience := "https://" + net.JoinHostPort(cloudNodeIP, portAPI)

	node := StartDevNodeWith(t, "cloud", cloudNodeIP, fmt.Sprintf(`agents:
  aws:
    certs_file: %q
    accounts:
      "%s": web
    max_age: 1h
  gcp:
    issuer: %q
    audience: %q
    projects:
      %s: db
`, bundle, cloudAccount, issuer.URL, audience, cloudGCPProject))
	e := &policyEnv{jumpEnv: &jumpEnv{node: node, dir: dir}}
	var hostCA api.CAKeys
	do(t, e.api(), http.MethodGet, "/v1/ca/host", nil, &hostCA)
	e.knownHosts = filepath.Join(dir, "known_hosts")
	fatalIf(t, os.WriteFile(e.knownHosts, []byte("@cert-authority * "+hostCA.Keys[0]+"\n"), 0o600))
	e.key, e.config = e.signIn(t, "alice")
	for _, p := range []string{"web", "db"} {
		do(t, e.api(), http.MethodPut, "/v1/projects/"+p, api.Project{Description: p + " servers"}, nil)
	}

	// The pin as docs/agent.md tells an operator to compute it on a node.
	pin := pinWithOpenSSL(t, filepath.Join(node.DataDir, "tls", "ca.crt"))
	if want := pinOf(t, node.c.CAPEM()); pin != want {
		t.Fatalf("openssl computes the CA pin as %s, the cluster's is %s", pin, want)
	}
	t.Logf("dev node with cloud enrollment, alice bound, projects web and db: %s", time.Since(start).Round(time.Millisecond))
	base := cloudAgent{apiAddr: node.APIAddr(), pin: pin, awsForm: "signature", audience: audience}

	// AWS: the document and its /signature.
	awsDoc := cloudidtest.AWSDocument{AccountID: cloudAccount, InstanceID: cloudidtest.RandomInstanceID(), Region: "us-east-1",
		AvailabilityZone: "us-east-1a", PrivateIP: cloudAWSIP, PendingTime: now.Add(-5 * time.Minute)}.Bytes()
	awsSig := signAWS(t, region, awsDoc)
	awsIMDS := &cloudidtest.IMDS{}
	awsIMDS.SetIdentity(awsDoc, awsSig, "")
	awsTarget := NewTarget(t, TargetConfig{Name: "aws-1", IP: cloudAWSIP, UsePAM: true, HostKeyTypes: []string{"ed25519"}})
	aws := base
	aws.mode, aws.awsURL = "aws", serveOn(t, cloudFakesIP, awsIMDS)
	writeCloudAgentFiles(t, awsTarget, "aws-1", aws)
	fatalIf(t, awsTarget.Start(), "start aws-1")

	// GCP: an instance identity token from the metadata server.
	gcpInstance := cloudidtest.GCPInstance{ProjectID: cloudGCPProject, ProjectNumber: 424242424242, InstanceID: cloudidtest.RandomGCPInstanceID(),
		InstanceName: "gcp-1", Zone: "projects/424242424242/zones/europe-west1-b"}
	gcpMeta := &cloudidtest.GCPMetadata{}
	var gcpTokens []string
	gcpMeta.SetToken(func(aud, format string) (string, error) {
		tok, err := issuer.GCPToken(gcpInstance, aud, time.Now(), time.Time{}, format == "full")
		gcpTokens = append(gcpTokens, tok)
		return tok, err
	})
	gcpTarget := NewTarget(t, TargetConfig{Name: "gcp-1", IP: cloudGCPIP, UsePAM: true, HostKeyTypes: []string{"ed25519"}})
	gcp := base
	gcp.mode, gcp.gcpURL = "gcp", serveOn(t, cloudFakesIP, gcpMeta)
	writeCloudAgentFiles(t, gcpTarget, "gcp-1", gcp)
	fatalIf(t, gcpTarget.Start(), "start gcp-1")

	awsAgent, gcpAgent := startAgent(t, awsTarget), startAgent(t, gcpTarget)
	awsID := waitEnrolled(t, e, awsTarget, awsAgent, "web")
	gcpID := waitEnrolled(t, e, gcpTarget, gcpAgent, "db")
	t.Logf("both enrolled and applied after %s", time.Since(start).Round(time.Millisecond))
	if awsIMDS.Gets() != 2 {
		t.Errorf("the agent made %d identity GETs to IMDS, want 2 (document, signature)", awsIMDS.Gets())
	}
	if aud := gcpMeta.Audiences(); len(aud) != 1 || aud[0] != audience {
		t.Errorf("audiences asked of the metadata server: %q, want [%s]", aud, audience)
	}

	servers := listServers(t, e)
	t.Run("ok/aws", func(t *testing.T) {
		s := servers["aws-1"]
		if s.Project != "web" || s.EnrollMethod != "aws" || !strings.Contains(string(awsDoc), `"`+s.InstanceID+`"`) || s.InstanceID == "" || s.ID != awsID["server_id"] {
			t.Fatalf("servers ls: aws-1 = %+v, identity %v", s, awsID)
		}
	})
	t.Run("ok/gcp", func(t *testing.T) {
		s := servers["gcp-1"]
		if s.Project != "db" || s.EnrollMethod != "gcp" || s.InstanceID != gcpInstance.InstanceID || s.ID != gcpID["server_id"] {
			t.Fatalf("servers ls: gcp-1 = %+v, identity %v", s, gcpID)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Refusals, each by one agent run that must exit 1 saying why, and
	// register nothing.
	plain := NewCluster(t, "cloud-plain", cloudPlainIP)
	fatalIf(t, plain.Start(), "start a node without cloud settings")
	bad := NewTarget(t, TargetConfig{Name: "cloud-bad", IP: cloudBadIP, UsePAM: true, HostKeyTypes: []string{"ed25519"}})
	badIMDS, badMeta := &cloudidtest.IMDS{}, &cloudidtest.GCPMetadata{}
	badAWS, badGCP := base, base
	badAWS.mode, badAWS.awsURL = "aws", serveOn(t, cloudFakesIP, badIMDS)
	badGCP.mode, badGCP.gcpURL = "gcp", serveOn(t, cloudFakesIP, badMeta)
	awsDocOf := func(f func(d *cloudidtest.AWSDocument)) []byte {
		d := cloudidtest.AWSDocument{AccountID: cloudAccount, InstanceID: cloudidtest.RandomInstanceID(), Region: "us-east-1",
			AvailabilityZone: "us-east-1b", PrivateIP: cloudBadIP, PendingTime: time.Now().Add(-time.Minute)}
		if f != nil {
			f(&d)
		}
		return d.Bytes()
	}
	var badTokens []string
	gcpToken := func(inst cloudidtest.GCPInstance, signer *cloudidtest.Issuer, iat, exp time.Time) func(aud, format string) (string, error) {
		return func(aud, format string) (string, error) {
			tok, err := signer.GCPToken(inst, aud, iat, exp, format == "full")
			badTokens = append(badTokens, tok)
			return tok, err
		}
	}
	otherInstance := gcpInstance
	otherInstance.InstanceID, otherInstance.InstanceName = cloudidtest.RandomGCPInstanceID(), "cloud-bad"
	unmappedInstance := otherInstance
	unmappedInstance.ProjectID = "acme-dev"
	for _, tc := range []struct {
		name  string
		agent cloudAgent
		setup func()
		want  string
	}{
		{"fail/aws-forged-document", badAWS, func() {
			// Signed, then moved to another account.
			doc := awsDocOf(nil)
			forged := bytes.Replace(doc, []byte(cloudAccount), []byte("123456789013"), 1)
			badIMDS.SetIdentity(forged, signAWS(t, region, doc), "")
		}, "signature does not verify against this cluster's AWS certificates"},
		{"fail/aws-forged-signature", badAWS, func() {
			doc := awsDocOf(nil)
			badIMDS.SetIdentity(doc, signAWS(t, attacker, doc), "")
		}, "signature does not verify against this cluster's AWS certificates"},
		{"fail/aws-forged-rsa2048", withForm(badAWS, "rsa2048"), func() {
			p7, err := attacker.RSA2048(awsDocOf(nil))
			fatalIf(t, err)
			badIMDS.SetIdentity(nil, "", p7)
		}, "PKCS #7 signature does not verify"},
		{"fail/aws-unmapped-account", badAWS, func() {
			doc := awsDocOf(func(d *cloudidtest.AWSDocument) { d.AccountID = "210987654321" })
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "AWS account 210987654321 is not mapped to a Rampart project"},
		{"fail/aws-stale-pending-time", badAWS, func() {
			doc := awsDocOf(func(d *cloudidtest.AWSDocument) { d.PendingTime = time.Now().Add(-2 * time.Hour) })
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "auto-enrollment is allowed only within agents.aws.max_age of launch"},
		{"fail/aws-second-enrollment", badAWS, func() { badIMDS.SetIdentity(awsDoc, awsSig, "") },
			"is already enrolled as server aws-1"},
		{"fail/aws-not-configured", onNode(t, badAWS, plain), func() {
			doc := awsDocOf(nil)
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "this cluster does not accept AWS auto-enrollment"},
		{"fail/gcp-expired", badGCP, func() {
			badMeta.SetToken(gcpToken(otherInstance, issuer, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
		}, "the GCP instance identity token expired"},
		{"fail/gcp-wrong-audience", withAudience(badGCP, "https://bastion.example.org:8443"), func() {
			badMeta.SetToken(gcpToken(otherInstance, issuer, time.Now(), time.Time{}))
		}, `is for audience "https://bastion.example.org:8443", not this cluster's`},
		{"fail/gcp-unmapped-project", badGCP, func() {
			badMeta.SetToken(gcpToken(unmappedInstance, issuer, time.Now(), time.Time{}))
		}, "GCP project acme-dev is not mapped to a Rampart project"},
		{"fail/gcp-forged", badGCP, func() {
			badMeta.SetToken(gcpToken(otherInstance, forger, time.Now(), time.Time{}))
		}, "is not a valid token of the issuer"},
		{"fail/gcp-second-enrollment", badGCP, func() {
			badMeta.SetToken(gcpToken(gcpInstance, issuer, time.Now(), time.Time{}))
		}, "is already enrolled as server gcp-1"},
		{"fail/gcp-not-configured", onNode(t, badGCP, plain), func() {
			badMeta.SetToken(gcpToken(otherInstance, issuer, time.Now(), time.Time{}))
		}, "this cluster does not accept GCP auto-enrollment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			writeCloudAgentFiles(t, bad, "cloud-bad", tc.agent)
			nodeLog := node.current().stderrPath
			logOffset := fileSize(t, nodeLog)
			out := runAgentToExit(t, bad)
			if !strings.Contains(out, tc.want) {
				t.Errorf("agent output does not say %q:\n%s", tc.want, out)
			}
			t.Logf("agent refused:\n%s", strings.TrimSpace(out))
			for _, tok := range badTokens {
				if strings.Contains(out, tok) {
					t.Errorf("the agent printed the GCP token")
				}
			}
			if _, err := os.Stat(bad.Path(agentDataDir + "/identity.json")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("identity.json after a refused enrollment: %v", err)
			}
			if s, ok := listServers(t, e)["cloud-bad"]; ok {
				t.Errorf("a refused enrollment registered a server: %+v", s)
			}
			if tc.agent.apiAddr == node.APIAddr() {
				lines, err := readLinesFrom(nodeLog, logOffset)
				fatalIf(t, err)
				refused := regexp.MustCompile(`refused enrollment.*server_name=cloud-bad`)
				var found bool
				for _, l := range lines {
					if !found && refused.MatchString(l) {
						found = true
						t.Logf("node logged: %s", l)
					}
					for _, tok := range badTokens {
						if strings.Contains(l, tok) {
							t.Errorf("the node logged the GCP token: %s", l)
						}
					}
				}
				if !found {
					t.Errorf("the node did not log the refusal of cloud-bad")
				}
			}
		})
	}

	// The PKCS #7 form (/rsa2048) enrolls too, and the node logged no GCP
	// token at any point.
	t.Run("ok/aws-rsa2048", func(t *testing.T) {
		doc := awsDocOf(nil)
		p7, err := region.RSA2048(doc)
		fatalIf(t, err)
		badIMDS.SetIdentity(doc, "", p7)
		writeCloudAgentFiles(t, bad, "aws-2", withForm(badAWS, "rsa2048"))
		fatalIf(t, bad.Start(), "start the target's sshd")
		ag := startAgent(t, bad)
		id := waitEnrolled(t, e, bad, ag, "web")
		s := listServers(t, e)["aws-2"]
		if s.Project != "web" || s.EnrollMethod != "aws" || s.ID != id["server_id"] || !strings.Contains(string(doc), `"`+s.InstanceID+`"`) {
			t.Fatalf("servers ls: aws-2 = %+v, identity %v", s, id)
		}
	})
	// Token enrollment, sharing the same registration, is unchanged.
	t.Run("ok/token", func(t *testing.T) {
		token := strings.TrimSpace(e.admin(t, "tokens", "create", "web", "--uses", "1", "--quiet").stdout)
		tg := NewTarget(t, TargetConfig{Name: "tok-1", IP: cloudTokenIP, UsePAM: true, HostKeyTypes: []string{"ed25519"}})
		writeAgentFiles(t, tg, node, token)
		fatalIf(t, tg.Start(), "start tok-1")
		ag := startAgent(t, tg)
		id := waitEnrolled(t, e, tg, ag, "web")
		s := listServers(t, e)["tok-1"]
		if s.Project != "web" || s.EnrollMethod != "token" || s.InstanceID != "" || s.ID != id["server_id"] {
			t.Fatalf("servers ls: tok-1 = %+v, identity %v", s, id)
		}
		if _, err := os.Stat(tg.Path(agentTokenFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the token file is still there after enrolling (%v)", err)
		}
	})
	nodeLog := string(mustRead(t, node.current().stderrPath))
	for _, tok := range append(gcpTokens, badTokens...) {
		if strings.Contains(nodeLog, tok) {
			t.Errorf("the node's log holds a GCP identity token")
		}
	}
}

// runAgentToExit runs the agent in tg until it exits, which must be with
// status 1, and returns its output.
func runAgentToExit(t *testing.T, tg *Target) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cmd, logPath := agentCommand(ctx, t, tg)
	err := cmd.Run()
	out, _ := os.ReadFile(logPath)
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("agent: %v (ctx %v), want exit status 1; output:\n%s", err, ctx.Err(), out)
	}
	return string(out)
}

func withForm(c cloudAgent, form string) cloudAgent { c.awsForm = form; return c }

func withAudience(c cloudAgent, aud string) cloudAgent { c.audience = aud; return c }

// onNode points the agent at the first node of another cluster.
func onNode(t testing.TB, c cloudAgent, other *Cluster) cloudAgent {
	c.apiAddr = other.Nodes[0].APIAddr()
	c.pin = pinOf(t, other.CAPEM())
	return c
}

// pinWithOpenSSL computes a CA certificate's pin with the command line
// docs/agent.md gives operators.
func pinWithOpenSSL(t testing.TB, caCert string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum`, "sh", caCert).CombinedOutput()
	fatalIf(t, err, "openssl: "+string(out))
	f := strings.Fields(string(out))
	if len(f) == 0 {
		t.Fatalf("sha256sum printed nothing")
	}
	return "sha256:" + f[0]
}

func awsSigner(t testing.TB, region string) *cloudidtest.AWSSigner {
	t.Helper()
	s, err := cloudidtest.NewAWSSigner(region)
	fatalIf(t, err, "AWS signer")
	return s
}

func signAWS(t testing.TB, s *cloudidtest.AWSSigner, doc []byte) string {
	t.Helper()
	sig, err := s.Signature(doc)
	fatalIf(t, err, "sign AWS document")
	return sig
}

func newIssuer(t testing.TB) *cloudidtest.Issuer {
	t.Helper()
	iss, err := cloudidtest.NewIssuer()
	fatalIf(t, err, "issuer")
	return iss
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	fatalIf(t, err)
	return fi.Size()
}

// A node refuses to start with broken cloud enrollment settings, listing
// every problem at once.
func TestAgentCloudEnrollmentConfigRefused(t *testing.T) {
	c := NewCluster(t, "cloud-config", "127.0.0.68")
	n := c.Nodes[0]
	notPEM := filepath.Join(c.Dir, "not-pem")
	fatalIf(t, os.WriteFile(notPEM, []byte("these are not certificates\n"), 0o600))
	cfg := filepath.Join(c.Dir, "rampartd.yaml")
	fatalIf(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`agents:
  aws:
    certs_file: %q
    accounts:
      12345678901: web
    max_age: 10s
  gcp:
    issuer: http://accounts.example.com
    projects:
      Acme_Prod: web
`, notPEM)), 0o600))
	res, err := n.Run(waitLong, append(n.BaseArgs(), "--bootstrap", "--config", cfg)...)
	fatalIf(t, err)
	if res.ExitCode != 2 {
		t.Fatalf("rampartd exited %d, want 2; stderr:\n%s", res.ExitCode, res.Stderr)
	}
	for _, want := range []string{
		"agents.aws.certs_file " + notPEM + ": no PEM certificate",
		`agents.aws.accounts: "12345678901" is not a 12-digit AWS account id`,
		"agents.aws.max_age 10s: must be at least 1m",
		"agents.gcp.audience is empty",
		`agents.gcp.projects: "acme_prod" is not a GCP project id`,
		`agents.gcp.issuer "http://accounts.example.com": must be https`,
	} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("rampartd's refusal does not say %q:\n%s", want, res.Stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "tls", "ca.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused configuration still created the cluster (%v)", err)
	}
}
