package e2e

// Backup, restore and recovery with real processes (docs/operations.md): a
// backup of a three-node cluster taken through the admin shell and the API
// and restored into a new cluster on other addresses, where alice's bound
// key, the bindings, servers and audit log are those of the old cluster (a
// restore under another KEK, or of a backup changed with its SHA-256
// recomputed, is refused; the old cluster's join token is not valid on the
// new one); and a cluster that lost two of its three nodes and their data, whose
// survivor is recovered as a one-node cluster and grown back to three.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/backup"
	"github.com/rampart-ssh/rampart/gateway/ca"
)

// adopt makes c, whose first node n was restored from a backup rather than
// bootstrapped, know its CA, join token (from n's data dir) and admin token
// (one of the restored cluster's service tokens).
func (c *Cluster) adopt(n *Node, adminTok string) error {
	caPEM, err := os.ReadFile(filepath.Join(n.DataDir, "tls", "ca.crt"))
	if err != nil {
		return err
	}
	join, err := os.ReadFile(filepath.Join(n.DataDir, "join-token"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: tls/ca.crt holds no certificate", n.ID)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.caPEM, c.caPool, c.adminTok, c.joinToken = caPEM, pool, adminTok, strings.TrimSpace(string(join))
	return nil
}

// waitFrontDoor waits until n's SSH front door sends its version line (the
// dev IdP, on n1, may be gone: bound keys need none).
func waitFrontDoor(n *Node) error {
	return waitFor(waitLong, func() error {
		if !n.Running() {
			return stopWaiting(fmt.Errorf("%s exited: %s", n.ID, n.exitDescription()))
		}
		conn, err := net.DialTimeout("tcp", n.SSHAddr(), requestTimeout)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(requestTimeout))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
			return fmt.Errorf("SSH version line %q: %v", line, err)
		}
		return nil
	})
}

// backupEnv is startRevocationCluster with aliceAndWeb1.
func backupEnv(t *testing.T, extraIPs ...string) *revocationEnv {
	t.Helper()
	e := startRevocationCluster(t)
	e.aliceAndWeb1(t, extraIPs...)
	return e
}

// aliceAndWeb1 signs alice (an admin) in, with her ssh_config reaching the
// cluster's nodes and extraIPs, grants project web to engineering and
// registers its target web-1, and waits until the nodes converge.
func (e *revocationEnv) aliceAndWeb1(t *testing.T, extraIPs ...string) {
	t.Helper()
	ips := extraIPs
	for _, n := range e.c.Nodes {
		ips = append(ips, n.IP)
	}
	dir := filepath.Join(e.dir, "alice")
	_, e.alice = newPersonKey(t, dir, "alice", strings.Join(ips, " "), e.knownHosts)
	bindKey(t, dir, e.alice, "alice", e.devNode(e.c.Nodes[0]))
	je := &jumpEnv{node: e.devNode(e.c.Nodes[0]), dir: e.dir}
	je.setProject(t, api.ProjectSettings{})
	grant(t, je.api(), "web", "engineering")
	e.target = je.startTarget(t, "web-1", newIP(t, "web-1"), "web", je.userCA(t, "web"), true, nil)
	_, err := e.c.WaitConverged(waitLong)
	fatalIf(t, err)
}

// aliceJumps checks that alice's bound key reaches web-1 through node with
// OpenSSH, without a browser (BatchMode).
func (e *revocationEnv) aliceJumps(t *testing.T, node *Node) {
	t.Helper()
	r := runSSH(t, []string{"ssh", "-F", e.alice, "-o", "BatchMode=yes", "-J", "alice@" + node.SSHAddr(), "alice@web-1", "echo jumped-$USER"})
	if r.code != 0 || strings.TrimSpace(r.stdout) != "jumped-alice" {
		t.Fatalf("alice through %s to web-1: exit %d, stdout %q; stderr:\n%s", node.ID, r.code, r.stdout, r.stderr)
	}
}

// stateView is what must survive a backup or a recovery, as the admin shell
// shows it.
type stateView struct{ bindings, servers, projects string }

func (e *revocationEnv) view(t *testing.T, node *Node) stateView {
	t.Helper()
	return stateView{
		bindings: e.admin(t, node, "bindings", "ls", "--json").stdout,
		servers:  e.admin(t, node, "servers", "ls", "--json").stdout,
		projects: e.admin(t, node, "projects", "ls", "--json").stdout,
	}
}

