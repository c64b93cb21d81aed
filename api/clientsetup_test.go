package api

import (
	"slices"
	"testing"
)

func TestKnownHostsNames(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		hosts      []string
		want       []string
	}{
		{"ok/port-22", "10.0.0.5:22", []string{"bastion.example.com"}, []string{"10.0.0.5", "bastion.example.com"}},
		{"ok/other-port", "127.0.0.1:2222", []string{"localhost"}, []string{"127.0.0.1", "[127.0.0.1]:2222", "[localhost]:2222", "localhost"}},
		{"ok/wildcard-dropped", "0.0.0.0:22", []string{"b"}, []string{"b"}},
		{"fail/no-port", "10.0.0.5", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KnownHostsNames(tc.addr, tc.hosts); !slices.Equal(got, tc.want) {
				t.Errorf("KnownHostsNames(%q, %v) = %v, want %v", tc.addr, tc.hosts, got, tc.want)
			}
		})
	}
}

func TestCheckHostPattern(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"*.prod.example.com", true}, {"*.example.com", true}, {"web-1.example.com", true}, {"web-1", true},
		{"*", false}, {"*.*", false}, {"*.com", false}, {"*a*", false}, {"*-*", false}, {"web-?", false},
		{"*.*.example.com", false}, {"web*.example.com", false}, {"a b", false}, {"!x", false}, {"", false},
		{"*.example.com\n  ProxyCommand x", false},
	} {
		if err := CheckHostPattern(tc.p); (err == nil) != tc.ok {
			t.Errorf("CheckHostPattern(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

func TestHostNameRules(t *testing.T) {
	for _, tc := range []struct {
		s          string
		jump, node bool
	}{
		{"bastion.example.com", true, true},
		{"bastion.example.com:2222", true, false},
		{"[bastion.example.com]:2222", true, true},
		{"10.0.0.5", true, true},
		{"::1", true, true},
		{"[::1]:2222", true, true},
		{"b.example.com\n  ProxyCommand sh -c 'id'\nHost x", false, false},
		{"b.example.com:0", false, false},
		{"b.example.com:022", false, false},
		{"[b.example.com]:x", false, false},
		{"[b.example.com]", false, false},
		{"b.example.com -oProxyCommand=x", false, false},
		{"b,c", false, false},
		{"!b", false, false},
		{"*", false, false},
		{"", false, false},
	} {
		if err := CheckJumpHost(tc.s); (err == nil) != tc.jump {
			t.Errorf("CheckJumpHost(%q) = %v, want ok=%v", tc.s, err, tc.jump)
		}
		if err := CheckKnownHostsName(tc.s); (err == nil) != tc.node {
			t.Errorf("CheckKnownHostsName(%q) = %v, want ok=%v", tc.s, err, tc.node)
		}
	}
}

func TestPublicNodeNames(t *testing.T) {
	got := PublicKnownHostsNames("10.0.0.5:2222", []string{"10.0.0.5", "fd00::5", "bastion.example.com"})
	if want := []string{"[bastion.example.com]:2222", "bastion.example.com"}; !slices.Equal(got, want) {
		t.Errorf("PublicKnownHostsNames = %v, want %v (no addresses)", got, want)
	}
	for jump, want := range map[string][]string{"b.example.com": {"b.example.com"}, "b.example.com:22": {"b.example.com"},
		"10.0.0.5:2222": {"[10.0.0.5]:2222"}, "[::1]:2222": {"[::1]:2222"}, "b\nHost x": nil} {
		if got := JumpHostNames(jump); !slices.Equal(got, want) {
			t.Errorf("JumpHostNames(%q) = %v, want %v", jump, got, want)
		}
	}
}
