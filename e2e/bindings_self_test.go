package e2e

// A person sees and undoes their own bindings (device-flow phishing made
// visible): alice binds two keys from two addresses, the greeting lists
// both with their source, `ssh bastion bindings revoke N` unbinds one (and
// bob cannot unbind hers), the revoked key goes back to the browser, and
// the audit holds binding.new_address for the second address. alice
// connects from two addresses of her own, bob from a third.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/frontdoor"
)

// signInFrom signs name in through the browser with a new key, connecting
// from the address from; dirName keeps two keys of one person apart. It
// returns the key's path, an ssh_config that uses it, and its fingerprint.
func signInFrom(t *testing.T, e *policyEnv, name, dirName, from string) (key, config, fp string) {
	t.Helper()
	key, config = e.signInAs(t, dirName, name, "BindAddress "+from)
	pub, err := os.ReadFile(key + ".pub")
	fatalIf(t, err)
	return key, config, gossh.FingerprintSHA256(parseAuthorizedKey(t, string(pub)))
}

// bastion runs a command of the person's own on the front door.
func (e *policyEnv) bastion(t *testing.T, config, name string, args ...string) sshResult {
	t.Helper()
	return runSSH(t, append([]string{"ssh", "-F", config, "-T", "-o", "BatchMode=yes", name + "@" + e.node.IP}, args...))
}

func TestBindingsSelfRevoke(t *testing.T) {
	e := trustingEnv(t, StartDevNode(t, "bindings-self", newIP(t, "bindings-self node")))
	bindingsLaptop, bindingsSecond, bindingsBobFrom := newIP(t, "alice's laptop"), newIP(t, "alice's second machine"), newIP(t, "bob's machine")
	var laptopFP, secondFP string
	e.key, e.config, laptopFP = signInFrom(t, e, "alice", "alice-laptop", bindingsLaptop)
	_, secondConfig, secondFP := signInFrom(t, e, "alice", "alice-second", bindingsSecond)

	// The greeting lists both keys, where each was bound from, and which
	// one this connection uses.
	greet := e.bastion(t, e.config, "alice")
	if greet.code != 0 {
		t.Fatalf("greeting exited %d: %s", greet.code, greet.stderr)
	}
	for _, want := range []string{laptopFP + "  from " + bindingsLaptop, secondFP + "  from " + bindingsSecond, "bindings revoke N"} {
		if !strings.Contains(greet.stdout, want) {
			t.Fatalf("greeting lacks %q:\n%s", want, greet.stdout)
		}
	}
	if line := lineWith(greet.stdout, laptopFP); !strings.Contains(line, "(this connection)") {
		t.Fatalf("the connection's own key is not marked: %q", line)
	}

	var views []frontdoor.BindingView
	r := e.bastion(t, e.config, "alice", "bindings", "--json")
	fatalIf(t, json.Unmarshal([]byte(r.stdout), &views), "bindings --json: "+r.stdout+r.stderr)
	index := 0
	for _, v := range views {
		if v.Fingerprint == secondFP && v.Source == bindingsSecond {
			index = v.Index
		}
	}
	if len(views) != 2 || index == 0 {
		t.Fatalf("bindings --json: %+v; want alice's two keys", views)
	}

	// Bob cannot revoke alice's key, even by its fingerprint.
	_, bobConfig, _ := signInFrom(t, e, "bob", "bob", bindingsBobFrom)
	if r := e.bastion(t, bobConfig, "bob", "bindings", "revoke", secondFP); r.code == 0 || !strings.Contains(r.stderr, "none of your keys") {
		t.Fatalf("bob revoking alice's key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := e.bastion(t, secondConfig, "alice", "whoami"); r.code != 0 {
		t.Fatalf("alice's second key stopped working after bob's attempt: exit %d %s", r.code, r.stderr)
	}

	if r := e.bastion(t, e.config, "alice", "bindings", "revoke", fmt.Sprint(index)); r.code != 0 || !strings.Contains(r.stdout, "Revoked "+secondFP) {
		t.Fatalf("bindings revoke %d: exit %d, stdout %q, stderr %q", index, r.code, r.stdout, r.stderr)
	}
	// The revoked key no longer signs in by itself: ssh is sent to the
	// browser (keyboard-interactive, which BatchMode refuses), and without
	// BatchMode the device prompt is shown.
	if r := e.bastion(t, secondConfig, "alice", "whoami"); r.code == 0 {
		t.Fatalf("the revoked key still signs in: %s", r.stdout)
	}
	again := filepath.Join(e.dir, "alice-second-again")
	fatalIf(t, os.Mkdir(again, 0o700))
	term := startTerminal(t, again, []string{"ssh", "-F", secondConfig, "alice@" + e.node.IP})
	waitDevicePrompt(t, term, e.node)
	if r := e.bastion(t, e.config, "alice", "bindings", "--json"); !strings.Contains(r.stdout, laptopFP) || strings.Contains(r.stdout, secondFP) {
		t.Fatalf("after the revoke: %s", r.stdout)
	}

	// The second address was new for alice; bob's first binding and alice's
	// first are not flagged.
	var events, revoked []auditEntry
	fatalIf(t, waitFor(waitLong, func() error {
		events, revoked = auditOf(t, e, "binding.flag"), auditOf(t, e, "binding.revoke")
		if len(revoked) == 0 {
			return fmt.Errorf("no binding.revoked event yet")
		}
		return nil
	}))
	if len(events) != 1 {
		t.Fatalf("binding.new_address events: %+v; want one", events)
	}
	ev := events[0]
	if ev.Actor != "alice" || ev.Fields["fingerprint"] != secondFP || !strings.HasPrefix(ev.Fields["remote"], bindingsSecond+":") || ev.Fields["known_addrs"] != bindingsLaptop {
		t.Fatalf("binding.new_address: %+v", ev)
	}
	if len(revoked) != 1 || revoked[0].Actor != "alice" || revoked[0].Fields["fingerprint"] != secondFP || revoked[0].Fields["by"] != "self" {
		t.Fatalf("binding.revoked events: %+v", revoked)
	}
}

// lineWith is the first line of s that contains sub.
func lineWith(s, sub string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}
