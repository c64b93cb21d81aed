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
		{"*.prod.example.com", true}, {"web-?", true}, {"*", false}, {"*.*", false}, {"a b", false}, {"!x", false}, {"", false},
	} {
		if err := CheckHostPattern(tc.p); (err == nil) != tc.ok {
			t.Errorf("CheckHostPattern(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}
