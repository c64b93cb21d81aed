package httpapi

import (
	"slices"

	gossh "golang.org/x/crypto/ssh"

	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// testUserCA is project web's user CA in TestAgentEventsEndpoint; its
// fingerprint is what sshd logs for the certificates it signed.
var testUserCA = func() gossh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

// loginEvent is an accepted Rampart certificate login numbered seq.
func loginEvent(seq uint64) api.LoginEvent {
	return api.LoginEvent{Seq: seq, Time: time.Date(2026, 5, 1, 10, 0, int(seq), 0, time.UTC), Outcome: api.LoginAccepted,
		User: "alice", Source: "10.0.0.9", Port: 40000 + int(seq), Method: "publickey", KeyType: "ED25519-CERT",
		Fingerprint: "SHA256:abc", KeyID: "rampart user=alice@example.com session=s-01 server=web-1 project=web",
		Serial: "1234567890123", CAFingerprint: gossh.FingerprintSHA256(testUserCA)}
}

func TestAgentEventsEndpoint(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", MachineID: "m2"}, Now: now},
		&raftstore.CAUpsert{Record: raftstore.CARecord{ID: "user-web-1", Kind: raftstore.CAUser, Project: "web", Algorithm: "ed25519",
			PublicKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(testUserCA))), SealedKey: []byte("sealed"), State: raftstore.CAActive}, Now: now},
	)
	pki := newTestPKI(t)
	srv := New(f, nil, slog.New(slog.DiscardHandler))
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = pki.serverTLS("n1")
	ts.StartTLS()
	t.Cleanup(ts.Close)
	agent1 := pki.client(api.RoleAgent, "s1")
	agent2 := pki.client(api.RoleAgent, "s2")

	failed := loginEvent(3)
	failed.Outcome, failed.KeyID, failed.Serial, failed.Reason = api.LoginFailed, "", "", "Certificate invalid: expired"
	// A refused login claiming a Rampart key id (anyone can self-sign a
	// certificate with one), and an accepted one whose certificate another
	// CA signed (a key the server trusts by other means): neither names
	// alice as the actor.
	claimed := loginEvent(4)
	claimed.Outcome, claimed.Reason = api.LoginFailed, "certificate signature invalid"
	otherCA := loginEvent(5)
	otherCA.CAFingerprint = "SHA256:someoneelse"
	farJump := loginEvent(6 + 1<<20)
	farJump.Port = 40006
	badSource := loginEvent(9)
	badSource.Source = "web-1.example.com"
	tooMany := make([]api.LoginEvent, api.MaxLoginEventBatch+1)
	for i := range tooMany {
		tooMany[i] = loginEvent(uint64(i + 1))
	}

	tests := []struct {
		name      string
		client    *http.Client
		machineID string
		body      string
		events    []api.LoginEvent
		status    int
		want      api.AgentEventsResponse
		wantErr   string
	}{
		{name: "ok/first-batch", client: agent1, machineID: "m1", events: []api.LoginEvent{loginEvent(1), loginEvent(2)},
			status: 200, want: api.AgentEventsResponse{LastSeq: 2, Accepted: 2}},
		{name: "ok/redelivered-batch", client: agent1, machineID: "m1", events: []api.LoginEvent{loginEvent(1), loginEvent(2)},
			status: 200, want: api.AgentEventsResponse{LastSeq: 2, Duplicates: 2}},
		{name: "ok/overlap", client: agent1, machineID: "m1", events: []api.LoginEvent{loginEvent(2), failed},
			status: 200, want: api.AgentEventsResponse{LastSeq: 3, Accepted: 1, Duplicates: 1}},
		{name: "ok/empty-batch-asks-last-seq", client: agent1, machineID: "m1", events: []api.LoginEvent{},
			status: 200, want: api.AgentEventsResponse{LastSeq: 3}},
		{name: "ok/claimed-and-foreign-key-ids", client: agent1, machineID: "m1", events: []api.LoginEvent{claimed, otherCA},
			status: 200, want: api.AgentEventsResponse{LastSeq: 5, Accepted: 2}},
		{name: "fail/seq-far-past-the-last", client: agent1, machineID: "m1", events: []api.LoginEvent{farJump}, status: 400, wantErr: "too far past"},
		{name: "ok/other-server-own-seqs", client: agent2, machineID: "m2", events: []api.LoginEvent{loginEvent(1)},
			status: 200, want: api.AgentEventsResponse{LastSeq: 1, Accepted: 1}},
		{name: "fail/batch-too-big", client: agent1, machineID: "m1", events: tooMany, status: 400, wantErr: "at most 200"},
		{name: "fail/source-not-ip", client: agent1, machineID: "m1", events: []api.LoginEvent{badSource}, status: 400, wantErr: "not an IP address"},
		{name: "fail/seqs-not-increasing", client: agent1, machineID: "m1", events: []api.LoginEvent{loginEvent(5), loginEvent(4)}, status: 400, wantErr: "must increase"},
		{name: "fail/server-id-in-body", client: agent1, machineID: "m1", body: `{"server_id":"s2","events":[]}`, status: 400, wantErr: "unknown field"},
		{name: "fail/no-certificate", client: pki.client("", ""), machineID: "m1", events: []api.LoginEvent{loginEvent(7)}, status: 401},
		{name: "fail/node-certificate", client: pki.client(api.RoleNode, "n2"), machineID: "m1", events: []api.LoginEvent{loginEvent(7)}, status: 403},
		{name: "fail/cloned-machine", client: agent1, machineID: "m2", events: []api.LoginEvent{loginEvent(7)}, status: 409},
		{name: "fail/removed-server", client: pki.client(api.RoleAgent, "s9"), machineID: "m1", events: []api.LoginEvent{loginEvent(7)}, status: 410},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			if tc.body == "" {
				body, _ = json.Marshal(api.AgentEventsRequest{Events: tc.events})
			}
			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/agents/events", bytes.NewReader(body))
			req.Header.Set(api.MachineIDHeader, tc.machineID)
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				var e api.Error
				_ = json.NewDecoder(resp.Body).Decode(&e)
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, e.Error, tc.status)
			}
			if tc.status != 200 {
				var e api.Error
				_ = json.NewDecoder(resp.Body).Decode(&e)
				if !strings.Contains(e.Error, tc.wantErr) {
					t.Fatalf("error %q does not say %q", e.Error, tc.wantErr)
				}
				return
			}
			var got api.AgentEventsResponse
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("response %+v, want %+v", got, tc.want)
			}
		})
	}

	// What the audit log holds: each event once, in order, with the server
	// from the certificates.
	_, events, err := f.State().Audit(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, fmt.Sprintf("%s %s %s seq=%s", e.Type, e.Actor, e.Fields["server"], e.Fields["agent_seq"]))
	}
	want := []string{
		"sshd_login.accept alice@example.com web-1 seq=1",
		"sshd_login.accept alice@example.com web-1 seq=2",
		"sshd_login.fail  web-1 seq=3",
		"sshd_login.fail  web-1 seq=4",
		"sshd_login.accept  web-1 seq=5",
		"sshd_login.accept alice@example.com web-2 seq=1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	first := events[0].Fields
	for k, v := range map[string]string{"server_id": "s1", "project": "web", "user": "alice", "source": "10.0.0.9", "port": "40001",
		"method": "publickey", "key_id": loginEvent(1).KeyID, "serial": "1234567890123", "session": "s-01", "ca_fingerprint": gossh.FingerprintSHA256(testUserCA)} {
		if first[k] != v {
			t.Errorf("field %s = %q, want %q", k, first[k], v)
		}
	}
	if !events[0].Time.Equal(loginEvent(1).Time) {
		t.Errorf("time = %s, want the event's %s", events[0].Time, loginEvent(1).Time)
	}
	if events[2].Fields["reason"] != "Certificate invalid: expired" || events[2].Fields["key_id"] != "" {
		t.Errorf("failed login fields: %v", events[2].Fields)
	}
	if events[3].Fields["key_id"] != claimed.KeyID || events[3].Fields["session"] != "" || events[4].Fields["session"] != "" {
		t.Errorf("claimed key ids must be kept as fields and name no session: %v / %v", events[3].Fields, events[4].Fields)
	}
	if err := raftstore.VerifyAuditChain(events); err != nil {
		t.Error(err)
	}
}

