package cli

import (
	"testing"

	"github.com/rampart-ssh/rampart/api"
)

func TestAPIURL(t *testing.T) {
	for _, tc := range []struct{ name, arg, flag, want string }{
		{"ok/host", "bastion.example.com", "", "https://bastion.example.com:8443"},
		{"ok/host-ssh-port", "10.0.0.5:2222", "", "https://10.0.0.5:8443"},
		{"ok/url", "https://api.example.com:9443", "", "https://api.example.com:9443"},
		{"ok/flag", "bastion", "https://other:8443", "https://other:8443"},
		{"fail/user-at-host", "alice@bastion", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apiURL(tc.arg, tc.flag)
			if (err != nil) != (tc.want == "") || got != tc.want {
				t.Errorf("apiURL(%q, %q) = %q, %v; want %q", tc.arg, tc.flag, got, err, tc.want)
			}
		})
	}
}

func TestFilterServers(t *testing.T) {
	who := &api.Whoami{UnixName: "jane_doe", Servers: []api.Destination{
		{Name: "web-1", Project: "web", Labels: map[string]string{"env": "prod", "role": "web"}},
		{Name: "web-2", Project: "web", Labels: map[string]string{"env": "staging", "role": "web"}},
		{Name: "db-1", Project: "db"},
	}}
	for _, tc := range []struct {
		name   string
		labels []string
		want   []string
	}{
		{"ok/all", nil, []string{"web-1", "web-2", "db-1"}},
		{"ok/one-label", []string{"role=web"}, []string{"web-1", "web-2"}},
		{"ok/every-label", []string{"role=web", "env=prod"}, []string{"web-1"}},
		{"ok/none", []string{"env=dev"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := parseLabels(tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			got := filterServers(who, want)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i, s := range got {
				if s.Name != tc.want[i] || s.Login != "jane_doe" {
					t.Errorf("server %d = %+v, want %s as jane_doe", i, s, tc.want[i])
				}
			}
		})
	}
	if _, err := parseLabels([]string{"env"}); err == nil {
		t.Error("-l env (no value) was accepted")
	}
}
