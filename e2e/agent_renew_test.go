package e2e

// Agent certificate renewal: a dev node issuing agent certificates valid for
// only 45 seconds, and the real agent in a target. The agent must renew its
// certificate on its own, over its own mutual-TLS channel, and keep the
// target in step past the first certificate's expiry - across a node restart
// that forces it to open new connections with whatever certificate it has.
// The renewal kills the first certificate at once, although it is valid
// for a while yet.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// readAgentCert parses the agent's certificate in the target's data dir.
func readAgentCert(t testing.TB, tg *Target) *x509.Certificate {
	t.Helper()
	cert, err := api.ParseCertPEM(mustRead(t, tg.Path(agentDataDir+"/agent.crt")))
	fatalIf(t, err, "agent.crt")
	return cert
}

// pullWith asks the node for the agent state with a client certificate, as
// the agent of machineID would.
func pullWith(node *DevNode, certPEM, keyPEM []byte, machineID string) error {
	return asAgent(node, certPEM, keyPEM, machineID, func(ctx context.Context, c *client.Client) error {
		_, err := c.AgentState(ctx, client.StateQuery{})
		return err
	})
}

// renewWith asks the node to certify pub with a client certificate, as the
// agent of machineID would.
func renewWith(node *DevNode, certPEM, keyPEM []byte, machineID, pub string) error {
	return asAgent(node, certPEM, keyPEM, machineID, func(ctx context.Context, c *client.Client) error {
		_, err := c.RenewAgentCert(ctx, &api.AgentRenewRequest{PublicKey: pub})
		return err
	})
}

// asAgent makes one call of the node's API with a client certificate, as
// the agent of machineID would; an answer other than 2xx is a
// *client.Error ("HTTP <status>: <message>").
func asAgent(node *DevNode, certPEM, keyPEM []byte, machineID string, call func(context.Context, *client.Client) error) error {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	c := node.NewAPI(client.WithRootCAs(node.c.CAPool()), client.WithMachineID(machineID),
		client.WithClientCertificate(func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }))
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return call(ctx, c)
}

