package api

import "time"

// AccessRequest is a just-in-time access request as the API shows it
// (docs/access-requests.md).
type AccessRequest struct {
	ID      string `json:"id"`
	Project string `json:"project"`
	// User is the requester's Rampart login when they asked; UserID their
	// user id.
	User   string `json:"user"`
	UserID string `json:"user_id"`
	// Login is the unix login the grant allows.
	Login  string `json:"login"`
	Reason string `json:"reason"`
	// Duration is the window asked for ("2h0m0s").
	Duration string `json:"duration"`
	// State is the state now: pending, approved, denied, expired or
	// revoked (an approved request whose window has passed is expired).
	State           string                  `json:"state"`
	ApprovalsNeeded int                     `json:"approvals_needed"`
	Approvals       []AccessRequestApproval `json:"approvals"`
	// DecidedBy and DecisionReason are the denier's or revoker's.
	DecidedBy      string     `json:"decided_by,omitempty"`
	DecisionReason string     `json:"decision_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	PendingUntil   time.Time  `json:"pending_until"`
	ApprovedAt     *time.Time `json:"approved_at,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	EndedAt        *time.Time `json:"ended_at,omitempty"`
}

// AccessRequestApproval is one approver's yes: By is their user id (or
// "api:" and the name of an ownerless token), Login how they are shown.
type AccessRequestApproval struct {
	By    string    `json:"by"`
	Login string    `json:"login"`
	At    time.Time `json:"at"`
}

// AccessRequestDecision is the body of a denial or revocation.
type AccessRequestDecision struct {
	Reason string `json:"reason"`
}
