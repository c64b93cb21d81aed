package raftstore

import (
	"strings"
	"testing"
	"time"
)

// skippable is the verdict on every command type: may a node that does not
// know it skip it (IgnoreUnknownFlag)? A command may be skipped only when no
// security decision and no chained state depends on it, and the next write
// of its kind repairs a replica that skipped it (see ignorable). A new
// command type fails TestIgnoreUnknownRule until it is listed here.
var skippable = map[MessageType]bool{
	ClusterInitType:          false, // the cluster's identity and CA
	NodeUpsertType:           false, // which node certificates raft admits
	NodeDeleteType:           false, // a removed node's certificate must open nothing
	UserUpsertType:           false, // users, their uids and groups
	UserSetStatusType:        false, // a disabled user must be refused everywhere
	GroupUpsertType:          false,
	GroupDeleteType:          false,
	ProjectUpsertType:        false, // project settings decide sign-in and recording
	ProjectDeleteType:        false,
	GrantUpsertType:          false, // who may reach what
	GrantDeleteType:          false,
	ServerUpsertType:         false, // where a server is, its pinned host keys
	ServerDeleteType:         false,
	ServerSeenType:           true, // LastSeen only; the next heartbeat repairs it
	TokenCreateType:          false,
	TokenUseType:             false, // a single-use token must not be used twice
	TokenDeleteType:          false, // a revoked token must be refused
	EntitlementUpsertType:    false, // sudo rules
	EntitlementDeleteType:    false,
	BindingUpsertType:        false, // a bound key signs in
	BindingDeleteType:        false, // a revoked binding must be refused
	SessionOpenType:          false, // live sessions are revoked through these
	SessionCloseType:         false,
	AuditAppendType:          false, // the audit hash chain
	CAUpsertType:             false, // CA keys and their rotation
	CADeleteType:             false,
	ServiceTokenCreateType:   false,
	ServiceTokenDeleteType:   false, // a revoked API token must be refused
	AgentEventsAppendType:    false, // appends to the audit hash chain
	ServerAgentKeyType:       false, // a replaced agent key must be refused
	TokenPruneType:           true,  // deletes only expired tokens, refused anyway
	AgentAppliedSetType:      true,  // read only by the jump's wait; overwritten by the next report
	IdPSessionPutType:        false, // a sealed refresh token and when the IdP last vouched (bounds bound keys)
	IdPSessionFailureType:    false,
	IdPSessionDeleteType:     false, // a dropped refresh token must stay dropped
	UserSCIMPutType:          false, // SCIM's view of a person: ids, groups, deactivation
	SCIMGroupPutType:         false, // SCIM group membership drives grants
	ServiceTokenTouchType:    true,  // LastUsedAt only; the token's next use repairs it
	IdPSessionHoldType:       false, // an open keyless connection keeps its person re-validated
	AuditExportCursorSetType: true,  // steers only the exporter; its next write repairs it (may re-send events, never skips one)
	AuditSinkStateSetType:    true,  // steers only the exporter's once-per-outage audit
	// Writes an audit event (chained state), and a skipped delete would
	// restart a re-added sink past events it never took.
	AuditExportCursorDeleteType: false,
	AccessRequestCreateType:     false, // a request approvers act on
	AccessRequestApproveType:    false, // an approved request grants access
	AccessRequestDenyType:       false,
	AccessRequestRevokeType:     false, // a revoked grant must be refused
	AccessRequestExpireType:     false, // audited and read by agents; nodes refuse past the window anyway, but the agent view follows it
	// Where a recording's copies are: a node that skipped one would not
	// find a copy, and no later write repeats it.
	RecordingHolderPutType:    false,
	RecordingHolderDeleteType: false,
	ConsoleShareCreateType:    false, // a share link opens a recording only with its record
	ConsoleShareRevokeType:    false, // a revoked link must open nothing, on every node
	AuditPruneType:            false, // removes events and moves the checkpoint the chain continues from
	AuditRetentionSetType:     false, // appends to the audit hash chain
}

// TestIgnoreUnknownRule checks the rule for every registered command: each
// has a verdict, Ignorable agrees with it, the frames Encode writes carry the
// flag exactly for the skippable ones, and Decode reads a command whatever
// its frame's flag says.
func TestIgnoreUnknownRule(t *testing.T) {
	for _, mt := range KnownCommandTypes() {
		verdict, listed := skippable[mt]
		if !listed {
			t.Errorf("command type %d has no verdict in skippable: decide whether an older node may skip it", mt)
			continue
		}
		if got := Ignorable(mt); got != verdict {
			t.Errorf("Ignorable(%d) = %v, want %v", mt, got, verdict)
		}
	}
	for mt := range skippable {
		if _, ok := commandTypes[mt]; !ok {
			t.Errorf("skippable lists type %d, which no command registers", mt)
		}
	}
	now := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	samples := []Command{
		&ServerSeen{ID: "web-1", Now: now},
		&TokenPrune{Before: now},
		&AgentAppliedSet{ServerID: "web-1", Index: 7},
		&ServiceTokenTouch{ID: "st-1", At: now},
		&GroupDelete{Name: "ops"},
		&NodeDelete{ID: "n2"},
	}
	for _, cmd := range samples {
		buf := mustEncode(t, cmd)
		flagged := MessageType(buf[0])&IgnoreUnknownFlag != 0
		if flagged != skippable[cmd.Type()] {
			t.Errorf("%T: frame type byte %#x carries the ignore flag = %v, want %v", cmd, buf[0], flagged, skippable[cmd.Type()])
		}
		if MessageType(buf[0])&^IgnoreUnknownFlag != cmd.Type() {
			t.Errorf("%T: frame type byte %#x, want the number %d", cmd, buf[0], cmd.Type())
		}
		got, err := Decode(buf)
		if err != nil || got.Type() != cmd.Type() {
			t.Errorf("%T: Decode(Encode) = %v, %v", cmd, got, err)
		}
		// A node that knows the command applies it whatever the flag says
		// (a newer writer may have marked it skippable).
		other := append([]byte{buf[0] ^ byte(IgnoreUnknownFlag)}, buf[1:]...)
		if got, err := Decode(other); err != nil || got.Type() != cmd.Type() {
			t.Errorf("%T with the flag flipped: Decode = %v, %v", cmd, got, err)
		}
	}
}

// TestFSMAppliesFlaggedKnownCommand: a node that knows an ignorable command
// applies it (the flag is for nodes that do not), so every replica holds the
// same state.
func TestFSMAppliesFlaggedKnownCommand(t *testing.T) {
	f, err := NewFSM(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	if r := f.ApplyCommand(1, mustEncode(t, &TokenCreate{Token: Token{Hash: strings.Repeat("a", 64), Kind: "join", ExpiresAt: now, UsesLeft: 1, CreatedBy: "t"}, Now: now.Add(-time.Hour)})); r.Err != nil {
		t.Fatal(r.Err)
	}
	prune := mustEncode(t, &TokenPrune{Before: now})
	if MessageType(prune[0])&IgnoreUnknownFlag == 0 {
		t.Fatal("TokenPrune frame lacks the ignore flag")
	}
	r := f.ApplyCommand(2, prune)
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if n, ok := r.Value.(int); !ok || n != 1 {
		t.Fatalf("TokenPrune deleted %v tokens, want 1 (applied, not skipped)", r.Value)
	}
}
