package e2e

// Certificates that outlive their first validity, with short validities:
//
//   - TestHostCertRenewal: a dev node issues host certificates valid for 20 s
//     to the real agent in a target. The agent
//     renews them and sshd serves the renewed one; the jump keeps verifying
//     the target by certificate past the first one's expiry, never falling
//     back to the host key pinned at enrollment; a host CA rotation makes the
//     agent renew at once. A hand-registered target with no certificate
//     shows the fallback audited, and refused under
//     require_host_certificate.
//   - TestClusterNodeCertRenewal: three nodes whose TLS
//     certificates are valid for 30 s renew them without a restart, and the
//     cluster keeps working (forwarded writes, a leader election, a restart)
//     past the first certificates' expiry.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// servedHostCert is the host certificate the sshd at addr presents.
func servedHostCert(addr string) (*gossh.Certificate, error) {
	var got *gossh.Certificate
	seen := errors.New("host key seen")
	cfg := &gossh.ClientConfig{User: "nobody", Timeout: requestTimeout,
		HostKeyAlgorithms: []string{gossh.CertAlgoED25519v01},
		HostKeyCallback: func(_ string, _ net.Addr, k gossh.PublicKey) error {
			got, _ = k.(*gossh.Certificate)
			return seen
		}}
	_, err := gossh.Dial("tcp", addr, cfg)
	if got == nil {
		return nil, fmt.Errorf("no host certificate offered: %v", err)
	}
	return got, nil
}

func sameKey(a, b gossh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }

