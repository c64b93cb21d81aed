package raftstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Helpers shared by the inventory tables' tests (projects, grants,
// entitlements, servers, tokens).

func invProject(t *testing.T, f *FSM, name string) {
	t.Helper()
	mustApply(t, f, &ProjectUpsert{Project: Project{Name: name}, Now: testNow})
}

func invEntitlement(t *testing.T, f *FSM, name string) {
	t.Helper()
	mustApply(t, f, &EntitlementUpsert{Entitlement: Entitlement{Name: name, Commands: []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{"restart", "nginx"}}}}, Now: testNow})
}

func invServer(t *testing.T, f *FSM, s Server) {
	t.Helper()
	mustApply(t, f, &ServerUpsert{Server: s, Now: testNow})
}

// invTokenHash is the stored hash of a token whose secret is seed.
func invTokenHash(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

// ownedCommands is one valid instance of each command the inventory tables
// own, in MessageType order.
func ownedCommands() []Command {
	return []Command{
		&ProjectUpsert{Project: Project{Name: "web", Description: "web tier", Settings: ProjectSettings{CertTTL: time.Minute, SharedLogins: []string{"deploy"}}}, Now: testNow},
		&ProjectDelete{Name: "web"},
		&GrantUpsert{Grant: Grant{Project: "web", Group: "ops", Role: GrantAdmin, Sudo: []string{"restart"}}, Now: testNow},
		&GrantDelete{Project: "web", Group: "ops"},
		&ServerUpsert{Server: Server{ID: "i-1", Project: "web", Name: "web-1", AltNames: []string{"10.0.0.1"}, Addr: "10.0.0.1", Labels: map[string]string{"env": "prod"}}, Now: testNow},
		&ServerDelete{ID: "i-1"},
		&ServerSeen{ID: "i-1", Now: testNow},
		&TokenCreate{Token: Token{Hash: invTokenHash("s"), Kind: TokenEnroll, Project: "web", UsesLeft: 1}, Now: testNow},
		&TokenUse{Hash: invTokenHash("s"), Kind: TokenEnroll, Now: testNow},
		&TokenDelete{Hash: invTokenHash("s")},
		&EntitlementUpsert{Entitlement: Entitlement{Name: "restart", Commands: []SudoCommand{{Path: "/usr/bin/systemctl", Args: []string{}}}}, Now: testNow},
		&EntitlementDelete{Name: "restart"},
	}
}

func TestOwnedCommandsRegistered(t *testing.T) {
	owned := []MessageType{
		ProjectUpsertType, ProjectDeleteType, GrantUpsertType, GrantDeleteType,
		ServerUpsertType, ServerDeleteType, ServerSeenType,
		TokenCreateType, TokenUseType, TokenDeleteType,
		EntitlementUpsertType, EntitlementDeleteType,
	}
	known := KnownCommandTypes()
	for _, mt := range owned {
		if !slices.Contains(known, mt) {
			t.Errorf("message type %d has no registered command", mt)
			continue
		}
		if got := commandTypes[mt]().Type(); got != mt {
			t.Errorf("command registered for %d reports type %d", mt, got)
		}
	}
	var fromCmds []MessageType
	for _, c := range ownedCommands() {
		fromCmds = append(fromCmds, c.Type())
	}
	if !slices.Equal(fromCmds, owned) {
		t.Errorf("ownedCommands covers %v, want %v", fromCmds, owned)
	}
}

// TestOwnedCommandsRoundTrip checks that each command survives the log's
// framing unchanged (Decode refuses unknown fields, so a field that does not
// round-trip would show here first).
func TestOwnedCommandsRoundTrip(t *testing.T) {
	for _, cmd := range ownedCommands() {
		t.Run("ok/"+strings.TrimPrefix(fmt.Sprintf("%T", cmd), "*raftstore."), func(t *testing.T) {
			buf, err := Encode(cmd)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(buf)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := mustJSON(t, cmd), mustJSON(t, got); !bytes.Equal(a, b) {
				t.Fatalf("round trip changed the command:\n%s\n%s", a, b)
			}
		})
	}
}

// TestOwnedTablesSnapshotRoundTrip restores a snapshot of every inventory
// table and compares the rows, including the nil-versus-empty Args that
// separate "any arguments" from "no arguments".
func TestOwnedTablesSnapshotRoundTrip(t *testing.T) {
	f := testFSM(t)
	invProject(t, f, "web")
	mustApply(t, f, &EntitlementUpsert{Entitlement: Entitlement{Name: "e", Commands: []SudoCommand{
		{Path: "/usr/bin/any"}, {Path: "/usr/bin/none", Args: []string{}}, {Path: "/usr/bin/some", Args: []string{"--x=1"}},
	}}, Now: testNow})
	mustApply(t, f, &GrantUpsert{Grant: Grant{Project: "web", Group: "ops", Sudo: []string{"e"}}, Now: testNow})
	invServer(t, f, Server{ID: "i-1", Project: "web", Name: "web-1", AltNames: []string{"w1"}, Addr: "10.0.0.1", Labels: map[string]string{"env": "prod"}, LastSeen: testNow})
	mustApply(t, f, &TokenCreate{Token: Token{Hash: invTokenHash("a"), Kind: TokenJoin, UsesLeft: UnlimitedUses, ExpiresAt: testNow.Add(time.Hour)}, Now: testNow})

	var buf bytes.Buffer
	tx := f.State().ReadTxn()
	if err := writeSnapshot(&buf, tx, 0); err != nil {
		t.Fatal(err)
	}
	tx.Abort()
	restored, _, err := readSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	dump := func(s *State) []byte {
		_, p, _ := s.Projects(nil)
		_, g, _ := s.Grants(nil)
		_, e, _ := s.Entitlements(nil)
		_, sv, _ := s.Servers(nil)
		_, tk, _ := s.Tokens(nil)
		return mustJSON(t, []any{p, g, e, sv, tk})
	}
	if a, b := dump(f.State()), dump(restored); !bytes.Equal(a, b) {
		t.Fatalf("snapshot changed the rows:\n%s\n%s", a, b)
	}
	_, e, _ := restored.EntitlementByName(nil, "e")
	if e.Commands[0].Args != nil || e.Commands[1].Args == nil {
		t.Fatalf("args nil-ness lost: %#v", e.Commands)
	}
	_, byAlt, _ := restored.ServerByAddress(nil, "W1")
	if byAlt == nil || byAlt.ID != "i-1" {
		t.Fatalf("restored indexes do not find the server by alt name: %v", byAlt)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
