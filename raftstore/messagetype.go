package raftstore

// MessageType names a command in the raft log. The list is append-only: a
// number, once released, keeps its meaning forever, and a retired command
// keeps its number reserved. A frame whose type byte has IgnoreUnknownFlag
// set may be skipped by an older node that does not know the command; any
// other unknown type stops the node rather than let it diverge from the
// cluster.
type MessageType uint8

// IgnoreUnknownFlag marks a command that older nodes may safely skip. It is
// not part of a command's number: Encode sets it in the frame of every
// ignorable command, and Decode clears it before it looks the number up, as
// Consul does.
const IgnoreUnknownFlag MessageType = 128

// ignorable lists the commands a node that does not know them may skip: the
// ones whose effect no security decision and no chained state (the audit
// log) depends on, so that a replica without it answers every question the
// same, and that the next write of the same kind restores once the node is
// upgraded. Every other command changes what someone may do, or feeds the
// audit chain, and an old node must stop rather than skip it.
//
//   - ServerSeen moves a server's LastSeen (shown in servers ls; nothing
//     decides on it), and the next heartbeat moves it again.
//   - TokenPrune deletes tokens that have expired, which every node refuses
//     already; the next sweep prunes what a skipping node kept.
//   - AgentAppliedSet records how far an agent got; only the jump's wait for
//     a new account reads it (a node that does not know the command has no
//     such wait), and the agent's next report overwrites it.
//
// raftstore's TestIgnoreUnknownRule lists every type with its verdict: a
// new command must be added there, skippable or not.
var ignorable = map[MessageType]bool{
	ServerSeenType:        true,
	TokenPruneType:        true,
	AgentAppliedSetType:   true,
	ServiceTokenTouchType: true,
	// AuditExportCursorSet and AuditSinkStateSet steer only the audit
	// exporter, which a node that does not know them does not run; the
	// exporter's next write repairs the row once it is upgraded.
	AuditExportCursorSetType: true,
	AuditSinkStateSetType:    true,
}

// Ignorable reports whether an older node may skip command type t.
func Ignorable(t MessageType) bool { return ignorable[t&^IgnoreUnknownFlag] }

const (
	ClusterInitType        MessageType = 1
	NodeUpsertType         MessageType = 2
	NodeDeleteType         MessageType = 3
	UserUpsertType         MessageType = 4
	UserSetStatusType      MessageType = 5
	GroupUpsertType        MessageType = 6
	GroupDeleteType        MessageType = 7
	ProjectUpsertType      MessageType = 8
	ProjectDeleteType      MessageType = 9
	GrantUpsertType        MessageType = 10
	GrantDeleteType        MessageType = 11
	ServerUpsertType       MessageType = 12
	ServerDeleteType       MessageType = 13
	ServerSeenType         MessageType = 14
	TokenCreateType        MessageType = 15
	TokenUseType           MessageType = 16
	TokenDeleteType        MessageType = 17
	EntitlementUpsertType  MessageType = 18
	EntitlementDeleteType  MessageType = 19
	BindingUpsertType      MessageType = 20
	BindingDeleteType      MessageType = 21
	SessionOpenType        MessageType = 22
	SessionCloseType       MessageType = 23
	AuditAppendType        MessageType = 24
	CAUpsertType           MessageType = 25
	CADeleteType           MessageType = 26
	ServiceTokenCreateType MessageType = 27
	ServiceTokenDeleteType MessageType = 28
	AgentEventsAppendType  MessageType = 29
	ServerAgentKeyType     MessageType = 30
	TokenPruneType         MessageType = 31
	AgentAppliedSetType    MessageType = 32
	// Re-validation with the identity provider (idpsessions.go).
	IdPSessionPutType     MessageType = 33
	IdPSessionFailureType MessageType = 34
	IdPSessionDeleteType  MessageType = 35
	// SCIM (scim.go).
	UserSCIMPutType  MessageType = 36
	SCIMGroupPutType MessageType = 37
	// A service token's last use (servicetokens.go).
	ServiceTokenTouchType MessageType = 38
	// An open keyless connection holding its person's IdP session (idpsessions.go).
	IdPSessionHoldType MessageType = 39
	// Audit log retention (auditprune.go).
	AuditPruneType        MessageType = 40
	AuditRetentionSetType MessageType = 41
	// An operator removes a stale export cursor (auditexportdelete.go).
	AuditExportCursorDeleteType MessageType = 42
	// The audit exporter's cursor and sink state (auditexport.go); 47 is
	// kept for it too.
	AuditExportCursorSetType MessageType = 45
	AuditSinkStateSetType    MessageType = 46
	// Just-in-time access requests (accessrequests.go).
	AccessRequestCreateType  MessageType = 53
	AccessRequestApproveType MessageType = 54
	AccessRequestDenyType    MessageType = 55
	AccessRequestRevokeType  MessageType = 56
	AccessRequestExpireType  MessageType = 57
	// Which nodes hold a copy of each recording (recordingholders.go).
	RecordingHolderPutType    MessageType = 48
	RecordingHolderDeleteType MessageType = 49
	// The console's share links (consoleshares.go).
	ConsoleShareCreateType MessageType = 65
	ConsoleShareRevokeType MessageType = 66
)