// publicKeyPEMOf is the PEM PUBLIC KEY of the private key in keyPEM.
func publicKeyPEMOf(t testing.TB, keyPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		t.Fatal("the agent key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	fatalIf(t, err, "parse the agent key")
	der, err := x509.MarshalPKIXPublicKey(key.(crypto.Signer).Public())
	fatalIf(t, err, "marshal the agent public key")
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestAgentRenewsCertificate(t *testing.T) {
	const validity = 45 * time.Second
	e, cfgPath := setupEnrollNode(t, "renew", fmt.Sprintf("agents:\n  cert_validity: %s\n", validity))
	tg, ag := startAgentTarget(t, e.node, "web-renew", newIP(t, "web-renew"), e.enrollToken(t))
	ag.waitApplied(t, "enroll and provision", hasAccount(tg, "alice"))

	first := readAgentCert(t, tg)
	firstKey := mustRead(t, tg.Path(agentDataDir+"/agent.key"))
	// Issued for agents.cert_validity (NotBefore is backdated 5 minutes).
	if life := first.NotAfter.Sub(first.NotBefore) - 5*time.Minute; life < validity-2*time.Second || life > validity+2*time.Second {
		t.Fatalf("the enrollment certificate is valid for %s, want %s (agents.cert_validity)", life, validity)
	}
	t.Logf("enrolled; first certificate %s expires %s", first.SerialNumber, first.NotAfter.Format(time.TimeOnly))

	// Renewed on its own, two thirds into the lifetime: a new key, a later
	// expiry.
	fatalIf(t, waitFor(validity+waitLong, func() error {
		if err := ag.alive(); err != nil {
			return err
		}
		if c := readAgentCert(t, tg); c.SerialNumber.Cmp(first.SerialNumber) == 0 {
			return errors.New("agent.crt is still the first certificate")
		}
		return nil
	}), "renewal")
	second := readAgentCert(t, tg)
	t.Logf("renewed at %s; certificate %s expires %s", time.Now().Format(time.TimeOnly), second.SerialNumber, second.NotAfter.Format(time.TimeOnly))
	if !second.NotAfter.After(first.NotAfter) {
		t.Errorf("the renewed certificate expires %s, not after the first's %s", second.NotAfter, first.NotAfter)
	}
	if bytes.Equal(mustRead(t, tg.Path(agentDataDir+"/agent.key")), firstKey) {
		t.Error("the renewal kept the old key")
	}
	var ident struct {
		ServerID string `json:"server_id"`
	}
	fatalIf(t, json.Unmarshal(mustRead(t, tg.Path(agentDataDir+"/identity.json")), &ident), "identity.json")
	if role, id, _ := api.Identity(second); role != api.RoleAgent || id != ident.ServerID {
		t.Errorf("the renewed certificate names %s %s, want agent %s", role, id, ident.ServerID)
	}
	if !strings.Contains(string(mustRead(t, ag.log)), "renewed the agent certificate") {
		t.Error("the agent did not log its renewal")
	}

	// The first certificate is valid for a third of its life yet, but the
	// renewal moved the server's agent key: the node refuses it at once,
	// for pulls and for renewing to any key but the one that replaced it.
	machineID := strings.TrimSpace(string(mustRead(t, tg.Path(agentEtc+"/machine-id"))))
	firstPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: first.Raw})
	if left := time.Until(first.NotAfter); left < time.Second {
		t.Fatalf("the first certificate has %s left: too little to show that the renewal, not its expiry, killed it", left)
	}
	err := pullWith(e.node, firstPEM, firstKey, machineID)
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "was replaced (renewed or re-enrolled)") {
		t.Fatalf("a pull with the replaced, unexpired first certificate: %v; want HTTP 401, replaced", err)
	}
	err = renewWith(e.node, firstPEM, firstKey, machineID, publicKeyPEMOf(t, firstKey))
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("renewing back to the first key with the first certificate: %v; want HTTP 401", err)
	}
	t.Logf("the replaced first certificate, valid for %s more, is refused: %v", time.Until(first.NotAfter).Round(time.Second), err)
	secondPEM, secondKey := mustRead(t, tg.Path(agentDataDir+"/agent.crt")), mustRead(t, tg.Path(agentDataDir+"/agent.key"))
	fatalIf(t, pullWith(e.node, secondPEM, secondKey, machineID), "a pull with the renewed certificate")

	// Past the first certificate's expiry, the node refuses it: an agent that
	// had not renewed would be locked out from here on.
	fatalIf(t, waitFor(validity+waitLong, func() error {
		if left := time.Until(first.NotAfter); left > -time.Second {
			return fmt.Errorf("the first certificate is valid for %s more", left.Round(time.Second))
		}
		return nil
	}), "the first certificate's expiry")
	if err := pullWith(e.node, firstPEM, firstKey, machineID); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a pull with the expired first certificate: %v; want a TLS refusal", err)
	}
	current := mustRead(t, tg.Path(agentDataDir+"/agent.crt"))
	fatalIf(t, pullWith(e.node, current, mustRead(t, tg.Path(agentDataDir+"/agent.key")), machineID), "a pull with the agent's current certificate")

	// A node restart drops every connection: the agent must come back with
	// a valid certificate, and a change made now must still reach alice.
	_, err = e.node.Stop(waitStop)
	fatalIf(t, err, "stop the node")
	fatalIf(t, e.node.Start("--dev", "--config", cfgPath), "restart the node")
	e.node.API().CloseIdleConnections()
	_, err = e.node.c.WaitLeader(waitLong, e.node.Node)
	fatalIf(t, err, "leader after the restart")
	changed := time.Now()
	grant(t, e.api(), "web", "rampart-admins")
	ag.waitApplied(t, "a change after the first certificate expired", func() error {
		if gs, err := targetGroups(tg, "alice"); err != nil || !slices.Contains(gs, "rampart-admins") {
			return fmt.Errorf("id -Gn alice: %v, %v", gs, err)
		}
		return nil
	})
	t.Logf("the change reached the target %s after it was made, %s after the first certificate expired",
		time.Since(changed).Round(time.Millisecond), time.Since(first.NotAfter).Round(time.Second))
	var renewals []string
	for _, l := range strings.Split(string(mustRead(t, ag.log)), "\n") {
		if strings.Contains(l, "renew") || strings.Contains(l, "replaced") {
			renewals = append(renewals, l)
		}
	}
	t.Logf("the agent's renewals:\n%s", strings.Join(renewals, "\n"))
}
