package httpapi

import (
	"encoding/json"
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
