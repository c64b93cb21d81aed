package raftstore

// MessageType names a command in the raft log. The list is append-only: a
// number, once released, keeps its meaning forever, and a retired command
// keeps its number reserved. A type with IgnoreUnknownFlag set may be skipped
// by an older node that does not know it; any other unknown type stops the
// node rather than let it diverge from the cluster.
type MessageType uint8

// IgnoreUnknownFlag marks a command that older nodes may safely skip.
const IgnoreUnknownFlag MessageType = 128

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
)
