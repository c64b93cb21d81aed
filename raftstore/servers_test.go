package raftstore

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-memdb"
	"golang.org/x/crypto/ssh"
)

// invHostKey returns an authorized_keys line for a fixed ed25519 key.
func invHostKey(t *testing.T, seed byte) string {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(slices.Repeat([]byte{seed}, ed25519.SeedSize))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " root@web-1"
}

func TestServerUpsert(t *testing.T) {
	key := invHostKey(t, 1)
	existing := Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"www"}, Addr: "10.0.0.1", InstanceID: "i-0abc"}
	cases := []struct {
		name    string
		server  Server
		wantErr error
		check   func(t *testing.T, s *Server)
	}{
		{name: "ok/defaults", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2"}, check: func(t *testing.T, s *Server) {
			if s.SSHPort != DefaultSSHPort || s.EnrollMethod != EnrollManual || !s.CreatedAt.Equal(testNow) || s.Labels != nil {
				t.Fatalf("defaults not applied: %+v", s)
			}
		}},
		{name: "ok/normalizes-names", server: Server{ID: "s2", Project: "web", Name: "Web-2.Example.COM", AltNames: []string{"W2", "w2", "web-2.example.com", "2001:DB8::0001"}, Addr: "2001:DB8:0:0::2"}, check: func(t *testing.T, s *Server) {
			if s.Name != "web-2.example.com" || !slices.Equal(s.AltNames, []string{"2001:db8::1", "w2"}) || s.Addr != "2001:db8::2" {
				t.Fatalf("not normalized: name=%s alts=%v addr=%s", s.Name, s.AltNames, s.Addr)
			}
		}},
		{name: "ok/full", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "web-2.internal", SSHPort: 2222, HostKeys: []string{key + "\n"}, Labels: map[string]string{"env": "prod", "team/owner": "ops"}, EnrollMethod: EnrollAWS, MachineID: "abc", InstanceID: "i-0def"}, check: func(t *testing.T, s *Server) {
			if s.SSHPort != 2222 || len(s.HostKeys) != 1 || s.HostKeys[0] != key || s.Labels["env"] != "prod" {
				t.Fatalf("stored = %+v", s)
			}
		}},
		{name: "ok/shared-addr", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.1", SSHPort: 2201}},
		{name: "ok/same-machine-id", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", MachineID: "same"}},
		{name: "ok/update-own-names", server: Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"www", "web-one"}, Addr: "10.0.0.9", InstanceID: "i-0abc"}, check: func(t *testing.T, s *Server) {
			if s.CreateIndex == s.ModifyIndex || s.Addr != "10.0.0.9" {
				t.Fatalf("update: %+v", s)
			}
		}},
		{name: "fail/missing-project", server: Server{ID: "s2", Project: "db", Name: "db-1", Addr: "10.0.0.2"}, wantErr: ErrNotFound},
		{name: "fail/name-taken", server: Server{ID: "s2", Project: "web", Name: "WEB-1", Addr: "10.0.0.2"}, wantErr: ErrConflict},
		{name: "fail/name-is-alt-name", server: Server{ID: "s2", Project: "web", Name: "www", Addr: "10.0.0.2"}, wantErr: ErrConflict},
		{name: "fail/alt-name-is-name", server: Server{ID: "s2", Project: "web", Name: "web-2", AltNames: []string{"web-1"}, Addr: "10.0.0.2"}, wantErr: ErrConflict},
		{name: "fail/alt-name-is-alt-name", server: Server{ID: "s2", Project: "web", Name: "web-2", AltNames: []string{"WWW"}, Addr: "10.0.0.2"}, wantErr: ErrConflict},
		{name: "ok/own-addr-as-alt-name", server: Server{ID: "s2", Project: "web", Name: "web-2", AltNames: []string{"10.0.0.2"}, Addr: "10.0.0.2"}},
		{name: "fail/name-is-address", server: Server{ID: "s2", Project: "web", Name: "10.0.0.1", Addr: "10.0.0.2"}, wantErr: ErrConflict},
		{name: "fail/alt-name-is-address", server: Server{ID: "s2", Project: "web", Name: "evil", AltNames: []string{"10.0.0.1"}, Addr: "10.0.0.2"}, wantErr: ErrConflict},
		{name: "fail/alt-name-is-address-in-other-form", server: Server{ID: "s2", Project: "web", Name: "evil", AltNames: []string{"::ffff:10.0.0.1"}, Addr: "10.0.0.2"}, wantErr: ErrConflict},
		{name: "fail/addr-is-name", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "web-1"}, wantErr: ErrConflict},
		{name: "fail/addr-is-alt-name", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "WWW"}, wantErr: ErrConflict},
		{name: "fail/instance-taken", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", InstanceID: "i-0abc"}, wantErr: ErrConflict},
		{name: "fail/empty-id", server: Server{Project: "web", Name: "web-2", Addr: "10.0.0.2"}, wantErr: ErrInvalid},
		{name: "fail/id-slash", server: Server{ID: "a/b", Project: "web", Name: "web-2", Addr: "10.0.0.2"}, wantErr: ErrInvalid},
		{name: "fail/empty-name", server: Server{ID: "s2", Project: "web", Addr: "10.0.0.2"}, wantErr: ErrInvalid},
		{name: "fail/name-space", server: Server{ID: "s2", Project: "web", Name: "web 2", Addr: "10.0.0.2"}, wantErr: ErrInvalid},
		{name: "fail/name-leading-dash", server: Server{ID: "s2", Project: "web", Name: "-web", Addr: "10.0.0.2"}, wantErr: ErrInvalid},
		{name: "fail/name-with-port", server: Server{ID: "s2", Project: "web", Name: "web:22", Addr: "10.0.0.2"}, wantErr: ErrInvalid},
		{name: "fail/alt-name-bad", server: Server{ID: "s2", Project: "web", Name: "web-2", AltNames: []string{"a b"}, Addr: "10.0.0.2"}, wantErr: ErrInvalid},
		{name: "fail/empty-addr", server: Server{ID: "s2", Project: "web", Name: "web-2"}, wantErr: ErrInvalid},
		{name: "fail/addr-with-port", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2:22"}, wantErr: ErrInvalid},
		{name: "fail/port-zero-is-default-but-negative-not", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", SSHPort: -1}, wantErr: ErrInvalid},
		{name: "fail/port-too-high", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", SSHPort: 65536}, wantErr: ErrInvalid},
		{name: "fail/host-key-garbage", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", HostKeys: []string{"ssh-ed25519 notbase64"}}, wantErr: ErrInvalid},
		{name: "fail/host-key-options", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", HostKeys: []string{`command="sh" ` + key}}, wantErr: ErrInvalid},
		{name: "fail/host-key-two-lines", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", HostKeys: []string{key + "\n" + invHostKey(t, 2)}}, wantErr: ErrInvalid},
		{name: "fail/label-key-bad", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", Labels: map[string]string{"a b": "x"}}, wantErr: ErrInvalid},
		{name: "fail/label-value-newline", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", Labels: map[string]string{"a": "x\ny"}}, wantErr: ErrInvalid},
		{name: "fail/enroll-method", server: Server{ID: "s2", Project: "web", Name: "web-2", Addr: "10.0.0.2", EnrollMethod: "azure"}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			invServer(t, f, existing)
			// The read-only check (made before an enrollment spends its
			// token) agrees with the upsert's.
			if err := f.State().CheckServerNames(tc.server); errors.Is(err, ErrConflict) != errors.Is(tc.wantErr, ErrConflict) {
				t.Fatalf("CheckServerNames = %v, want the upsert's conflict %v", err, tc.wantErr)
			}
			before := f.State().LatestIndex()
			res := apply(t, f, &ServerUpsert{Server: tc.server, Now: testNow})
			if tc.wantErr != nil {
				if !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
				}
				if f.State().LatestIndex() != before {
					t.Fatal("refused write changed the state")
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			_, s, err := f.State().ServerByID(nil, tc.server.ID)
			if err != nil || s == nil {
				t.Fatalf("server not stored: %v", err)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestServerUpsertKeepsAndSkips(t *testing.T) {
	later := testNow.Add(time.Hour)
	base := Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"b", "a"}, Addr: "10.0.0.1", Labels: map[string]string{"k": "v"}, LastSeen: testNow}
	cases := []struct {
		name         string
		update       Server
		wantChange   bool
		wantLastSeen time.Time
	}{
		{name: "ok/identical-is-noop", update: base, wantLastSeen: testNow},
		{name: "ok/equivalent-is-noop", update: Server{ID: "s1", Project: "web", Name: "WEB-1", AltNames: []string{"A", "b", "web-1"}, Addr: "10.0.0.1", SSHPort: 22, Labels: map[string]string{"k": "v"}, EnrollMethod: EnrollManual}, wantLastSeen: testNow},
		{name: "ok/zero-last-seen-kept", update: Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.2"}, wantChange: true, wantLastSeen: testNow},
		{name: "ok/new-last-seen", update: Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"a", "b"}, Addr: "10.0.0.1", Labels: map[string]string{"k": "v"}, LastSeen: later}, wantChange: true, wantLastSeen: later},
		{name: "ok/label-change", update: Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"a", "b"}, Addr: "10.0.0.1", Labels: map[string]string{"k": "w"}}, wantChange: true, wantLastSeen: testNow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			created := mustApply(t, f, &ServerUpsert{Server: base, Now: testNow}).(*Server)
			ws := memdb.NewWatchSet()
			if _, _, err := f.State().ServersByProject(ws, "web"); err != nil {
				t.Fatal(err)
			}
			got := mustApply(t, f, &ServerUpsert{Server: tc.update, Now: later}).(*Server)
			if fired(ws) != tc.wantChange {
				t.Fatalf("watcher fired = %v, want %v", fired(ws), tc.wantChange)
			}
			if !got.CreatedAt.Equal(testNow) || got.CreateIndex != created.CreateIndex || !got.LastSeen.Equal(tc.wantLastSeen) {
				t.Fatalf("stamps: %+v", got)
			}
		})
	}

	t.Run("ok/rename-frees-old-name", func(t *testing.T) {
		f := testFSM(t)
		invProject(t, f, "web")
		invServer(t, f, base)
		invServer(t, f, Server{ID: "s1", Project: "web", Name: "web-one", Addr: "10.0.0.1"})
		invServer(t, f, Server{ID: "s2", Project: "web", Name: "web-1", AltNames: []string{"a"}, Addr: "10.0.0.2"})
		_, s, _ := f.State().ServerByAddress(nil, "web-1")
		if s == nil || s.ID != "s2" {
			t.Fatalf("web-1 resolves to %v, want s2", s)
		}
	})
}

func TestServerSeen(t *testing.T) {
	cases := []struct {
		name         string
		prior        time.Time
		now          time.Time
		wantLastSeen time.Time
		wantChange   bool
	}{
		{name: "ok/first-heartbeat", now: testNow, wantLastSeen: testNow, wantChange: true},
		{name: "ok/within-resolution-skipped", prior: testNow, now: testNow.Add(ServerSeenResolution - time.Second), wantLastSeen: testNow},
		{name: "ok/at-resolution-written", prior: testNow, now: testNow.Add(ServerSeenResolution), wantLastSeen: testNow.Add(ServerSeenResolution), wantChange: true},
		{name: "ok/backwards-ignored", prior: testNow, now: testNow.Add(-time.Hour), wantLastSeen: testNow},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			invServer(t, f, Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", LastSeen: tc.prior})
			ws := memdb.NewWatchSet()
			idx, _, _ := f.State().ServerByID(ws, "s1")
			got := mustApply(t, f, &ServerSeen{ID: "s1", Now: tc.now}).(*Server)
			if fired(ws) != tc.wantChange {
				t.Fatalf("watcher fired = %v, want %v", fired(ws), tc.wantChange)
			}
			newIdx, s, _ := f.State().ServerByID(nil, "s1")
			if (newIdx != idx) != tc.wantChange {
				t.Fatalf("index %d -> %d, want change %v", idx, newIdx, tc.wantChange)
			}
			if !s.LastSeen.Equal(tc.wantLastSeen) || !got.LastSeen.Equal(tc.wantLastSeen) {
				t.Fatalf("LastSeen stored %s returned %s, want %s", s.LastSeen, got.LastSeen, tc.wantLastSeen)
			}
		})
	}

	f := testFSM(t)
	for _, tc := range []struct {
		name    string
		cmd     *ServerSeen
		wantErr error
	}{
		{name: "fail/missing", cmd: &ServerSeen{ID: "nope", Now: testNow}, wantErr: ErrNotFound},
		{name: "fail/no-time", cmd: &ServerSeen{ID: "s1"}, wantErr: ErrInvalid},
		{name: "fail/no-id", cmd: &ServerSeen{Now: testNow}, wantErr: ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := apply(t, f, tc.cmd); !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
		})
	}
}

func TestServerDelete(t *testing.T) {
	cases := []struct {
		name    string
		id      string
		wantErr error
	}{
		{name: "ok/existing", id: "s1"},
		{name: "fail/missing", id: "s9", wantErr: ErrNotFound},
		{name: "fail/empty-id", id: "", wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			invServer(t, f, Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"www"}, Addr: "10.0.0.1"})
			if res := apply(t, f, &ServerDelete{ID: tc.id}); !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			_, all, _ := f.State().Servers(nil)
			if (len(all) == 0) != (tc.wantErr == nil) {
				t.Fatalf("servers left: %d", len(all))
			}
			if tc.wantErr == nil {
				// The freed names can be taken again, and the project deleted.
				invServer(t, f, Server{ID: "s2", Project: "web", Name: "www", Addr: "10.0.0.1"})
				mustApply(t, f, &ServerDelete{ID: "s2"})
				mustApply(t, f, &ProjectDelete{Name: "web"})
			}
		})
	}
}

func TestServerByAddress(t *testing.T) {
	f := testFSM(t)
	invProject(t, f, "web")
	invProject(t, f, "db")
	invServer(t, f, Server{ID: "s1", Project: "web", Name: "web-1", AltNames: []string{"www.example.com", "192.0.2.10"}, Addr: "10.0.0.1", InstanceID: "i-1"})
	invServer(t, f, Server{ID: "s2", Project: "web", Name: "web-2", Addr: "web-2.internal"})
	invServer(t, f, Server{ID: "s3", Project: "db", Name: "db-1", Addr: "10.0.0.50", SSHPort: 2201})
	invServer(t, f, Server{ID: "s4", Project: "db", Name: "db-2", Addr: "10.0.0.50", SSHPort: 2202})
	invServer(t, f, Server{ID: "s5", Project: "db", Name: "db-3", Addr: "2001:db8::5"})
	// A name that is another server's address is refused
	// (TestServerUpsert/fail/name-is-address), so an address finds its own
	// server.

	cases := []struct {
		name    string
		query   string
		wantID  string
		wantErr error
	}{
		{name: "ok/name", query: "web-1", wantID: "s1"},
		{name: "ok/name-any-case", query: "WEB-1", wantID: "s1"},
		{name: "ok/alt-name", query: "WWW.example.com", wantID: "s1"},
		{name: "ok/alt-ip", query: "192.0.2.10", wantID: "s1"},
		{name: "ok/addr-host", query: "Web-2.Internal", wantID: "s2"},
		{name: "ok/addr-ipv6-non-canonical", query: "2001:DB8:0::5", wantID: "s5"},
		{name: "ok/addr", query: "10.0.0.1", wantID: "s1"},
		{name: "ok/addr-mapped", query: "::ffff:10.0.0.1", wantID: "s1"},
		{name: "ok/unknown", query: "169.254.169.254"},
		{name: "ok/empty", query: ""},
		{name: "fail/shared-addr-ambiguous", query: "10.0.0.50", wantErr: ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			idx, s, err := f.State().ServerByAddress(nil, tc.query)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if idx == 0 {
				t.Fatal("index 0")
			}
			gotID := ""
			if s != nil {
				gotID = s.ID
			}
			if gotID != tc.wantID {
				t.Fatalf("found %q, want %q", gotID, tc.wantID)
			}
		})
	}

	t.Run("ok/lists-and-instance", func(t *testing.T) {
		st := f.State()
		_, web, _ := st.ServersByProject(nil, "web")
		_, all, _ := st.Servers(nil)
		_, byInst, _ := st.ServerByInstance(nil, "i-1")
		if len(web) != 2 || len(all) != 5 || byInst == nil || byInst.ID != "s1" {
			t.Fatalf("web=%d all=%d byInstance=%v", len(web), len(all), byInst)
		}
	})

	t.Run("ok/watch-wakes-when-name-appears", func(t *testing.T) {
		ws := memdb.NewWatchSet()
		if _, s, _ := f.State().ServerByAddress(ws, "web-9"); s != nil {
			t.Fatal("web-9 exists already")
		}
		invServer(t, f, Server{ID: "s9", Project: "web", Name: "web-9", Addr: "10.0.0.9"})
		if !fired(ws) {
			t.Fatal("watcher did not wake")
		}
	})
}