func (v stateView) mustEqual(t *testing.T, other stateView, what string) {
	t.Helper()
	for _, p := range [][3]string{{"bindings", v.bindings, other.bindings}, {"servers", v.servers, other.servers}, {"projects", v.projects, other.projects}} {
		if p[1] != p[2] {
			t.Errorf("%s %s differ:\nbefore:\n%s\nafter:\n%s", what, p[0], p[1], p[2])
		}
	}
	if !strings.Contains(v.bindings, "alice") || !strings.Contains(v.servers, "web-1") {
		t.Errorf("the state compared holds no binding of alice or no web-1:\n%s\n%s", v.bindings, v.servers)
	}
}

// auditLines is the audit log as `audit export` writes it, one event a line.
func (e *revocationEnv) auditLines(t *testing.T, node *Node) []string {
	t.Helper()
	return strings.Split(strings.TrimSpace(e.admin(t, node, "audit", "export").stdout), "\n")
}

func auditType(t *testing.T, line string) string {
	t.Helper()
	var ev struct{ Type string }
	fatalIf(t, json.Unmarshal([]byte(line), &ev), "audit line "+line)
	return ev.Type
}

// forgeAdminToken returns backup b with the hash of the admin token
// replaced by the hash of another, and its SHA-256 recomputed, as someone
// who can write backup storage but holds no KEK would make it.
func forgeAdminToken(t *testing.T, b []byte, adminToken, attackerToken string) []byte {
	t.Helper()
	old, evil := []byte(api.HashSecret(adminToken)), []byte(api.HashSecret(attackerToken))
	if bytes.Count(b, old) != 1 {
		t.Fatalf("the backup holds the admin token's hash %d times, want once", bytes.Count(b, old))
	}
	at := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
	body := bytes.Replace(b[:at], old, evil, 1)
	var tl map[string]string
	fatalIf(t, json.Unmarshal(b[at:], &tl), "the backup's checksum line")
	tl["sha256"] = fmt.Sprintf("%x", sha256.Sum256(body))
	line, err := json.Marshal(tl)
	fatalIf(t, err)
	return append(body, append(line, '\n')...)
}

