package frontdoor

import (
	"strings"
	"testing"
)

// The greeting tells a person without a key how to make one, and an
// administrator with no servers how to enroll the first; nobody else.
func TestGreetingGuidance(t *testing.T) {
	const keyHint = "Make a key so that the next login needs no browser: ssh-keygen -t ed25519"
	const adminHint = "ssh -p 2222 admin@bastion.test tokens create web"
	tests := []struct {
		name      string
		who       Whoami
		jumpHost  string
		want, not []string
	}{
		{name: "ok/keyless-admin-no-servers", who: Whoami{Login: "alice", Admin: true}, jumpHost: "bastion.test:2222",
			want: []string{keyHint, adminHint, "ssh -p 2222 admin@bastion.test projects create web"}},
		{name: "ok/admin-on-port-22", who: Whoami{Login: "alice", Admin: true, BindingExpires: "2026-12-07T18:00:00Z"}, jumpHost: "bastion.test",
			want: []string{"ssh admin@bastion.test tokens create web"}, not: []string{keyHint}},
		{name: "ok/person-no-servers", who: Whoami{Login: "bob", BindingExpires: "2026-12-07T18:00:00Z"}, jumpHost: "bastion.test:2222",
			want: []string{"No servers are available to you yet."}, not: []string{keyHint, "administrator", "tokens create"}},
		{name: "ok/admin-with-servers", who: Whoami{Login: "alice", Admin: true, BindingExpires: "x",
			Servers: []Destination{{Name: "web-1", Project: "web", Command: "ssh -J bastion.test:2222 alice@web-1"}}}, jumpHost: "bastion.test:2222",
			want: []string{"ssh -J bastion.test:2222 alice@web-1"}, not: []string{"tokens create", keyHint, "also:"}},
		{name: "ok/shared-logins", who: Whoami{Login: "alice", BindingExpires: "x",
			Servers: []Destination{{Name: "web-1", Project: "web", Command: "ssh -J bastion.test alice@web-1", Logins: []string{"deploy", "www"}}}}, jumpHost: "bastion.test",
			want: []string{"ssh -J bastion.test alice@web-1  (also: deploy, www)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{JumpHost: tt.jumpHost}}
			var b strings.Builder
			s.writeGreeting(&b, &tt.who)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("greeting lacks %q:\n%s", w, b.String())
				}
			}
			for _, n := range tt.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("greeting holds %q:\n%s", n, b.String())
				}
			}
		})
	}
}