// An administrator's upsert of an enrolled server keeps what the
// enrollment recorded (machine id, instance id, method, host keys), and
// refuses to move it or change its host keys; a manual server is the
// administrator's to change.
func TestServerUpsertKeepsEnrollment(t *testing.T) {
	key, other := invHostKey(t, 1), invHostKey(t, 2)
	enrolled := Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 2222, HostKeys: []string{key},
		EnrollMethod: EnrollAWS, MachineID: "m-1", InstanceID: "i-0abc", AgentKeyHash: strings.Repeat("a", 64)}
	edit := func(f func(s *Server)) Server {
		// What PUT /v1/servers/{id} sends: no enrollment fields at all.
		s := Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.1", SSHPort: 2222, EnrollMethod: EnrollManual}
		f(&s)
		return s
	}
	cases := []struct {
		name    string
		update  Server
		enroll  bool
		wantErr error
		check   func(t *testing.T, s *Server)
	}{
		{name: "ok/edit-keeps-enrollment", update: edit(func(s *Server) { s.Labels = map[string]string{"env": "prod"} }), check: func(t *testing.T, s *Server) {
			if s.MachineID != "m-1" || s.InstanceID != "i-0abc" || s.EnrollMethod != EnrollAWS || !slices.Equal(s.HostKeys, []string{key}) || s.Labels["env"] != "prod" {
				t.Fatalf("enrollment not kept: %+v", s)
			}
		}},
		{name: "ok/same-host-keys", update: edit(func(s *Server) { s.HostKeys = []string{key} })},
		{name: "ok/re-enrollment-moves", update: Server{ID: "s1", Project: "web", Name: "web-1", Addr: "10.0.0.9", HostKeys: []string{other}, EnrollMethod: EnrollToken, MachineID: "m-2", AgentKeyHash: strings.Repeat("b", 64)}, enroll: true, check: func(t *testing.T, s *Server) {
			if s.Addr != "10.0.0.9" || s.MachineID != "m-2" || !slices.Equal(s.HostKeys, []string{other}) {
				t.Fatalf("re-enrollment not recorded: %+v", s)
			}
		}},
		{name: "fail/new-addr", update: edit(func(s *Server) { s.Addr = "10.0.0.9" }), wantErr: ErrConflict},
		{name: "fail/new-port", update: edit(func(s *Server) { s.SSHPort = 22 }), wantErr: ErrConflict},
		{name: "fail/other-host-keys", update: edit(func(s *Server) { s.HostKeys = []string{other} }), wantErr: ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			invProject(t, f, "web")
			mustApply(t, f, &ServerUpsert{Server: enrolled, SetAgentKey: true, Now: testNow})
			res := apply(t, f, &ServerUpsert{Server: tc.update, SetAgentKey: tc.enroll, Now: testNow})
			if !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			_, got, _ := f.State().ServerByID(nil, "s1")
			if tc.wantErr != nil {
				if got.Addr != "10.0.0.1" || got.MachineID != "m-1" {
					t.Fatalf("refused upsert changed the server: %+v", got)
				}
				return
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}

	t.Run("ok/manual-server-moves", func(t *testing.T) {
		f := testFSM(t)
		invProject(t, f, "web")
		mustApply(t, f, &ServerUpsert{Server: Server{ID: "s2", Project: "web", Name: "db-1", Addr: "10.0.0.2", HostKeys: []string{key}}, Now: testNow})
		got := mustApply(t, f, &ServerUpsert{Server: Server{ID: "s2", Project: "web", Name: "db-1", Addr: "10.0.0.3"}, Now: testNow}).(*Server)
		if got.Addr != "10.0.0.3" || len(got.HostKeys) != 0 {
			t.Fatalf("manual server: %+v", got)
		}
	})
}
