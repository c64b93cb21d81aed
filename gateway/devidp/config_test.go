package devidp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error, one per problem; nil means valid
	}{
		{name: "ok/minimal", mutate: func(*Config) {}},
		{name: "ok/nested-claims", mutate: func(c *Config) {
			c.ClaimNames = ClaimNames{Username: "login", Groups: "rampart.groups"}
		}},
		{
			name: "fail/config-invalid",
			mutate: func(c *Config) {
				c.Issuer = "http://127.0.0.1:5556/"
				c.Clients = []Client{{ID: "a"}, {ID: "a"}, {ID: "", RedirectURIs: []string{"not a url"}}}
				c.Users = []User{
					{Username: "alice", Password: "pw-Canary-a", Email: "alice@example.com"},
					{Username: "Alice", Password: "", Email: "nope"},
					{Username: " eve", Password: "pw-Canary-e", Email: "eve@example.com", Groups: []string{""}},
				}
				c.DeviceCodeTTL = 500 * time.Millisecond
				c.PollInterval = 1500 * time.Millisecond
				c.SlowDownPolls = -1
				c.ClaimNames = ClaimNames{Username: "email", Groups: "x..y"}
			},
			want: []string{
				"issuer: ", "no path (not even a trailing slash)",
				`clients[1]: id "a" is used twice`,
				"clients[2]: id is required",
				`clients[2].redirect_uris[0]: "not a url" is not an absolute URL`,
				`users[1]: username "Alice" is used twice`,
				"users[1] (Alice): password is required",
				`users[1] (Alice): email "nope"`,
				`users[2]: username " eve" cannot be typed`,
				"users[2] ( eve): groups[0] is empty",
				"device_code_ttl: 500ms is below the minimum of 1s",
				"poll_interval: 1.5s must be a whole number of seconds",
				"slow_down_polls: -1 is negative",
				`claim_names.username: "email" collides with the standard claim "email"`,
				`claim_names.groups: "x..y" is not a claim name`,
			},
		},
		{
			name:   "fail/empty",
			mutate: func(c *Config) { *c = Config{} },
			want: []string{
				"issuer: is required",
				"clients: at least one client is required",
				"users: at least one user is required",
			},
		},
		{
			name:   "fail/overlapping-claims",
			mutate: func(c *Config) { c.ClaimNames = ClaimNames{Username: "rampart", Groups: "rampart.groups"} },
			want:   []string{`username claim "rampart" and groups claim "rampart.groups" overlap`},
		},
		{
			name:   "fail/issuer-scheme",
			mutate: func(c *Config) { c.Issuer = "ftp://127.0.0.1" },
			want:   []string{"must start with http:// or https://"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig("http://127.0.0.1:5556")
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			// New refuses the same config with the same list, and
			// never echoes a secret.
			_, nerr := New(cfg, nil)
			if nerr == nil || nerr.Error() != err.Error() {
				t.Errorf("New error = %v, want the Validate error", nerr)
			}
			for _, u := range cfg.Users {
				if u.Password != "" && strings.Contains(err.Error(), u.Password) {
					t.Errorf("error shows a password")
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{Users: []User{{Username: "u"}}}.withDefaults()
	if c.DeviceCodeTTL != 5*time.Minute || c.PollInterval != 5*time.Second ||
		c.ClaimNames != (ClaimNames{"preferred_username", "groups"}) || c.Now == nil || c.Users[0].Name != "u" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestUserCodes(t *testing.T) {
	t.Parallel()
	cases := []struct{ typed, want string }{
		{"BCDF-GHJK", "BCDFGHJK"},
		{"bcdf-ghjk", "BCDFGHJK"},
		{" bcdf ghjk ", "BCDFGHJK"},
		{"BCDFGHJK", "BCDFGHJK"},
		{"BCDF-GHJ", ""},    // short
		{"BCDF-GHJKL", ""},  // long
		{"ABCD-EFGH", ""},   // vowels are not in the alphabet
		{"BCDF-GHJK\n", ""}, // stray control character
		{"BCDF_GHJK", ""},   // unknown separator
		{"", ""},
	}
	for _, tc := range cases {
		if got := canonicalUserCode(tc.typed); got != tc.want {
			t.Errorf("canonicalUserCode(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
	if got := displayUserCode("BCDFGHJK"); got != "BCDF-GHJK" {
		t.Errorf("displayUserCode = %q", got)
	}
}
