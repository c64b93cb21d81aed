package e2e

// Trust boundaries of enrollment (docs/security.md): a second token
// enrollment of an enrolled server (same name, same machine id, read from the
// world-readable /etc/machine-id) cannot move it to another address or other
// host keys.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// enrollDirect posts one enrollment as an agent would, with the token's
// pin; an answer other than 200 is an error holding its status and message.
func enrollDirect(token string, req api.EnrollRequest) (*api.EnrollResponse, error) {
	tok, err := api.ParseToken(token)
	if err != nil {
		return nil, err
	}
	req.Method, req.Secret = api.EnrollToken, tok.Secret
	c, err := client.New(tok.Addrs[:1], client.WithPin(tok.CAPin))
	if err != nil {
		return nil, err
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	return c.Enroll(ctx, &req)
}

// impostorKeys are an agent key (PEM PUBLIC KEY) and an sshd host key
// (authorized_keys line) that belong to nobody's server.
func impostorKeys(t testing.TB) (agentPub, hostKey string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fatalIf(t, err)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	fatalIf(t, err)
	hk, err := gossh.NewPublicKey(mustEd25519(t))
	fatalIf(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), strings.TrimSpace(string(gossh.MarshalAuthorizedKey(hk)))
}

// serverShown is what `servers show --json` prints of a server.
type serverShown struct {
	ID       string   `json:"id"`
	Addr     string   `json:"addr"`
	HostKeys []string `json:"host_keys"`
}

func TestEnrollCannotTakeOverServer(t *testing.T) {
	e, _ := setupEnrollNode(t, "trust-enroll", "")
	tg, ag := startAgentTarget(t, e.node, "db-1", newIP(t, "db-1"), e.enrollToken(t))
	ag.waitApplied(t, "enroll and provision db-1", hasAccount(tg, "alice"))
	impostorIP := newIP(t, "the impostor")
	show := func(t *testing.T) serverShown {
		var s serverShown
		out := e.admin(t, "servers", "show", "db-1", "--json").stdout
		fatalIf(t, json.Unmarshal([]byte(out), &s), "servers show --json: "+out)
		return s
	}
	before := show(t)
	machineID := strings.TrimSpace(string(mustRead(t, tg.Path(agentEtc+"/machine-id"))))

	// Anyone with a shell on db-1 reads its machine id; with one use of a
	// project token they enroll "db-1" again from their own address.
	t.Run("fail/same-name-and-machine-id", func(t *testing.T) {
		second := e.enrollToken(t)
		agentPub, hostKey := impostorKeys(t)
		_, err := enrollDirect(second, api.EnrollRequest{MachineID: machineID, Name: "db-1", Addr: impostorIP, SSHPort: 22,
			HostKeys: []string{hostKey}, PublicKey: agentPub})
		if err == nil || !strings.Contains(err.Error(), "HTTP 409") || !strings.Contains(err.Error(), "already enrolled") {
			t.Fatalf("a second enrollment of db-1 with its machine id: %v; want HTTP 409, already enrolled", err)
		}
		t.Logf("refused: %v", err)
		after := show(t)
		if after.ID != before.ID || after.Addr != tg.IP() || !slices.Equal(after.HostKeys, before.HostKeys) {
			t.Fatalf("db-1 after the refused enrollment: %+v; before: %+v", after, before)
		}
		var found bool
		for _, ev := range auditOf(t, e, "enrollment.refuse") {
			if ev.Fields["server"] == "db-1" && ev.Fields["addr"] == impostorIP && ev.Fields["project"] == "web" {
				found = true
			}
		}
		if !found {
			t.Errorf("no enrollment.refuse audit event for db-1 from %s: %+v", impostorIP, auditOf(t, e, "enrollment.refuse"))
		}
	})

	// The real agent is untouched: its credential still pulls, and a jump
	// still lands on the real sshd, which the cluster's pinned key proves.
	t.Run("ok/real-agent-keeps-working", func(t *testing.T) {
		fatalIf(t, ag.alive(), "the real agent")
		fatalIf(t, pullWith(e.node, mustRead(t, tg.Path(agentDataDir+"/agent.crt")), mustRead(t, tg.Path(agentDataDir+"/agent.key")), machineID),
			"a pull with the real agent's certificate")
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@db-1", "cat /etc/hostname; id -un")
		if r.code != 0 || !strings.Contains(r.stdout, "alice") {
			t.Fatalf("ssh -J … alice@db-1: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
	})
}
