package e2e

// A refused enrollment does not spend a use of its token: requests the
// cluster would refuse anyway (a malformed server name, a name another
// server holds) are refused before the token is used, so a one-use token
// still enrolls the server afterwards.

import (
	"net/http"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

func mustSSHPublicKey(t *testing.T) gossh.PublicKey {
	t.Helper()
	k, err := gossh.NewPublicKey(mustEd25519(t))
	fatalIf(t, err)
	return k
}

func TestEnrollRefusalKeepsTokenUse(t *testing.T) {
	e := signedInEnv(t, StartDevNode(t, "enroll-token", newIP(t, "enroll-token node")))
	node := e.node
	web1IP, enrollingIP := newIP(t, "web-1"), newIP(t, "the enrolling server")
	e.setProject(t, api.ProjectSettings{})
	putServer(t, e.api(), "web-1", api.Server{Project: "web", Name: "web-1", Addr: web1IP,
		HostKeys: []string{strings.TrimSpace(string(gossh.MarshalAuthorizedKey(mustSSHPublicKey(t))))}})
	token := e.enrollToken(t)
	parsed, err := api.ParseToken(token)
	fatalIf(t, err)
	enrollAs := func(name string, altNames ...string) error {
		return postEnroll(t, node, api.EnrollRequest{Method: api.EnrollToken, Secret: parsed.Secret, Name: name, AltNames: altNames, Addr: enrollingIP})
	}
	enroll := func(name string) error { return enrollAs(name) }
	// Without a usable token nothing about the project's servers is told:
	// a name another server holds is refused as the token is, not as a
	// conflict.
	if err := postEnroll(t, node, api.EnrollRequest{Method: api.EnrollToken, Secret: "not-a-token", Name: "web-1", Addr: enrollingIP}); client.StatusOf(err) != http.StatusForbidden {
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
		{"web-2", []string{web1IP}, http.StatusConflict},
		// An address among the names must be the server's own.
		{"web-2", []string{"192.0.2.77"}, http.StatusForbidden},
		// The node's own address.
		{"web-2", []string{node.IP}, http.StatusForbidden},
	} {
		if err := enrollAs(tc.name, tc.altNames...); client.StatusOf(err) != tc.status {
			t.Fatalf("enroll as %q %v: %v; want %d", tc.name, tc.altNames, err, tc.status)
		}
	}
	if err := enroll("web-2"); err != nil {
		t.Fatalf("enroll as web-2 after the refusals: %v (a refusal spent the one-use token)", err)
	}
	if err := enroll("web-3"); client.StatusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("second enrollment with the one-use token: %v; want 403", err)
	}
}
