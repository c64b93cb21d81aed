package enroll

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// joinToken creates a join token and returns its secret.
func (fx *fixture) joinToken(t *testing.T, secret string, uses int, expires time.Time) string {
	t.Helper()
	fx.apply(t, &raftstore.TokenCreate{Token: raftstore.Token{Hash: api.HashSecret(secret), Kind: raftstore.TokenKind(api.TokenJoin),
		UsesLeft: uses, ExpiresAt: expires}, Now: testNow})
	return secret
}

func joinRequest(t *testing.T, secret, id string) *api.JoinRequest {
	t.Helper()
	return &api.JoinRequest{Secret: secret, NodeID: id, PublicKey: agentKeyPEM(t),
		RaftAddr: "10.9.0.3:8300", APIAddr: "10.9.0.3:8443", SSHAddr: "10.9.0.3:2222"}
}

// A join spends a use of the token, records the node with its key, and
// issues it a node certificate for its (deduplicated) addresses.
func TestJoin(t *testing.T) {
	fx := newFixture(t, Config{NodeCertValidity: 400 * 24 * time.Hour})
	secret := fx.joinToken(t, "rpj_join", 2, testNow.Add(time.Hour))
	resp, err := fx.svc.Join(t.Context(), joinRequest(t, secret, "n3"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ClusterID != "c-test" || resp.CAPEM != string(fx.certs.tca.CertPEM) {
		t.Fatalf("response: cluster %q", resp.ClusterID)
	}
	cert, err := api.ParseCertPEM([]byte(resp.CertPEM))
	if err != nil {
		t.Fatal(err)
	}
	if role, id, ok := api.Identity(cert); !ok || role != api.RoleNode || id != "n3" {
		t.Fatalf("certificate names %s %s", role, id)
	}
	if is := fx.certs.issued; len(is) != 1 || len(is[0].ips) != 1 || is[0].ips[0].String() != "10.9.0.3" || is[0].validity != 400*24*time.Hour {
		t.Fatalf("issued %+v", is)
	}
	_, node, err := fx.store.State().NodeByID(nil, "n3")
	if err != nil || node == nil || node.KeyHash == "" || node.RaftAddr != "10.9.0.3:8300" {
		t.Fatalf("node recorded as %+v (%v)", node, err)
	}
	if fx.usesLeft(t, secret) != 1 {
		t.Fatalf("uses left %d", fx.usesLeft(t, secret))
	}
}

func TestJoinRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(t *testing.T, fx *fixture) *api.JoinRequest
		status   int
		says     []string
		usesLeft int
	}{
		{"fail/malformed-node-id", func(t *testing.T, fx *fixture) *api.JoinRequest {
			return joinRequest(t, fx.joinToken(t, "rpj_j", 2, time.Time{}), "N3_x")
		}, http.StatusBadRequest, []string{`node id "N3_x": use lowercase letters, digits and dashes`}, 2},
		{"fail/wildcard-address", func(t *testing.T, fx *fixture) *api.JoinRequest {
			r := joinRequest(t, fx.joinToken(t, "rpj_j", 2, time.Time{}), "n3")
			r.RaftAddr = "0.0.0.0:8300"
			return r
		}, http.StatusBadRequest, []string{`address: "0.0.0.0:8300": a wildcard cannot be dialled`}, 2},
		{"fail/name-not-address", func(t *testing.T, fx *fixture) *api.JoinRequest {
			r := joinRequest(t, fx.joinToken(t, "rpj_j", 2, time.Time{}), "n3")
			r.APIAddr = "node3.example.com:8443"
			return r
		}, http.StatusBadRequest, []string{"host must be an IP address"}, 2},
		{"fail/key-not-pem", func(t *testing.T, fx *fixture) *api.JoinRequest {
			r := joinRequest(t, fx.joinToken(t, "rpj_j", 2, time.Time{}), "n3")
			r.PublicKey = "ssh-ed25519 AAAA"
			return r
		}, http.StatusBadRequest, []string{"public_key is not a PEM PUBLIC KEY"}, 2},
		{"fail/already-a-member", func(t *testing.T, fx *fixture) *api.JoinRequest {
			return joinRequest(t, fx.joinToken(t, "rpj_j", 2, time.Time{}), "n1")
		}, http.StatusConflict, []string{`node id "n1" is already a member of this cluster`}, 2},
		{"fail/expired-token", func(t *testing.T, fx *fixture) *api.JoinRequest {
			s := fx.joinToken(t, "rpj_j", 2, testNow.Add(time.Hour))
			fx.now = testNow.Add(2 * time.Hour)
			return joinRequest(t, s, "n3")
		}, http.StatusForbidden, []string{"join token has expired"}, 2},
		{"fail/used-up-token", func(t *testing.T, fx *fixture) *api.JoinRequest {
			s := fx.joinToken(t, "rpj_j", 1, time.Time{})
			if _, err := fx.svc.Join(t.Context(), joinRequest(t, s, "n2")); err != nil {
				t.Fatal(err)
			}
			return joinRequest(t, s, "n3")
		}, http.StatusForbidden, []string{"join token is not valid for this cluster (unknown, revoked or used up)"}, -2},
		{"fail/enrollment-token", func(t *testing.T, fx *fixture) *api.JoinRequest {
			return joinRequest(t, fx.token(t, "web", 2, time.Time{}), "n3")
		}, http.StatusForbidden, []string{"join token is not valid for this cluster"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, Config{})
			req := tc.setup(t, fx)
			_, err := fx.svc.Join(t.Context(), req)
			wantRefusal(t, err, tc.status, tc.says...)
			if got := fx.usesLeft(t, req.Secret); got != tc.usesLeft {
				t.Errorf("uses left %d, want %d", got, tc.usesLeft)
			}
			if _, node, _ := fx.store.State().NodeByID(nil, "n3"); node != nil {
				t.Errorf("refused join recorded %+v", node)
			}
			for _, is := range fx.certs.issued {
				if is.id == req.NodeID {
					t.Errorf("refused join issued a certificate: %+v", is)
				}
			}
		})
	}
}

