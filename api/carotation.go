package api

// CARotationRequest is the body of a CA rotation's begin step (POST
// /v1/ca/.../rotation/begin); it may be omitted, and the other steps take
// none.
type CARotationRequest struct {
	// Algorithm is the new key's: ed25519 (the default), ecdsa-p256 or
	// rsa-3072.
	Algorithm string `json:"algorithm,omitempty"`
}

// CARotation is where a chain of SSH CA keys (a project's user CA, the
// target host CA or the node host CA) stands after a rotation step.
type CARotation struct {
	Kind    string `json:"kind"`
	Project string `json:"project,omitempty"`
	// Step is the step just made: begin, promote, retire, abort or
	// rollback.
	Step string `json:"step"`
	// Phase is where the chain is now: stable, staged or promoted.
	Phase string `json:"phase"`
	// Active signs. Waiting is trusted and waits to sign (staged);
	// Previous signed before and is still trusted (promoted).
	Active   *CAKey `json:"active,omitempty"`
	Waiting  *CAKey `json:"waiting,omitempty"`
	Previous *CAKey `json:"previous,omitempty"`
}
