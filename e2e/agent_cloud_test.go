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
// Refusals are shown both through the real agent and, for what only a
// process other than the agent would send (an sshd port above 1023, which
// the agent refuses itself), by POSTing the enrollment directly: anything
// on an instance can read its identity, and the cluster must bound what it
// can claim with it.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/gateway/cloudid/cloudidtest"
)

const (
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
	cert, err := api.ParseCertPEM(caPEM)
	fatalIf(t, err, "cluster CA")
	return api.Pin(cert)
}

// cloudAgent is the cloud part of an agent's configuration.
type cloudAgent struct {
	apiAddr, pin, mode string
	// awsURL, awsForm, gcpURL, audience: the metadata services and
	// what to ask them.
	awsURL, awsForm, gcpURL, audience string
	// addr and sshPort override the target's address and sshd port in
	// the configuration.
	addr    string
	sshPort int
}

// writeCloudAgentFiles writes an agent configuration that auto-enrolls as
// name, and a fresh machine id, into the target; there is no token.
func writeCloudAgentFiles(t testing.TB, tg *Target, name string, c cloudAgent) {
	t.Helper()
	addr, port := tg.IP(), tg.Port()
	if c.addr != "" {
		addr = c.addr
	}
	if c.sshPort != 0 {
		port = c.sshPort
	}
	writeAgentConfig(t, tg, name, addr, port, fmt.Sprintf(`cluster: [%q]
ca_pin: %s
auto_enroll: %s
aws_metadata_url: %q
aws_identity_form: %q
gcp_metadata_url: %q
gcp_audience: %q
`, c.apiAddr, c.pin, c.mode, c.awsURL, c.awsForm, c.gcpURL, c.audience))
}

// cloudServer is a server as `servers ls --json` shows it (all but when
// it was last seen).
type cloudServer struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Project      string   `json:"project"`
	AltNames     []string `json:"alt_names"`
	Addr         string   `json:"addr"`
	SSHPort      int      `json:"ssh_port"`
	EnrollMethod string   `json:"enroll_method"`
	InstanceID   string   `json:"instance_id"`
	MachineID    string   `json:"machine_id"`
	HostKeys     []string `json:"host_keys"`
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
	ag.waitApplied(t, "enrollment of "+tg.Name(), func() error {
		b, err := os.ReadFile(tg.Path(agentDataDir + "/identity.json"))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &id)
	})
	if id["project"] != project {
		t.Fatalf("identity.json of %s: project %v, want %s", tg.Name(), id["project"], project)
	}
	want := e.userCA(t, project).Keys[0]
	ag.waitApplied(t, "first apply on "+tg.Name(), func() error {
		b, err := os.ReadFile(tg.Path(agentCAKeys))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), strings.TrimSpace(want)) {
			return fmt.Errorf("%s does not hold project %s's user CA key yet", agentCAKeys, project)
		}
		return nil
	})
	return id
}

