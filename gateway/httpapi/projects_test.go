package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// A PUT that creates a project without "recording" records (the README's
// promise); one that replaces a project without it keeps the stored setting,
// so projects created before recording was the default stay as they are.
func TestProjectFromAPIRecordingDefault(t *testing.T) {
	off := &raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{Recording: false}}
	on := &raftstore.Project{Name: "web", Settings: raftstore.ProjectSettings{Recording: true}}
	for _, tc := range []struct {
		name string
		body string
		cur  *raftstore.Project
		want bool
	}{
		{"ok/create-without-recording-records", `{"description":"web","settings":{}}`, nil, true},
		{"ok/create-recording-off", `{"settings":{"recording":false}}`, nil, false},
		{"ok/replace-without-recording-keeps-off", `{"description":"web","settings":{"allow_local_forward":true}}`, off, false},
		{"ok/replace-without-recording-keeps-on", `{"settings":{}}`, on, true},
		{"ok/replace-recording-on", `{"settings":{"recording":true}}`, off, true},
		{"ok/replace-recording-off", `{"settings":{"recording":false}}`, on, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in api.Project
			if err := json.Unmarshal([]byte(tc.body), &in); err != nil {
				t.Fatal(err)
			}
			p, err := projectFromAPI("web", &in, tc.cur)
			if err != nil {
				t.Fatal(err)
			}
			if p.Settings.Recording != tc.want {
				t.Fatalf("recording %v, want %v", p.Settings.Recording, tc.want)
			}
			out, _ := json.Marshal(projectToAPI(p))
			var back api.Project
			if err := json.Unmarshal(out, &back); err != nil || back.Settings.Recording == nil || *back.Settings.Recording != tc.want {
				t.Fatalf("shown as %s", out)
			}
		})
	}
}

func TestProjectSettingsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   api.ProjectSettings
	}{
		{"ok/defaults", api.ProjectSettings{}},
		{"ok/personal-keys", api.ProjectSettings{AllowPersonalKeys: true, IdleTimeout: "15m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := projectFromAPI("web", &api.Project{Settings: tt.in}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Settings.AllowPersonalKeys != tt.in.AllowPersonalKeys {
				t.Errorf("stored AllowPersonalKeys = %v, want %v", p.Settings.AllowPersonalKeys, tt.in.AllowPersonalKeys)
			}
			if got := projectToAPI(p).Settings; got.AllowPersonalKeys != tt.in.AllowPersonalKeys || got.IdleTimeout != tt.in.IdleTimeout {
				t.Errorf("shown settings = %+v, want %+v", got, tt.in)
			}
		})
	}
}

// The API, like the admin shell, calls the longest a session may last
// max_session. max_session_duration, its old name here, is still taken on
// input; the two differing is refused; output has max_session only.
func TestProjectMaxSessionName(t *testing.T) {
	ts, _, _ := newAdminAPI(t)
	auth := "Bearer " + testAdminSecret
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"ok/max-session", `{"settings":{"max_session":"8h"}}`, http.StatusOK, "8h0m0s"},
		{"ok/old-name", `{"settings":{"max_session_duration":"2h"}}`, http.StatusOK, "2h0m0s"},
		{"ok/both-equal", `{"settings":{"max_session":"1h","max_session_duration":"1h"}}`, http.StatusOK, "1h0m0s"},
		{"fail/both-differ", `{"settings":{"max_session":"1h","max_session_duration":"2h"}}`, http.StatusBadRequest, ""},
		{"fail/not-a-duration", `{"settings":{"max_session":"long"}}`, http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, http.MethodPut, ts.URL+"/v1/projects/web", auth, tc.body)
			if code != tc.status {
				t.Fatalf("HTTP %d %s, want %d", code, body, tc.status)
			}
			if tc.status != http.StatusOK {
				if !strings.Contains(body, "max_session") {
					t.Errorf("error %s does not name the field", body)
				}
				return
			}
			var out struct {
				Settings map[string]any `json:"settings"`
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatal(err)
			}
			if s := out.Settings; s["max_session"] != tc.want || s["max_session_duration"] != nil {
				t.Errorf("settings %v, want max_session %q and no max_session_duration", s, tc.want)
			}
		})
	}
}
