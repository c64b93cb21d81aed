package e2e

// A refused enrollment does not spend a use of its token: requests the
// cluster would refuse anyway (a malformed server name, a name another
// server holds) are refused before the token is used, so a one-use token
// still enrolls the server afterwards. The dev node is on testIP(124).

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

func mustSSHPublicKey(t *testing.T) gossh.PublicKey {
	t.Helper()
	k, err := gossh.NewPublicKey(mustEd25519(t))
	fatalIf(t, err)
	return k
}

var enrollTokenNodeIP = testIP(124)

// signedInEnv is a policyEnv on node with alice signed in (for the admin
// shell), trusting the node's host CA.
func signedInEnv(t *testing.T, node *DevNode) *policyEnv {
	t.Helper()
	e := trustingEnv(t, node)
	e.key, e.config = e.signIn(t, "alice")
	return e
}

// trustingEnv is a policyEnv on node whose known_hosts trusts the node's
// host CAs, with nobody signed in yet.
func trustingEnv(t *testing.T, node *DevNode) *policyEnv {
	t.Helper()
	e := &policyEnv{jumpEnv: &jumpEnv{node: node, dir: t.TempDir()}}
	e.knownHosts = filepath.Join(e.dir, "known_hosts")
	fatalIf(t, os.WriteFile(e.knownHosts, []byte(hostCALines(t, e.api())), 0o600))
	return e
}

func TestEnrollRefusalKeepsTokenUse(t *testing.T) {
	e := signedInEnv(t, StartDevNode(t, "enroll-token", enrollTokenNodeIP))
	node := e.node
	e.setProject(t, api.ProjectSettings{})
	do(t, e.api(), http.MethodPut, "/v1/servers/web-1", api.Server{Project: "web", Name: "web-1", Addr: testIP(125),
		HostKeys: []string{strings.TrimSpace(string(gossh.MarshalAuthorizedKey(mustSSHPublicKey(t))))}}, nil)
	token := strings.TrimSpace(e.admin(t, "tokens", "create", "web", "--uses", "1", "--quiet").stdout)
	parsed, err := api.ParseToken(token)
	fatalIf(t, err)
	enrollAs := func(name string, altNames ...string) error {
		return postEnroll(t, node, api.EnrollRequest{Method: api.EnrollToken, Secret: parsed.Secret, Name: name, AltNames: altNames, Addr: testIP(126)})
	}
	enroll := func(name string) error { return enrollAs(name) }
	// Without a usable token nothing about the project's servers is told:
	// a name another server holds is refused as the token is, not as a
	// conflict.
	if err := postEnroll(t, node, api.EnrollRequest{Method: api.EnrollToken, Secret: "not-a-token", Name: "web-1", Addr: testIP(126)}); StatusOf(err) != http.StatusForbidden {
		t.Fatalf("enroll as web-1 with an unknown token: %v; want 403", err)
	}
	for _, tc := range []struct {
		name     string
		altNames []string
		status   int
	}{
		{"bad_name!", nil, http.StatusBadRequest},
		{"web-1", nil, http.StatusConflict},
		// web-1's address as a name: its traffic would follow the name.
		{"web-2", []string{testIP(125)}, http.StatusConflict},
		// An address among the names must be the server's own.
		{"web-2", []string{"192.0.2.77"}, http.StatusForbidden},
		// The node's own address.
		{"web-2", []string{enrollTokenNodeIP}, http.StatusForbidden},
	} {
		if err := enrollAs(tc.name, tc.altNames...); StatusOf(err) != tc.status {
			t.Fatalf("enroll as %q %v: %v; want %d", tc.name, tc.altNames, err, tc.status)
		}
	}
	if err := enroll("web-2"); err != nil {
		t.Fatalf("enroll as web-2 after the refusals: %v (a refusal spent the one-use token)", err)
	}
	if err := enroll("web-3"); StatusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("second enrollment with the one-use token: %v; want 403", err)
	}
}