func TestAgentCloudEnrollment(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	now := time.Now()
	// The fake metadata services and issuer share an address.
	cloudNodeIP, cloudFakesIP := newIP(t, "cloud node"), newIP(t, "the fake clouds")
	cloudAWSIP, cloudGCPIP, cloudBadIP := newIP(t, "aws-1"), newIP(t, "gcp-1"), newIP(t, "cloud-bad")
	cloudTokenIP, cloudPlainIP := newIP(t, "tok-1"), newIP(t, "cloud-plain node")

	// The clouds: a region's signing certificate (and another region's) in
	// the bundle, an attacker's outside it; an issuer standing in for
	// Google, and a forger claiming to be it.
	region, otherRegion, attacker := awsSigner(t, "us-east-1"), awsSigner(t, "eu-west-1"), awsSigner(t, "attacker")
	bundle := filepath.Join(dir, "aws-certs.pem")
	fatalIf(t, os.WriteFile(bundle, append(append([]byte(nil), otherRegion.CertPEM...), region.CertPEM...), 0o644))
	issuer, forger := newIssuer(t), newIssuer(t)
	issuerHits := &countingHandler{h: issuer}
	issuer.URL = serveOn(t, cloudFakesIP, issuerHits)
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
    max_age: 1h
    allow_reenroll: true
`, bundle, cloudAccount, issuer.URL, audience, cloudGCPProject))
	e := signedInEnv(t, node)
	for _, p := range []string{"web", "db"} {
		createProject(t, e.api(), p, api.ProjectSettings{})
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
	staleInstance := otherInstance
	staleInstance.CreatedAt = time.Now().Add(-2 * time.Hour)

	// refusedCleanly checks, after a refused enrollment as name, that
	// nothing was registered or changed, that the node logged the refusal
	// (when it was asked) and that no GCP token was printed or logged.
	refusedCleanly := func(t *testing.T, name string, before map[string]cloudServer, nodeLog string, logOffset int64, nodeAsked bool, out string) {
		t.Helper()
		for _, tok := range badTokens {
			if strings.Contains(out, tok) {
				t.Errorf("the agent printed the GCP token")
			}
		}
		if _, err := os.Stat(bad.Path(agentDataDir + "/identity.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("identity.json after a refused enrollment: %v", err)
		}
		if after := listServers(t, e); !reflect.DeepEqual(after, before) {
			t.Errorf("a refused enrollment changed the servers:\nbefore %+v\nafter  %+v", before, after)
		}
		if !nodeAsked {
			return
		}
		lines, err := readLinesFrom(nodeLog, logOffset)
		fatalIf(t, err)
		refused := regexp.MustCompile(`refused enrollment.*server_name=` + regexp.QuoteMeta(name) + `\b`)
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
			t.Errorf("the node did not log the refusal of %s", name)
		}
	}

	for _, tc := range []struct {
		name  string
		agent cloudAgent
		setup func()
		want  string
		// server is the name the agent enrolls as; "" is cloud-bad.
		server string
		// local: the agent refuses its configuration (exit status 2)
		// without asking the node.
		local bool
	}{
		{"fail/aws-forged-document", badAWS, func() {
			// Signed, then moved to another account.
			doc := awsDocOf(nil)
			forged := bytes.Replace(doc, []byte(cloudAccount), []byte("123456789013"), 1)
			badIMDS.SetIdentity(forged, signAWS(t, region, doc), "")
		}, "signature does not verify against this cluster's AWS certificates", "", false},
		{"fail/aws-forged-signature", badAWS, func() {
			doc := awsDocOf(nil)
			badIMDS.SetIdentity(doc, signAWS(t, attacker, doc), "")
		}, "signature does not verify against this cluster's AWS certificates", "", false},
		{"fail/aws-forged-rsa2048", withForm(badAWS, "rsa2048"), func() {
			p7, err := attacker.RSA2048(awsDocOf(nil))
			fatalIf(t, err)
			badIMDS.SetIdentity(nil, "", p7)
		}, "PKCS #7 signature does not verify", "", false},
		{"fail/aws-unmapped-account", badAWS, func() {
			doc := awsDocOf(func(d *cloudidtest.AWSDocument) { d.AccountID = "210987654321" })
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "AWS account 210987654321 is not mapped to a Rampart project", "", false},
		{"fail/aws-stale-pending-time", badAWS, func() {
			doc := awsDocOf(func(d *cloudidtest.AWSDocument) { d.PendingTime = time.Now().Add(-2 * time.Hour) })
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "auto-enrollment is allowed only within agents.aws.max_age of launch", "", false},
		// The document is genuine, but the bastion would be sent elsewhere.
		{"fail/aws-addr-not-private-ip", badAWS, func() {
			doc := awsDocOf(func(d *cloudidtest.AWSDocument) { d.PrivateIP = "10.0.3.17" })
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "addr " + cloudBadIP + " is not the private IP of AWS instance", "", false},
		{"fail/aws-unprivileged-port", withPort(badAWS, 2222), func() {
			doc := awsDocOf(nil)
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "ssh_port 2222: auto_enroll aws needs sshd on a privileged port", "", true},
		// A copy of aws-1's identity, claiming its address too.
		{"fail/aws-second-enrollment", withAddr(badAWS, cloudAWSIP), func() { badIMDS.SetIdentity(awsDoc, awsSig, "") },
			"is already enrolled as server aws-1", "", false},
		{"fail/aws-not-configured", onNode(t, badAWS, plain), func() {
			doc := awsDocOf(nil)
			badIMDS.SetIdentity(doc, signAWS(t, region, doc), "")
		}, "this cluster does not accept AWS auto-enrollment", "", false},
		{"fail/gcp-expired", badGCP, func() {
			badMeta.SetToken(gcpToken(otherInstance, issuer, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
		}, "the GCP instance identity token expired", "", false},
		// A fresh token of an instance created before agents.gcp.max_age.
		{"fail/gcp-stale-instance", badGCP, func() {
			badMeta.SetToken(gcpToken(staleInstance, issuer, time.Now(), time.Time{}))
		}, "auto-enrollment is allowed only within agents.gcp.max_age of its creation", "", false},
		{"fail/gcp-wrong-audience", withAudience(badGCP, "https://bastion.example.org:8443"), func() {
			badMeta.SetToken(gcpToken(otherInstance, issuer, time.Now(), time.Time{}))
		}, `is for audience "https://bastion.example.org:8443", not this cluster's`, "", false},
		{"fail/gcp-unmapped-project", badGCP, func() {
			badMeta.SetToken(gcpToken(unmappedInstance, issuer, time.Now(), time.Time{}))
		}, "GCP project acme-dev is not mapped to a Rampart project", "", false},
		{"fail/gcp-forged", badGCP, func() {
			badMeta.SetToken(gcpToken(otherInstance, forger, time.Now(), time.Time{}))
		}, "is not a valid token of the issuer", "", false},
		// agents.gcp.allow_reenroll is on: gcp-1's instance may enroll again,
		// but only as gcp-1 at gcp-1's address.
		{"fail/gcp-reenroll-other-name", badGCP, func() {
			badMeta.SetToken(gcpToken(gcpInstance, issuer, time.Now(), time.Time{}))
		}, `enrolling it again keeps the server's name (gcp-1), and this enrollment asks for "cloud-bad"`, "", false},
		{"fail/gcp-reenroll-other-addr", badGCP, func() {
			badMeta.SetToken(gcpToken(gcpInstance, issuer, time.Now(), time.Time{}))
		}, "enrolling it again keeps the server's address (" + cloudGCPIP + "), and this enrollment asks for " + cloudBadIP, "gcp-1", false},
		{"fail/gcp-not-configured", onNode(t, badGCP, plain), func() {
			badMeta.SetToken(gcpToken(otherInstance, issuer, time.Now(), time.Time{}))
		}, "this cluster does not accept GCP auto-enrollment", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := tc.server
			if server == "" {
				server = "cloud-bad"
			}
			tc.setup()
			writeCloudAgentFiles(t, bad, server, tc.agent)
			before := listServers(t, e)
			nodeLog := node.current().stderrPath
			logOffset := fileSize(t, nodeLog)
			exit := 1
			if tc.local {
				exit = 2
			}
			out := runAgentToExit(t, bad, exit)
			if !strings.Contains(out, tc.want) {
				t.Errorf("agent output does not say %q:\n%s", tc.want, out)
			}
			t.Logf("agent refused:\n%s", strings.TrimSpace(out))
			refusedCleanly(t, server, before, nodeLog, logOffset, tc.agent.apiAddr == node.APIAddr() && !tc.local, out)
		})
	}

	// What the agent refuses itself, a process that read the instance's
	// identity can still send: the node refuses it too.
	gcpEvidence := func(req *api.EnrollRequest) {
		tok, err := issuer.GCPToken(otherInstance, audience, time.Now(), time.Time{}, true)
		fatalIf(t, err)
		badTokens = append(badTokens, tok)
		req.Method, req.GCPToken = api.EnrollGCP, tok
	}
	awsEvidence := func(req *api.EnrollRequest) {
		doc := awsDocOf(nil)
		req.Method, req.AWSDocument, req.AWSSignature = api.EnrollAWS, string(doc), signAWS(t, region, doc)
	}
	for _, tc := range []struct {
		name     string
		evidence func(req *api.EnrollRequest)
		port     int
		want     string
	}{
		{"fail/aws-unprivileged-port-posted", awsEvidence, 2222, "ssh_port 2222: a server that enrolls with its cloud identity must run sshd on a privileged port (below 1024)"},
		{"fail/gcp-unprivileged-port-posted", gcpEvidence, 8022, "ssh_port 8022: a server that enrolls with its cloud identity must run sshd on a privileged port (below 1024)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := api.EnrollRequest{Name: "cloud-bad", Addr: cloudBadIP, SSHPort: tc.port}
			tc.evidence(&req)
			before := listServers(t, e)
			nodeLog := node.current().stderrPath
			logOffset := fileSize(t, nodeLog)
			err := postEnroll(t, node, req)
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || !strings.Contains(ae.Message, tc.want) {
				t.Fatalf("enrollment with ssh_port %d: %v; want 403 saying %q", tc.port, err, tc.want)
			}
			t.Logf("node refused: %s", ae.Message)
			refusedCleanly(t, "cloud-bad", before, nodeLog, logOffset, true, ae.Message)
		})
	}

	// gcp-1's instance enrolls again (its disk wiped: a new machine id, no
	// credential) as gcp-1 at its address: the same server, a new agent.
	t.Run("ok/gcp-reenroll", func(t *testing.T) {
		old := listServers(t, e)["gcp-1"]
		stopAgent(t, gcpAgent)
		writeCloudAgentFiles(t, gcpTarget, "gcp-1", gcp)
		ag := startAgent(t, gcpTarget)
		id := waitEnrolled(t, e, gcpTarget, ag, "db")
		s := listServers(t, e)["gcp-1"]
		if s.ID != old.ID || id["server_id"] != old.ID || s.Addr != cloudGCPIP || s.InstanceID != gcpInstance.InstanceID || s.MachineID == old.MachineID {
			t.Fatalf("after re-enrolling: gcp-1 = %+v (identity %v), before %+v; want the same server with a new machine id", s, id, old)
		}
	})

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
		tg, ag := startAgentTarget(t, node, "tok-1", cloudTokenIP, e.enrollToken(t))
		id := waitEnrolled(t, e, tg, ag, "web")
		s := listServers(t, e)["tok-1"]
		if s.Project != "web" || s.EnrollMethod != "token" || s.InstanceID != "" || s.ID != id["server_id"] {
			t.Fatalf("servers ls: tok-1 = %+v, identity %v", s, id)
		}
		if _, err := os.Stat(tg.Path(agentTokenFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the token file is still there after enrolling (%v)", err)
		}
	})
	// The node kept one GCP verifier: a single discovery of the issuer for
	// all the GCP enrollments above, and its keys fetched at most once a
	// minute (forged tokens with unknown keys included).
	discovery, keys := issuerHits.count("/.well-known/openid-configuration"), issuerHits.count("/jwks")
	if maxKeys := 2 + int(time.Since(start)/time.Minute); discovery != 1 || keys < 1 || keys > maxKeys {
		t.Errorf("the issuer served %d discovery and %d key requests, want 1 and 1-%d", discovery, keys, maxKeys)
	}
	nodeLog := string(mustRead(t, node.current().stderrPath))
	for _, tok := range append(gcpTokens, badTokens...) {
		if strings.Contains(nodeLog, tok) {
			t.Errorf("the node's log holds a GCP identity token")
		}
	}
}