func TestParseRampartKeyID(t *testing.T) {
	tests := []struct {
		name  string
		keyID string
		want  map[string]string
	}{
		{"ok/minted", "rampart user=alice@example.com session=s-01 server=web-1 project=web",
			map[string]string{"user": "alice@example.com", "session": "s-01", "server": "web-1", "project": "web"}},
		{"ok/escaped", "rampart user=J%C3%BCrgen%20M session=- server=web-1 project=web",
			map[string]string{"user": "Jürgen M", "session": "", "server": "web-1", "project": "web"}},
		{"fail/not-rampart", "alice's laptop", nil},
		{"fail/control-character", "rampart user=a%0Ab session=s", nil},
		{"fail/bad-escape", "rampart user=a%zz", nil},
		{"fail/cut-escape", "rampart user=a%4", nil},
		{"fail/no-equals", "rampart user", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseRampartKeyID(tc.keyID); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("parseRampartKeyID(%q) = %v, want %v", tc.keyID, got, tc.want)
			}
		})
	}
}

// Past a per-server rate, refused logins are summarised: an sshd on the
// internet cannot fill the replicated audit log. Accepted logins never are,
// and every seq the agent sent is accounted for.
func TestAgentEventsFailedLoginsSummarised(t *testing.T) {
	now := time.Now()
	f := applyAll(t,
		&raftstore.ProjectUpsert{Project: raftstore.Project{Name: "web"}, Now: now},
		&raftstore.ServerUpsert{Server: raftstore.Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", MachineID: "m1"}, Now: now},
	)
	pki := newTestPKI(t)
	srv := New(f, nil, slog.New(slog.DiscardHandler))
	srv.now = func() time.Time { return now } // no tokens come back during the test
	ts := httptest.NewUnstartedServer(srv)
	ts.TLS = pki.serverTLS("n1")
	ts.StartTLS()
	t.Cleanup(ts.Close)
	agent := pki.client(api.RoleAgent, "s1")

	var batch []api.LoginEvent
	total := failedLoginBurst + 25
	for i := 1; i <= total; i++ {
		e := loginEvent(uint64(i))
		if i != failedLoginBurst+10 {
			e.Outcome, e.KeyID, e.Serial, e.CAFingerprint, e.Reason = api.LoginFailed, "", "", "", "Invalid user"
			e.Source = fmt.Sprintf("203.0.113.%d", i%20)
		}
		batch = append(batch, e)
	}
	var got api.AgentEventsResponse
	for start := 0; start < len(batch); start += api.MaxLoginEventBatch {
		body, _ := json.Marshal(api.AgentEventsRequest{Events: batch[start:min(start+api.MaxLoginEventBatch, len(batch))]})
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/agents/events", bytes.NewReader(body))
		req.Header.Set(api.MachineIDHeader, "m1")
		resp, err := agent.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
	}
	if got.LastSeq != uint64(total) {
		t.Fatalf("last seq %d, want %d: every event must be accounted for", got.LastSeq, total)
	}
	_, events, err := f.State().Audit(nil)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Type+"/"+e.Fields["agent_seq"]+"/"+e.Fields["count"])
	}
	// failedLoginBurst refused logins individually, then the accepted one
	// in the middle of a summarised run splits it in two.
	if len(events) != failedLoginBurst+3 {
		t.Fatalf("%d audit events: %v", len(events), kinds)
	}
	tail := kinds[failedLoginBurst:]
	want := []string{
		fmt.Sprintf("sshd_login.summarize/%d/9", failedLoginBurst+9),
		fmt.Sprintf("sshd_login.accept/%d/", failedLoginBurst+10),
		fmt.Sprintf("sshd_login.summarize/%d/15", total),
	}
	if !slices.Equal(tail, want) {
		t.Fatalf("last audit events %v, want %v", tail, want)
	}
	if s := events[len(events)-1].Fields["sources"]; strings.Count(s, ",") != maxSummarySources-1 {
		t.Errorf("summary sources %q, want %d of them", s, maxSummarySources)
	}
	if err := raftstore.VerifyAuditChain(events); err != nil {
		t.Error(err)
	}
}
