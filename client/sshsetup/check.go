package sshsetup

import (
	"errors"
	"fmt"
	"strings"
	"unicode"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

// ErrUnsafe: a value to be written into ~/.ssh breaks the rule for its
// field. Values come from the cluster (GET /v1/client/setup, the front
// door's whoami), and a value that could add a line (a ProxyCommand, an
// @cert-authority for every host) must be refused, not written.
var ErrUnsafe = errors.New("refusing to write it into ~/.ssh")

// Check refuses a Desired with any value that breaks its field's rule: the
// jump host a host name or IP address with an optional :port, node names
// names or addresses or [name]:port, host patterns as api.CheckHostPattern
// says, servers server names, the unix name a unix name, each CA key one
// authorized_keys line without options, and the local paths and cluster
// address without control characters or quotes.
func (d Desired) Check() error {
	if err := api.CheckJumpHost(d.JumpHost); err != nil {
		return unsafe(err)
	}
	for _, n := range d.NodeNames {
		if err := api.CheckKnownHostsName(n); err != nil {
			return unsafe(err)
		}
	}
	for _, p := range d.HostPatterns {
		if err := api.CheckHostPattern(p); err != nil {
			return unsafe(err)
		}
	}
	for _, s := range d.Servers {
		if !api.ValidServerName(s) {
			return unsafe(fmt.Errorf("server name %q is not a host name", s))
		}
	}
	if d.UnixName != "" {
		if err := api.ValidUnixName(d.UnixName); err != nil {
			return unsafe(fmt.Errorf("unix name: %w", err))
		}
	}
	for _, keys := range [][]string{d.NodeHostCAKeys, d.HostCAKeys} {
		for _, k := range keys {
			if err := CheckCAKey(k); err != nil {
				return unsafe(err)
			}
		}
	}
	for what, v := range map[string]string{"cluster address": d.Cluster, "identity file": d.IdentityFile, "known_hosts file": d.KnownHostsFile} {
		if strings.ContainsFunc(v, unicode.IsControl) || strings.Contains(v, `"`) {
			return unsafe(fmt.Errorf("%s %q holds a control character or a quote", what, v))
		}
	}
	return nil
}

func unsafe(err error) error { return fmt.Errorf("%w: %w", err, ErrUnsafe) }

// CheckCAKey refuses a host CA key that is not exactly one authorized_keys
// line (type, key, optional comment) without options: anything more could
// add a known_hosts line of its own.
func CheckCAKey(line string) error {
	line = strings.TrimSpace(line)
	if strings.ContainsFunc(line, unicode.IsControl) {
		return fmt.Errorf("host CA key %q is more than one line", line)
	}
	_, _, options, rest, err := gossh.ParseAuthorizedKey([]byte(line))
	switch {
	case err != nil:
		return fmt.Errorf("host CA key %q is not a public key: %w", line, err)
	case len(options) > 0 || len(rest) > 0 || strings.HasPrefix(line, "@"):
		return fmt.Errorf("host CA key %q carries options or more lines", line)
	}
	return nil
}

// CheckClientSetup refuses a cluster's answer to GET /v1/client/setup with
// anything Desired.Check refuses.
func CheckClientSetup(cs *api.ClientSetup) error {
	return Desired{JumpHost: cs.JumpHost, NodeNames: cs.NodeNames, HostPatterns: cs.HostPatterns,
		NodeHostCAKeys: cs.NodeHostCAKeys, HostCAKeys: cs.HostCAKeys}.Check()
}