// countingHandler counts the requests h serves, by path.
type countingHandler struct {
	h     http.Handler
	mu    sync.Mutex
	paths map[string]int
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.paths == nil {
		c.paths = map[string]int{}
	}
	c.paths[r.URL.Path]++
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *countingHandler) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[path]
}

// runAgentToExit runs the agent in tg until it exits, which must be with
// status want, and returns its output.
func runAgentToExit(t *testing.T, tg *Target, want int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cmd, logPath := agentCommand(ctx, t, tg)
	err := cmd.Run()
	out, _ := os.ReadFile(logPath)
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != want {
		t.Fatalf("agent: %v (ctx %v), want exit status %d; output:\n%s", err, ctx.Err(), want, out)
	}
	return string(out)
}

// postEnroll sends an enrollment as any process on an instance could, with
// host and agent keys of its own, and returns the node's answer.
func postEnroll(t *testing.T, node *DevNode, req api.EnrollRequest) error {
	t.Helper()
	hostKey, _, err := ed25519.GenerateKey(rand.Reader)
	fatalIf(t, err)
	sshKey, err := gossh.NewPublicKey(hostKey)
	fatalIf(t, err)
	agentKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fatalIf(t, err)
	der, err := x509.MarshalPKIXPublicKey(agentKey.Public())
	fatalIf(t, err)
	req.MachineID = randomHex(t) + randomHex(t)
	req.HostKeys = []string{strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshKey)))}
	req.PublicKey = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	// Enrollment needs no credential: the identity is the proof.
	c := node.NewAPI(client.WithRootCAs(node.c.CAPool()))
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	_, err = c.Enroll(ctx, &req)
	return err
}

func withForm(c cloudAgent, form string) cloudAgent { c.awsForm = form; return c }

func withAudience(c cloudAgent, aud string) cloudAgent { c.audience = aud; return c }

func withPort(c cloudAgent, port int) cloudAgent { c.sshPort = port; return c }

func withAddr(c cloudAgent, addr string) cloudAgent { c.addr = addr; return c }

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
	c := NewCluster(t, "cloud-config", newIP(t, "cloud-config node"))
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
    max_age: 30s
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
		"agents.gcp.max_age 30s: must be at least 1m",
	} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("rampartd's refusal does not say %q:\n%s", want, res.Stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(n.DataDir, "tls", "ca.crt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused configuration still created the cluster (%v)", err)
	}
}