// A joined node becomes a non-voter, then a voter (removal is
// control.RemoveNode's, tested there).
func TestJoinMembership(t *testing.T) {
	fx := newFixture(t, Config{})
	_, err := fx.svc.AddNonvoter(t.Context(), "n3", &api.VoterRequest{RaftAddr: "0.0.0.0:8300", APIAddr: "10.9.0.3:8443"})
	wantRefusal(t, err, http.StatusBadRequest, "a wildcard cannot be dialled")
	wantRefusal(t, fx.svc.Promote(t.Context(), "n3"), http.StatusForbidden, `node "n3" is not a member of this cluster`)
	// The API admits only a recorded node's certificate (as Join records
	// it); a node removed before its request lands is not brought back.
	if _, err := fx.svc.AddNonvoter(t.Context(), "n3", &api.VoterRequest{RaftAddr: "10.9.0.3:8300", APIAddr: "10.9.0.3:8443"}); !errors.Is(err, raftstore.ErrNotFound) {
		t.Fatalf("non-voter of an unrecorded node: %v, want not found", err)
	}
	if _, err := fx.store.Apply(t.Context(), &raftstore.NodeUpsert{Node: raftstore.Node{ID: "n3", RaftAddr: "10.9.0.3:8300"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.svc.AddNonvoter(t.Context(), "n3", &api.VoterRequest{RaftAddr: "10.9.0.3:8300", APIAddr: "10.9.0.3:8443", SSHAddr: "10.9.0.3:2222"}); err != nil {
		t.Fatal(err)
	}
	if err := fx.svc.Promote(t.Context(), "n3"); err != nil {
		t.Fatal(err)
	}
	want := []string{"nonvoter n3 10.9.0.3:8300", "voter n3 10.9.0.3:8300"}
	if got := fx.store.MembershipCalls(); !slices.Equal(got, want) {
		t.Fatalf("raft calls %q, want %q", got, want)
	}
}
