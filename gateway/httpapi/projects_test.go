package httpapi

import (
	"testing"

	"github.com/rampart-ssh/rampart/api"
)

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
			p, err := projectFromAPI("web", &api.Project{Settings: tt.in})
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
