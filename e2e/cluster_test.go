package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/rpc"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
	"github.com/rampart-ssh/rampart/raftstore"
)

// TestClusterLifecycle walks a three-node cluster through what an operator
// does to it: form it, write through a follower, lose the leader to kill -9,
// bring the node back, and stop and start the whole cluster.
func TestClusterLifecycle(t *testing.T) {
	c := NewCluster(t, "a", newIPs(t, "cluster a", 3)...)
	fatalIf(t, c.Start(), "start the cluster")

	// Every node lists the three voters and names the same leader.
	sts, err := c.Statuses(c.Nodes...)
	fatalIf(t, err, "status")
	leaderID := sts["n1"].LeaderID
	for _, n := range c.Nodes {
		st := sts[n.ID]
		if got, want := voters(st), []string{"n1", "n2", "n3"}; !slices.Equal(got, want) {
			t.Errorf("%s lists voters %v, want %v", n.ID, got, want)
		}
		if st.LeaderID == "" || st.LeaderID != leaderID {
			t.Errorf("%s names leader %q, n1 names %q", n.ID, st.LeaderID, leaderID)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	leader := c.Node(leaderID)
	follower := c.Others(leader)[0]

	// A write through a follower is forwarded to the leader; a consistent
	// read from every node sees it. (A follower that has just joined
	// refuses it as stale until it has caught up: /readyz says when.)
	waitReady(t, follower)
	putProject(t, follower, "web", "written through follower "+follower.ID)
	for _, n := range c.Nodes {
		expectProject(t, n, "web", "written through follower "+follower.ID, true)
	}
	rotateThroughFollower(t, c, follower)

	// kill -9 the leader: the other two elect one of themselves and take
	// writes, here through the survivor that does not lead (forwarding again).
	t.Logf("killing leader %s", leader.ID)
	fatalIf(t, leader.Kill())
	survivors := c.Others(leader)
	newLeader, err := c.WaitLeader(waitLong, survivors...)
	fatalIf(t, err, "elect a new leader after killing "+leader.ID)
	t.Logf("new leader %s", newLeader.ID)
	writer := c.Others(leader, newLeader)[0]
	putProject(t, writer, "db", "written while "+leader.ID+" was dead")

	// The killed node comes back over its data dir with no bootstrap or join
	// flag, catches up, and answers the write it missed from its own replica.
	fatalIf(t, leader.Restart(), "restart "+leader.ID)
	_, err = c.WaitConverged(waitLong, c.Nodes...)
	fatalIf(t, err, "catch up after restart")
	expectProject(t, leader, "db", "written while "+leader.ID+" was dead", false)

	// SIGTERM stops every node cleanly (exit 0) within a bound.
	before, err := c.WaitConverged(waitLong, c.Nodes...)
	fatalIf(t, err)
	projectsBefore := listProjects(t, newLeader)
	if len(projectsBefore) != 2 {
		t.Fatalf("projects before the stop: %+v, want web and db", projectsBefore)
	}
	var wg sync.WaitGroup
	codes, errs := make([]int, len(c.Nodes)), make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		wg.Go(func() { codes[i], errs[i] = n.Stop(waitStop) })
	}
	wg.Wait()
	for i, n := range c.Nodes {
		if errs[i] != nil {
			t.Errorf("stop %s: %v", n.ID, errs[i])
		} else if codes[i] != 0 {
			t.Errorf("%s exited with code %d after SIGTERM, want 0", n.ID, codes[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Started again, the cluster elects a leader and every node holds the
	// same state as before the stop.
	for _, n := range c.Nodes {
		fatalIf(t, n.Restart(), "restart "+n.ID)
	}
	err = waitFor(waitLong, func() error {
		after, err := c.Converged(c.Nodes...)
		if err != nil {
			return err
		}
		if after.StateDigest != before.StateDigest {
			return fmt.Errorf("state digest %s after the restart, %s before", after.StateDigest, before.StateDigest)
		}
		return nil
	})
	fatalIf(t, err, "state after a full restart")
	for _, n := range c.Nodes {
		if got := listProjects(t, n); !slices.EqualFunc(got, projectsBefore, sameProject) {
			t.Errorf("%s lists projects %+v after the restart, want %+v", n.ID, got, projectsBefore)
		}
	}
}

// voters lists the ids of the voting members a status names, sorted.
func voters(st *api.ClusterStatus) []string {
	var ids []string
	for _, m := range st.Members {
		if m.Voter {
			ids = append(ids, m.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func putProject(t *testing.T, n *Node, name, description string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	p, err := n.API().PutProject(ctx, name, &api.Project{Description: description})
	fatalIf(t, err, "put project "+name+" through "+n.ID)
	if p.Name != name || p.Description != description {
		t.Fatalf("put project through %s returned %+v", n.ID, p)
	}
}

func expectProject(t *testing.T, n *Node, name, description string, consistent bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	p, err := n.API().Project(ctx, name, readConsistency(consistent)...)
	if err != nil {
		t.Errorf("read project %s from %s (consistent=%v): %v", name, n.ID, consistent, err)
		return
	}
	if p.Description != description {
		t.Errorf("%s (consistent=%v) has project %s described %q, want %q", n.ID, consistent, name, p.Description, description)
	}
}

// rotateThroughFollower begins a target host CA rotation through a
// follower's API and aborts it: the follower makes and seals the new key
// (every node has the same KEK), the leader commits it, and every node
// lists it for clients until the abort.
func rotateThroughFollower(t *testing.T, c *Cluster, follower *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	r, err := follower.API().RotateHostCA(ctx, client.RotationBegin, "")
	fatalIf(t, err, "begin a host CA rotation through follower "+follower.ID)
	if r.Phase != "staged" || r.Waiting == nil {
		t.Fatalf("begin through %s: %+v", follower.ID, r)
	}
	blob := strings.Fields(r.Waiting.PublicKey)[1]
	for _, n := range c.Nodes {
		fatalIf(t, waitFor(waitLong, func() error {
			k, err := n.API().HostCAKeys(ctx)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(k.Keys, func(line string) bool { return strings.Contains(line, blob) }) {
				return fmt.Errorf("%s lists %d host CA keys, not the new one", n.ID, len(k.Keys))
			}
			return nil
		}), "the new host CA key on "+n.ID)
	}
	r, err = follower.API().RotateHostCA(ctx, client.RotationAbort, "")
	fatalIf(t, err, "abort the host CA rotation through follower "+follower.ID)
	if r.Phase != "stable" || r.Waiting != nil {
		t.Fatalf("abort through %s: %+v", follower.ID, r)
	}
}

// readConsistency is the read option of a consistent (linearizable) read,
// or none.
func readConsistency(consistent bool) []client.ReadOption {
	if consistent {
		return []client.ReadOption{client.Consistent()}
	}
	return nil
}

func listProjects(t *testing.T, n *Node) []api.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ps, err := n.API().Projects(ctx, client.Consistent())
	fatalIf(t, err, "list projects on "+n.ID)
	slices.SortFunc(ps, func(a, b api.Project) int { return strings.Compare(a.Name, b.Name) })
	return ps
}

func sameProject(a, b api.Project) bool {
	return a.Name == b.Name && a.Description == b.Description && a.ModifyIndex == b.ModifyIndex
}

// TestClusterRefusals checks that the cluster turns away what it must: joins
// with a bad token, peers with another cluster's certificate, API calls with
// a bad bearer token, and a configuration with mistakes.
func TestClusterRefusals(t *testing.T) {
	a := NewCluster(t, "a", newIP(t, "cluster a n1"))
	fatalIf(t, a.Start(), "start cluster a")
	good, err := api.ParseToken(a.JoinToken())
	fatalIf(t, err, "parse the bootstrap join token")
	// token re-encodes the good join token after mutate changed a copy.
	token := func(mutate func(*api.Token)) *api.Token {
		tok := *good
		tok.Addrs = slices.Clone(good.Addrs)
		mutate(&tok)
		return &tok
	}
	wrongSecret := token(func(tok *api.Token) { tok.Secret = randomB64(t, 32) })
	wrongPin := token(func(tok *api.Token) { tok.CAPin = "sha256:" + hex.EncodeToString(randomBytes(t, 32)) })

	t.Run("process", func(t *testing.T) {
		join := func(tok string) func(n *Node) []string {
			return func(n *Node) []string { return append(n.BaseArgs(), "--join", tok) }
		}
		cases := []struct {
			name string
			args func(n *Node) []string
			// wantCode is the exit code; 0 means any non-zero code.
			wantCode   int
			wantStderr []string
			// wantProblems, when not 0, is the number of configuration
			// problems listed (one "  - " line each).
			wantProblems int
			// secret must not appear in the output.
			secret string
		}{
			{name: "fail/join-wrong-secret", args: join(wrongSecret.String()), wantStderr: []string{"not valid"}, secret: wrongSecret.Secret},
			{name: "fail/join-wrong-ca-pin", args: join(wrongPin.String()), wantStderr: []string{"pin"}, secret: wrongPin.Secret},
			{name: "fail/join-malformed-token", args: join(api.TokenPrefix + "not*base64url"), wantStderr: []string{"malformed token"}},
			{name: "fail/join-not-a-token", args: join("hello"), wantStderr: []string{"malformed token"}},
			{name: "fail/config-three-problems", wantCode: 2, wantProblems: 3,
				args: func(n *Node) []string {
					return []string{"--node-id", n.ID, "--data-dir", n.DataDir,
						"--listen-ssh", n.SSHAddr(), "--listen-api", "notanaddress", "--listen-raft", n.RaftAddr()}
				},
				wantStderr: []string{"listen.api", "notanaddress", "key-encryption key", "oidc.issuer"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				n := a.AddNode(newIP(t, "a refused node"))
				res, err := n.Run(waitLong, tc.args(n)...)
				fatalIf(t, err)
				switch {
				case tc.wantCode == 0 && res.ExitCode == 0:
					t.Errorf("exit code 0, want non-zero")
				case tc.wantCode != 0 && res.ExitCode != tc.wantCode:
					t.Errorf("exit code %d, want %d", res.ExitCode, tc.wantCode)
				}
				for _, want := range tc.wantStderr {
					if !strings.Contains(res.Stderr, want) {
						t.Errorf("stderr does not mention %q:\n%s", want, res.Stderr)
					}
				}
				if got := strings.Count(res.Stderr, "\n  - "); tc.wantProblems != 0 && got != tc.wantProblems {
					t.Errorf("stderr lists %d problems, want %d", got, tc.wantProblems)
				}
				if tc.secret != "" && strings.Contains(res.Stdout+res.Stderr, tc.secret) {
					t.Errorf("the token's secret appears in the output")
				}
				if _, err := os.Stat(filepath.Join(n.DataDir, "tls", "node.crt")); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused node has a certificate in its data dir (stat: %v)", err)
				}
			})
		}
	})

	b := NewCluster(t, "b", newIP(t, "cluster b"))
	fatalIf(t, b.Start(), "start cluster b")
	ownCert, err := a.Nodes[0].Certificate()
	fatalIf(t, err)
	foreignCert, err := b.Nodes[0].Certificate()
	fatalIf(t, err)
	n1 := a.Nodes[0]

	// A node that joined and was then removed keeps a certificate signed by
	// the cluster CA; removal must take its access away.
	removed := a.AddNode(newIP(t, "cluster a n2"))
	fatalIf(t, removed.Start("--join", a.JoinToken()), "join "+removed.ID)
	fatalIf(t, a.WaitMembers(waitLong, n1, removed), "join "+removed.ID)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fatalIf(t, n1.API().RemoveMember(ctx, removed.ID), "remove "+removed.ID)
	fatalIf(t, a.WaitMembers(waitLong, n1), "remove "+removed.ID)
	fatalIf(t, removed.Kill())
	removedCert, err := removed.Certificate()
	fatalIf(t, err)

	raftProbe := func(cert tls.Certificate) (bool, error) { return probeRaft(a, n1, cert) }
	voterProbe := func(cert tls.Certificate) (bool, error) { return probeVoterAPI(a, n1, cert) }
	t.Run("peer", func(t *testing.T) {
		cases := []struct {
			name string
			cert tls.Certificate
			// probe reports whether the peer was let in, and how it went.
			probe        func(cert tls.Certificate) (admitted bool, detail error)
			wantAdmitted bool
		}{
			{name: "ok/raft-own-cluster-cert", cert: ownCert, probe: raftProbe, wantAdmitted: true},
			{name: "fail/raft-other-cluster-cert", cert: foreignCert, probe: raftProbe},
			{name: "ok/voter-api-own-cluster-cert", cert: ownCert, probe: voterProbe, wantAdmitted: true},
			{name: "fail/voter-api-other-cluster-cert", cert: foreignCert, probe: voterProbe},
			{name: "fail/raft-removed-node-cert", cert: removedCert, probe: raftProbe},
			{name: "fail/voter-api-removed-node-cert", cert: removedCert, probe: voterProbe},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				admitted, detail := tc.probe(tc.cert)
				if admitted != tc.wantAdmitted {
					t.Errorf("admitted=%v, want %v (%v)", admitted, tc.wantAdmitted, detail)
				} else if detail != nil {
					t.Logf("refused as expected: %v", detail)
				}
			})
		}
	})

	t.Run("api-token", func(t *testing.T) {
		cases := []struct {
			name       string
			token      string
			wantStatus int
		}{
			{name: "ok/admin-token", token: a.AdminToken(), wantStatus: http.StatusOK},
			{name: "fail/wrong-token", token: "rps_" + randomB64(t, 32), wantStatus: http.StatusUnauthorized},
			{name: "fail/no-token", token: "", wantStatus: http.StatusUnauthorized},
			{name: "fail/join-secret-as-token", token: good.Secret, wantStatus: http.StatusUnauthorized},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				cl := n1.NewAPI(client.WithRootCAs(a.CAPool()), client.WithToken(tc.token))
				defer cl.CloseIdleConnections()
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				defer cancel()
				_, err := cl.ClusterStatus(ctx)
				got := http.StatusOK
				if err != nil {
					if got = client.StatusOf(err); got == 0 {
						t.Fatalf("status: %v", err)
					}
				}
				if got != tc.wantStatus {
					t.Errorf("GET /v1/cluster/status answered %d (%v), want %d", got, err, tc.wantStatus)
				}
			})
		}
	})

	// None of it changed cluster a's membership.
	fatalIf(t, a.WaitMembers(waitLong, n1), "cluster a's members after the refusals")
}

// presenting returns a client TLS config that trusts c's CA and presents
// cert whatever CAs the server says it accepts. (Go's client otherwise sends
// no certificate at all when its issuer is not among them, and the server's
// own check would never be exercised.)
func presenting(c *Cluster, n *Node, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		RootCAs: c.CAPool(), ServerName: n.IP, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}
}

// probeRaft opens mutual TLS to n's raft port presenting cert, and asks the
// leader-forwarding service behind it for a read index (a harmless call). The
// peer was admitted when the service answers; refused when n drops the
// connection (a TLS alert, a close), and detail says how.
func probeRaft(c *Cluster, n *Node, cert tls.Certificate) (admitted bool, detail error) {
	d := &net.Dialer{Timeout: requestTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", n.RaftAddr(), presenting(c, n, cert))
	if err != nil {
		return false, fmt.Errorf("handshake: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitLong))
	// Under TLS 1.3 the client finishes its handshake before the server has
	// checked the client certificate: a refusal arrives as an alert on the
	// first read. 'F' selects the forwarding protocol (net/rpc).
	if _, err := conn.Write([]byte{'F'}); err != nil {
		return false, fmt.Errorf("write: %w", err)
	}
	// An admitted peer is answered 'A' before any request.
	ack := make([]byte, 1)
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 'A' {
		return false, fmt.Errorf("forwarding not admitted: %v", err)
	}
	var reply raftstore.ForwardReply
	if err := rpc.NewClient(conn).Call("Forward.ReadIndex", &raftstore.ForwardArgs{}, &reply); err != nil {
		return false, fmt.Errorf("forwarding call: %w", err)
	}
	return true, nil
}

// probeVoterAPI calls POST /v1/cluster/join/voter on n with cert as client
// certificate, asking to add n itself with its own addresses, which changes
// nothing when accepted. The peer was admitted when the call succeeds, or
// fails for any reason other than authentication (401, 403, TLS).
func probeVoterAPI(c *Cluster, n *Node, cert tls.Certificate) (admitted bool, detail error) {
	cl := n.NewAPI(client.WithTLSConfig(presenting(c, n, cert)))
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	req := &api.VoterRequest{RaftAddr: n.RaftAddr(), APIAddr: n.APIAddr(), SSHAddr: n.SSHAddr()}
	_, err := cl.JoinAsNonvoter(ctx, req)
	switch s := client.StatusOf(err); {
	case err == nil:
		return true, nil
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return false, err
	case s != 0:
		return true, fmt.Errorf("got past authentication: %w", err)
	}
	return false, err // TLS refused the certificate
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomB64(t *testing.T, n int) string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(t, n))
}