func TestBackupRestore(t *testing.T) {
	restoredIPs := newIPs(t, "restored nodes", 2)
	e := backupEnv(t, restoredIPs...)
	n2, n3 := e.c.Nodes[1], e.c.Nodes[2]
	e.aliceJumps(t, n2)
	before := e.view(t, n2)
	auditBefore := e.auditLines(t, n2)

	// The backup through the admin shell, one-shot: stdout is the file.
	started := time.Now()
	r := e.admin(t, n2, "cluster", "backup")
	t.Logf("timing: cluster backup through ssh: %s, %d bytes", time.Since(started).Round(time.Millisecond), len(r.stdout))
	file := filepath.Join(t.TempDir(), "cluster.backup")
	fatalIf(t, os.WriteFile(file, []byte(r.stdout), 0o600))
	kek, err := os.ReadFile(e.c.KEKFile)
	fatalIf(t, err)
	parsedKEK, err := ca.ParseKEK(strings.TrimSpace(string(kek)))
	fatalIf(t, err)
	backupKey, err := parsedKEK.BackupKey()
	fatalIf(t, err)
	hdr, sum, _, err := backup.Verify(strings.NewReader(r.stdout), backupKey)
	fatalIf(t, err, "verify the shell's backup")
	if !strings.Contains(r.stderr, sum) || hdr.Node != n2.ID {
		t.Fatalf("cluster backup said %q; the file's SHA-256 is %s, header %+v", r.stderr, sum, hdr)
	}
	if bytes.Contains([]byte(r.stdout), bytes.TrimSpace(kek)) || bytes.Contains([]byte(r.stdout), []byte(fmt.Sprintf("%x", backupKey))) {
		t.Fatal("the backup holds the key-encryption key or the backup key")
	}

	// The backup through the API, with the admin token: the same format,
	// index and SHA-256 in its headers.
	t.Run("ok/api-backup", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, "https://"+n3.APIAddr()+"/v1/cluster/backup", nil)
		fatalIf(t, err)
		req.Header.Set("Authorization", "Bearer "+e.c.AdminToken())
		resp, err := opsHTTP(n3).Do(req)
		fatalIf(t, err, "GET /v1/cluster/backup")
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		fatalIf(t, err)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/cluster/backup: %s: %s", resp.Status, body)
		}
		h, s, _, err := backup.Verify(bytes.NewReader(body), backupKey)
		fatalIf(t, err, "verify the API's backup")
		if resp.Header.Get("X-Rampart-Backup-Sha256") != s || resp.Header.Get("X-Rampart-Backup-Index") != fmt.Sprint(h.Index) || h.Index < hdr.Index {
			t.Fatalf("headers %v; body header %+v sha %s (shell backup at %d)", resp.Header, h, s, hdr.Index)
		}
		anon, err := http.NewRequest(http.MethodGet, "https://"+n3.APIAddr()+"/v1/cluster/backup", nil)
		fatalIf(t, err)
		resp2, err := opsHTTP(n3).Do(anon)
		fatalIf(t, err)
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusUnauthorized {
			t.Fatalf("backup without a token: %s", resp2.Status)
		}
	})
	backups := 0
	auditOld := e.auditLines(t, n2)
	for _, l := range auditOld {
		if auditType(t, l) == "cluster.backup" {
			backups++
		}
	}
	if backups != 2 {
		t.Errorf("%d admin.cluster.backup audit events on the old cluster, want 2 (shell and API)", backups)
	}

	// The restore, into a new cluster on other addresses with the same KEK.
	rc := NewCluster(t, "restored", restoredIPs...)
	rc.OIDCIssuer = e.idp
	fatalIf(t, os.WriteFile(rc.KEKFile, kek, 0o600))
	r1, r2 := rc.Nodes[0], rc.Nodes[1]
	wrongKEK := filepath.Join(t.TempDir(), "other-kek")
	fatalIf(t, os.WriteFile(wrongKEK, []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"), 0o600))
	res, err := r1.Run(waitLong, append(append([]string{"restore", "--from", file}, r1.BaseArgs()...), "--kek-file", wrongKEK)...)
	fatalIf(t, err)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "HMAC does not verify") {
		t.Fatalf("restore with another KEK: exit %d; stderr:\n%s", res.ExitCode, res.Stderr)
	}
	// Whoever can write backup storage swaps the admin token's hash for one
	// of their own and recomputes the SHA-256: the HMAC refuses the file.
	forged := filepath.Join(t.TempDir(), "forged.backup")
	fatalIf(t, os.WriteFile(forged, forgeAdminToken(t, []byte(r.stdout), e.c.AdminToken(), "attacker-admin-token"), 0o600))
	res, err = r1.Run(waitLong, append([]string{"restore", "--from", forged}, r1.BaseArgs()...)...)
	fatalIf(t, err)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "HMAC does not verify") {
		t.Fatalf("restore of a forged backup: exit %d; stderr:\n%s", res.ExitCode, res.Stderr)
	}
	started = time.Now()
	res, err = r1.Run(waitLong, append([]string{"restore", "--from", file}, r1.BaseArgs()...)...)
	fatalIf(t, err)
	if res.ExitCode != 0 {
		t.Fatalf("restore: exit %d; stdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	fatalIf(t, rc.adopt(r1, e.c.AdminToken()))
	fatalIf(t, r1.Start(), "start the restored node")
	fatalIf(t, rc.WaitMembers(waitLong, r1), "the restored node leads alone")
	fatalIf(t, waitFrontDoor(r1), "r1's front door")
	t.Logf("timing: restore and start: %s", time.Since(started).Round(time.Millisecond))

	e.aliceJumps(t, r1)
	e.view(t, r1).mustEqual(t, before, "old cluster and restored cluster")
	restored := e.auditLines(t, r1)
	k := 0
	for k < len(restored) && auditType(t, restored[k]) != "cluster.restore" {
		k++
	}
	if k == len(restored) || k < len(auditBefore) || k > len(auditOld) {
		t.Fatalf("the restored audit log has %d events before cluster.restore (of %d); the old one had %d before the backup and %d after", k, len(restored), len(auditBefore), len(auditOld))
	}
	for i := range k {
		if restored[i] != auditOld[i] {
			t.Fatalf("audit event %d differs:\nold:      %s\nrestored: %s", i+1, auditOld[i], restored[i])
		}
	}
	// e.admin fails the test unless the command exits 0.
	e.admin(t, r1, "audit", "verify")

	// The old cluster's node certificates open nothing on the new one.
	oldCert, err := n2.Certificate()
	fatalIf(t, err)
	if ok, detail := probeNodeAPI(rc, r1, oldCert); ok {
		t.Errorf("the old n2's certificate is admitted by the restored cluster's API (%v)", detail)
	}
	if ok, detail := probeRaft(rc, r1, oldCert); ok {
		t.Errorf("the old n2's certificate is admitted by the restored cluster's raft port (%v)", detail)
	}

	// The old cluster's join token (its bootstrap token, valid 7 days) makes
	// no node of the restored one.
	oldJoin, err := api.ParseToken(e.c.JoinToken())
	fatalIf(t, err)
	intruderKey, _ := impostorKeys(t)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	_, err = r1.API().Join(ctx, &api.JoinRequest{Secret: oldJoin.Secret, NodeID: "intruder", PublicKey: intruderKey,
		RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "join token is not valid for this cluster") {
		t.Fatalf("join of the restored cluster with the old cluster's join token: %v", err)
	}

	// Grown with its join token as usual.
	fatalIf(t, r2.Start("--join", rc.JoinToken()), "join r2")
	fatalIf(t, rc.WaitMembers(waitLong, r1, r2), "r2 joined the restored cluster")
	fatalIf(t, waitFrontDoor(r2), "r2's front door")
	e.aliceJumps(t, r2)
}

func TestQuorumLossRecovery(t *testing.T) {
	e := backupEnv(t)
	n1, n2, n3 := e.c.Nodes[0], e.c.Nodes[1], e.c.Nodes[2]
	e.aliceJumps(t, n2)
	before := e.view(t, n2)
	auditBefore := e.auditLines(t, n2)

	// Two of three nodes die with their data; n2 has no quorum left.
	for _, n := range []*Node{n1, n3} {
		fatalIf(t, n.Kill(), "kill "+n.ID)
		fatalIf(t, os.RemoveAll(n.DataDir), "destroy "+n.ID+"'s data")
	}
	started := time.Now()
	_, err := n2.Stop(waitStop)
	fatalIf(t, err, "stop n2")
	res, err := n2.Run(waitLong, append([]string{"recover"}, n2.BaseArgs()...)...)
	fatalIf(t, err)
	if res.ExitCode != 0 {
		t.Fatalf("recover: exit %d; stdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	fatalIf(t, n2.Start(), "start the recovered n2")
	fatalIf(t, e.c.WaitMembers(waitLong, n2), "n2 leads alone")
	fatalIf(t, waitFrontDoor(n2), "n2's front door")
	t.Logf("timing: recover and start: %s", time.Since(started).Round(time.Millisecond))

	e.aliceJumps(t, n2)
	e.view(t, n2).mustEqual(t, before, "before the loss and after the recovery")
	after := e.auditLines(t, n2)
	for i, l := range auditBefore {
		if i >= len(after) || after[i] != l {
			t.Fatalf("audit event %d lost or changed in the recovery", i+1)
		}
	}
	if auditType(t, after[len(auditBefore)]) != "cluster.recover" {
		t.Errorf("the event after the recovery is %s, want cluster.recover", after[len(auditBefore)])
	}
	e.admin(t, n2, "audit", "verify")

	// Grown back to three with the recovery's join token: n1 and n3 again,
	// from empty data dirs (their old records are gone, so their ids are
	// free).
	tok, err := os.ReadFile(filepath.Join(n2.DataDir, "join-token"))
	fatalIf(t, err)
	for i, n := range []*Node{n1, n3} {
		fatalIf(t, n.Start("--join", strings.TrimSpace(string(tok))), "join "+n.ID+" again")
		fatalIf(t, e.c.WaitMembers(waitLong, append([]*Node{n2}, []*Node{n1, n3}[:i+1]...)...), n.ID+" joined")
	}
	_, err = e.c.WaitConverged(waitLong)
	fatalIf(t, err)
	fatalIf(t, waitFrontDoor(n3), "n3's front door")
	e.aliceJumps(t, n3)
}