func TestHostCertRenewal(t *testing.T) {
	const validity = 20 * time.Second
	e, _ := setupEnrollNode(t, "hostcert", fmt.Sprintf("agents:\n  host_cert_validity: %s\n", validity))
	tg, ag := startAgentTarget(t, e.node, "web-hc", newIP(t, "web-hc"), e.enrollToken(t))
	var first *gossh.Certificate
	ag.waitApplied(t, "enroll, provision, and serve the enrollment's host certificate", func() error {
		if err := hasAccount(tg, "alice")(); err != nil {
			return err
		}
		c, err := servedHostCert(tg.Addr())
		first = c
		return err
	})
	if life := time.Unix(int64(first.ValidBefore), 0).Sub(time.Unix(int64(first.ValidAfter), 0)) - time.Minute; life != validity {
		t.Fatalf("the enrollment's host certificate is valid for %s, want %s (agents.host_cert_validity)", life, validity)
	}
	firstExpiry := time.Unix(int64(first.ValidBefore), 0)
	t.Logf("enrolled; sshd serves host certificate %d, valid until %s", first.Serial, firstExpiry.Format(time.TimeOnly))
	jump := func(what string) {
		t.Helper()
		r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-hc", "id -un")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
			t.Fatalf("%s: ssh -J alice@node alice@web-hc id -un: exit %d, %q; stderr:\n%s", what, r.code, r.stdout, r.stderr)
		}
	}
	jump("with the enrollment's host certificate")

	// sshd serves a renewed certificate (the agent wrote it and reloaded
	// sshd) before the first one expires.
	var renewed *gossh.Certificate
	fatalIf(t, waitFor(validity+waitLong, func() error {
		if err := ag.alive(); err != nil {
			return err
		}
		c, err := servedHostCert(tg.Addr())
		if err != nil {
			return err
		}
		if c.Serial == first.Serial {
			return errors.New("sshd still serves the enrollment's host certificate")
		}
		renewed = c
		return nil
	}), "renewed host certificate served")
	renewedAt := time.Now()
	if renewedAt.After(firstExpiry) {
		t.Errorf("the renewed certificate was served at %s, after the first expired (%s)", renewedAt.Format(time.TimeOnly), firstExpiry.Format(time.TimeOnly))
	}
	if !sameKey(renewed.Key, first.Key) || !sameKey(renewed.SignatureKey, first.SignatureKey) {
		t.Error("the renewed certificate is for another host key or from another CA")
	}
	t.Logf("sshd serves renewed certificate %d (valid until %s) from %s, %s before the first expired",
		renewed.Serial, time.Unix(int64(renewed.ValidBefore), 0).Format(time.TimeOnly), renewedAt.Format(time.TimeOnly), firstExpiry.Sub(renewedAt).Round(time.Millisecond))

	// Past the first certificate's expiry the jump still verifies the
	// target by a certificate: no fallback to the pinned key.
	fatalIf(t, waitFor(validity+waitLong, func() error {
		if left := time.Until(firstExpiry); left > -time.Second {
			return fmt.Errorf("the first host certificate is valid for %s more", left.Round(time.Second))
		}
		return nil
	}), "the first host certificate's expiry")
	jump("after the first host certificate expired")

	// A host CA rotation: once the new key signs, the agent renews at once
	// (it does not wait for two thirds of the lifetime), and after the old
	// key is retired the jump still verifies the target by certificate.
	e.admin(t, "ca", "rotate", "host", "begin")
	hostCA := hostCAKeys(t, e.api())
	e.admin(t, "ca", "rotate", "host", "promote", "--yes")
	var newCA gossh.PublicKey
	for _, k := range hostCA.Keys {
		pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(k))
		fatalIf(t, err, "host CA key")
		if !sameKey(pk, first.SignatureKey) {
			newCA = pk
		}
	}
	if newCA == nil {
		t.Fatalf("GET /v1/ca/host lists no new key after rotate begin: %v", hostCA.Keys)
	}
	promoted := time.Now()
	fatalIf(t, waitFor(waitLong, func() error {
		c, err := servedHostCert(tg.Addr())
		if err != nil {
			return err
		}
		if !sameKey(c.SignatureKey, newCA) {
			return errors.New("sshd still serves a certificate of the old host CA")
		}
		return nil
	}), "a certificate of the new host CA served")
	t.Logf("sshd serves a certificate of the new host CA %s after promote", time.Since(promoted).Round(time.Millisecond))
	waitAgentLog(t, ag, regexp.MustCompile(`renewing the host certificates.*no longer signs with`))
	// Clients of the test trust both host CAs; the node trusts only the
	// active one once the old key is retired.
	fatalIf(t, appendFile(e.knownHosts, "@cert-authority * "+strings.TrimSpace(string(gossh.MarshalAuthorizedKey(newCA)))+"\n"))
	e.admin(t, "ca", "rotate", "host", "retire", "--yes")
	jump("after the host CA rotation")

	if ev := auditOf(t, e, "host_key.fall_back"); len(ev) != 0 {
		t.Fatalf("the jump fell back to the pinned host key %d times: %+v", len(ev), ev)
	}
	renewals := auditOf(t, e, "host_cert.renew")
	if len(renewals) < 2 {
		t.Fatalf("%d agent.host_certs_renewed audit events, want one per renewal (at least two)", len(renewals))
	}
	t.Logf("%d host certificate renewals audited; no fallback to the pinned key", len(renewals))

	// A target registered by hand has no host certificate: the jump falls
	// back to its pinned key, once per connection, logged and audited; a
	// project that requires host certificates refuses it.
	e.startTarget(t, "web-nocert", newIP(t, "web-nocert"), "web", e.userCA(t, "web"), true, nil)
	r := e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-nocert", "id -un")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "alice" {
		t.Fatalf("jump to web-nocert (pinned key): exit %d, %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var fallbacks []auditEntry
	fatalIf(t, waitFor(waitLong, func() error {
		fallbacks = auditOf(t, e, "host_key.fall_back")
		if len(fallbacks) == 0 {
			return errors.New("no jump.host_key_fallback audit event")
		}
		return nil
	}), "fallback audited")
	if f := fallbacks[0].Fields; len(fallbacks) != 1 || f["server"] != "web-nocert" || f["fingerprint"] == "" || f["required"] != "false" || fallbacks[0].Actor != "alice" {
		t.Fatalf("fallback audit events: %+v; want one, for web-nocert, by alice", fallbacks)
	}
	e.setProject(t, api.ProjectSettings{RequireHostCertificate: true})
	p := getProject(t, e.api(), "web")
	if !p.Settings.RequireHostCertificate {
		t.Fatal("GET /v1/projects/web does not show require_host_certificate")
	}
	r = e.ssh(t, []string{"-o", "BatchMode=yes"}, "alice@web-nocert", "id -un")
	if r.code == 0 || !strings.Contains(r.stderr, "presented no host certificate") {
		t.Fatalf("jump to web-nocert under require_host_certificate: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	jump("to the target with a certificate under require_host_certificate")
	// The client may try to log in more than once; each try is a
	// connection to the target of its own, audited.
	fatalIf(t, waitFor(waitLong, func() error {
		ev := auditOf(t, e, "host_key.fall_back")
		if len(ev) < 2 || ev[len(ev)-1].Fields["required"] != "true" || ev[len(ev)-1].Fields["server"] != "web-nocert" {
			return fmt.Errorf("jump.host_key_fallback events %+v, want a refused one for web-nocert after the first", ev)
		}
		return nil
	}), "refused fallback audited")
	e.admin(t, "projects", "set", "web", "--require-host-certificate=false")
	p = getProject(t, e.api(), "web")
	if p.Settings.RequireHostCertificate {
		t.Fatal("projects set web --require-host-certificate=false did not turn it off")
	}
}

func TestClusterNodeCertRenewal(t *testing.T) {
	const validity = 30 * time.Second
	c := NewCluster(t, "nodecert", newIPs(t, "nodecert nodes", 3)...)
	c.Env = []string{"RAMPART_CLUSTER_NODE_CERT_VALIDITY=" + validity.String()}
	fatalIf(t, c.Start(), "start the cluster")
	first := map[string]*tls.Certificate{}
	var lastExpiry time.Time
	for _, n := range c.Nodes {
		pair, err := n.Certificate()
		fatalIf(t, err, n.ID+" certificate")
		leaf, err := api.ParseCertPEM(mustRead(t, n.DataDir+"/tls/node.crt"))
		fatalIf(t, err)
		pair.Leaf = leaf
		first[n.ID] = &pair
		if life := leaf.NotAfter.Sub(leaf.NotBefore) - 5*time.Minute; life < validity-2*time.Second || life > validity+2*time.Second {
			t.Fatalf("%s's certificate is valid for %s, want %s (cluster.node_cert_validity)", n.ID, life, validity)
		}
		lastExpiry = later(lastExpiry, leaf.NotAfter)
	}
	t.Logf("three nodes; the last first certificate expires %s", lastExpiry.Format(time.TimeOnly))

	// served is the certificate a node's API presents now.
	served := func(n *Node) (*tls.Certificate, error) {
		conn, err := tls.Dial("tcp", n.APIAddr(), &tls.Config{RootCAs: c.CAPool(), MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return &tls.Certificate{Leaf: conn.ConnectionState().PeerCertificates[0]}, nil
	}
	// Each node renews and serves the new certificate without a restart,
	// and the renewal is on disk.
	runs := map[string]*process{}
	for _, n := range c.Nodes {
		runs[n.ID] = n.current()
	}
	fatalIf(t, waitFor(validity+waitLong, func() error {
		for _, n := range c.Nodes {
			s, err := served(n)
			if err != nil {
				return fmt.Errorf("%s: %w", n.ID, err)
			}
			if s.Leaf.SerialNumber.Cmp(first[n.ID].Leaf.SerialNumber) == 0 {
				return fmt.Errorf("%s still serves its first certificate", n.ID)
			}
			disk, err := api.ParseCertPEM(mustRead(t, n.DataDir+"/tls/node.crt"))
			if err != nil || disk.SerialNumber.Cmp(s.Leaf.SerialNumber) != 0 {
				return fmt.Errorf("%s serves %s, tls/node.crt holds another (%v)", n.ID, s.Leaf.SerialNumber, err)
			}
		}
		return nil
	}), "every node renewed")
	for _, n := range c.Nodes {
		if n.current() != runs[n.ID] || !n.Running() {
			t.Fatalf("%s was restarted or stopped to renew", n.ID)
		}
	}
	t.Logf("every node serves a renewed certificate at %s", time.Now().Format(time.TimeOnly))

	// Past the first certificates' expiry, the cluster keeps working over
	// new connections: a write forwarded from a follower, a leader
	// election, a node restarted over its data dir.
	fatalIf(t, waitFor(validity+waitLong, func() error {
		if left := time.Until(lastExpiry); left > -time.Second {
			return fmt.Errorf("a first certificate is valid for %s more", left.Round(time.Second))
		}
		return nil
	}), "the first certificates' expiry")
	leader, err := c.WaitLeader(waitLong)
	fatalIf(t, err, "leader")
	follower := c.Others(leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	_, err = follower.API().PutProject(ctx, "after-expiry", &api.Project{Description: "written through a follower"})
	cancel()
	fatalIf(t, err, "a write forwarded by "+follower.ID)
	fatalIf(t, leader.Kill(), "kill the leader")
	newLeader, err := c.WaitLeader(waitLong, c.Others(leader)...)
	fatalIf(t, err, "a new leader after the old one was killed")
	fatalIf(t, leader.Restart(), "restart "+leader.ID)
	_, err = c.WaitConverged(waitLong)
	fatalIf(t, err, "converged after the restart")
	ctx, cancel = context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	p, err := leader.API().Project(ctx, "after-expiry", client.Consistent())
	fatalIf(t, err, "read the project back from the restarted node")
	if p.Description != "written through a follower" {
		t.Fatalf("project after-expiry: %+v", p)
	}
	t.Logf("after every first certificate expired: a forwarded write, %s elected after %s was killed, %s restarted and caught up",
		newLeader.ID, leader.ID, leader.ID)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// appendFile adds text to the end of a file.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}
