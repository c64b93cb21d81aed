package control

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	rotation "github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// CA key rotations: one step at a time on one chain of SSH CA keys (a
// project's user CA, the target host CA or the node host CA), planned by
// gateway/authority from the CA records and audited here once, whether the
// admin shell (`ca rotate`) or the API (POST /v1/ca/.../rotation/{step})
// asked.

// CAKeys makes SSH CA keys for rotations. The service never holds the
// key-encryption key: the node generates the key and seals it, and the
// service sees only what goes into raft.
type CAKeys interface {
	// NewCAKey generates a CA key of algorithm alg (ca.SSHAlgED25519, the
	// default when alg is "", ca.SSHAlgECDSAP256 or ca.SSHAlgRSA3072) for
	// the CA record id, and returns its authorized_keys line, the private key
	// sealed for that id, and its SSH key type (the record's Algorithm). An
	// unknown alg is ca.ErrUnknownKeyAlgorithm.
	NewCAKey(id, alg string) (publicKey string, sealed []byte, keyAlg string, err error)
}

// Audit event types of the rotation steps, one per step. Their fields:
// ca_kind, project (user CAs), step, and the record the step changed last:
// ca (its id), ca_state (its new state) and fingerprint.
const (
	EventCARotateBegin    = "ca.rotate_begin"
	EventCARotatePromote  = "ca.rotate_promote"
	EventCARotateRetire   = "ca.rotate_retire"
	EventCARotateAbort    = "ca.rotate_abort"
	EventCARotateRollback = "ca.rotate_rollback"
)

// caRotateEvents is the event of each step.
var caRotateEvents = map[rotation.Step]string{
	rotation.Begin: EventCARotateBegin, rotation.Promote: EventCARotatePromote, rotation.Retire: EventCARotateRetire,
	rotation.Abort: EventCARotateAbort, rotation.Rollback: EventCARotateRollback,
}

// RotationSteps are the steps, in the order an operator meets them.
var RotationSteps = []rotation.Step{rotation.Begin, rotation.Promote, rotation.Retire, rotation.Abort, rotation.Rollback}

// KeyAlgorithms are the algorithms a new CA key may have (Begin).
var KeyAlgorithms = []string{ca.SSHAlgED25519, ca.SSHAlgECDSAP256, ca.SSHAlgRSA3072}

// Refusal codes of CA rotations (fault.Error.Code), beyond invalid and
// not_found.
const (
	// CodeNoCA: the chain has no CA yet (409); there is nothing to rotate.
	CodeNoCA = "no_ca"
	// CodeWrongPhase: the step does not apply in the chain's phase (409);
	// the error is a *RotationPhaseError.
	CodeWrongPhase = "wrong_phase"
	// CodeNoCAKeys: this node cannot make CA keys (503).
	CodeNoCAKeys = "no_ca_keys"
	// CodeInvalidAlgorithm: the new key's algorithm is not one of
	// KeyAlgorithms (400).
	CodeInvalidAlgorithm = "invalid_algorithm"
)

var errNoCAKeys = &fault.Error{Status: http.StatusServiceUnavailable, Code: CodeNoCAKeys,
	Msg: "this node cannot make CA keys (it holds no key-encryption key for them)"}

// CARotation asks for one rotation step.
type CARotation struct {
	// Kind is raftstore.CAUser (with Project), CAHost or CANodeHost.
	Kind    raftstore.CAKind
	Project string
	Step    rotation.Step
	// Algorithm is the new key's, for Begin only; "" is ed25519.
	Algorithm string
}

// CARotated is where a chain stands after a step.
type CARotated struct {
	Kind    raftstore.CAKind
	Project string
	Step    rotation.Step
	// What names the chain for people ("the user CA of project web").
	What  string
	State rotation.State
}

// RotationPhaseError refuses a step that does not apply in the chain's
// current phase; it unwraps to a fault.Error (409, CodeWrongPhase) whose
// message names the next steps.
type RotationPhaseError struct {
	Step  rotation.Step
	What  string
	Phase rotation.Phase
	err   *fault.Error
}

func (e *RotationPhaseError) Error() string { return e.err.Error() }
func (e *RotationPhaseError) Unwrap() error { return e.err }

// DescribePhase says what a phase means, for people.
func DescribePhase(p rotation.Phase) string {
	switch p {
	case rotation.PhaseStable:
		return "one key, signing"
	case rotation.PhaseStaged:
		return "a new key is trusted and waits to sign"
	case rotation.PhasePromoted:
		return "the new key signs, the previous one is still trusted"
	}
	return string(p)
}

// NextSteps are the steps that apply in phase p.
func NextSteps(p rotation.Phase) []rotation.Step {
	switch p {
	case rotation.PhaseStable:
		return []rotation.Step{rotation.Begin}
	case rotation.PhaseStaged:
		return []rotation.Step{rotation.Promote, rotation.Abort}
	case rotation.PhasePromoted:
		return []rotation.Step{rotation.Retire, rotation.Rollback}
	}
	return nil
}

// CAChainName names kind and project's chain for people.
func CAChainName(kind raftstore.CAKind, project string) string {
	switch kind {
	case raftstore.CAHost:
		return "the cluster's target host CA"
	case raftstore.CANodeHost:
		return "the cluster's node host CA"
	}
	return "the user CA of project " + project
}

// CAFingerprint is an SSH CA key's SHA256 fingerprint (as ssh-keygen -l
// prints it), or a TLS CA's pin (as enrollment tokens carry it); "?" when
// the record's key does not parse.
func CAFingerprint(r *raftstore.CARecord) string {
	if r.Kind == raftstore.CATLS {
		if cert, err := api.ParseCertPEM([]byte(r.PublicKey)); err == nil {
			return api.Pin(cert)
		}
		return "?"
	}
	pk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(r.PublicKey))
	if err != nil {
		return "?"
	}
	return gossh.FingerprintSHA256(pk)
}

// RotateCA performs one rotation step on a chain of CA keys and audits it
// (EventCARotate…). Begin makes the new key on this node (CAKeys); promote
// and retire are confirmed with c, when given, before anything changes. The
// write goes to the leader (a follower forwards it).
func (s *Service) RotateCA(ctx context.Context, a Actor, req CARotation, c Confirm) (*CARotated, error) {
	event, ok := caRotateEvents[req.Step]
	if !ok {
		return nil, invalid("rotation step %q: want one of %s", req.Step, strings.Join(stepNames(RotationSteps), ", "))
	}
	if req.Algorithm != "" && req.Step != rotation.Begin {
		return nil, invalid("an algorithm is for the begin step only")
	}
	st := s.state(ctx)
	switch req.Kind {
	case raftstore.CAHost, raftstore.CANodeHost:
		if req.Project != "" {
			return nil, invalid("the %s CA belongs to no project", req.Kind)
		}
	case raftstore.CAUser:
		p, err := project(st, req.Project)
		if err != nil {
			return nil, err
		}
		req.Project = p.Name
	default:
		return nil, invalid("CA kind %q does not rotate here: want %s, %s or %s", req.Kind, raftstore.CAUser, raftstore.CAHost, raftstore.CANodeHost)
	}
	kind, project, what := req.Kind, req.Project, CAChainName(req.Kind, req.Project)
	_, recs, err := st.CAsFor(nil, kind, project)
	if err != nil {
		return nil, err
	}
	cur, err := rotation.StateOf(recs, kind, project)
	if err != nil {
		return nil, conflict("%s: %v", what, err)
	}
	if cur.Phase == rotation.PhaseNone {
		if kind == raftstore.CAUser {
			return nil, &fault.Error{Status: http.StatusConflict, Code: CodeNoCA, Msg: fmt.Sprintf("project %s has no user CA yet: it is made when its first server enrolls, "+
				"its first certificate is minted, or an administrator fetches /v1/ca/user/%s; there is nothing to rotate", project, project)}
		}
		return nil, &fault.Error{Status: http.StatusConflict, Code: CodeNoCA, Msg: fmt.Sprintf("the cluster has no %s CA yet: a node makes it when it starts", kind)}
	}
	var newKey *raftstore.CARecord
	switch req.Step {
	case rotation.Begin:
		if cur.Phase != rotation.PhaseStable {
			// Plan refuses it: before a key is made that would be thrown away.
			break
		}
		if s.caKeys == nil {
			return nil, errNoCAKeys
		}
		id, err := s.newCAID(kind, project)
		if err != nil {
			return nil, err
		}
		pub, sealed, keyAlg, err := s.caKeys.NewCAKey(id, req.Algorithm)
		if errors.Is(err, ca.ErrUnknownKeyAlgorithm) {
			return nil, &fault.Error{Status: http.StatusBadRequest, Code: CodeInvalidAlgorithm,
				Msg: fmt.Sprintf("algorithm %q: want %s", req.Algorithm, strings.Join(KeyAlgorithms, ", "))}
		}
		if err != nil {
			return nil, fmt.Errorf("make the new key: %w", err)
		}
		newKey = &raftstore.CARecord{ID: id, Kind: kind, Project: project, Algorithm: keyAlg, PublicKey: pub, SealedKey: sealed, State: raftstore.CANext}
	case rotation.Promote:
		if cur.Phase != rotation.PhaseStaged {
			break
		}
		if err := confirm(c, fmt.Sprintf("make key %s (%s) the signer of %s; anything that does not trust it yet will refuse its certificates",
			cur.Waiting.ID, CAFingerprint(cur.Waiting), what)); err != nil {
			return nil, err
		}
	case rotation.Retire:
		if cur.Phase != rotation.PhasePromoted {
			break
		}
		if err := confirm(c, fmt.Sprintf("stop trusting key %s (%s) of %s; certificates it signed stop working",
			cur.Previous.ID, CAFingerprint(cur.Previous), what)); err != nil {
			return nil, err
		}
	}
	cmds, err := rotation.Plan(recs, kind, project, req.Step, newKey, s.now().UTC())
	switch {
	case errors.Is(err, rotation.ErrStep):
		return nil, phaseError(req.Step, what, cur.Phase)
	case errors.Is(err, rotation.ErrNewKey), errors.Is(err, rotation.ErrRecords):
		return nil, conflict("%s: %v", what, err)
	case err != nil:
		return nil, err
	}
	fields := map[string]string{"ca_kind": string(kind), "step": string(req.Step)}
	if project != "" {
		fields["project"] = project
	}
	for i, cmd := range cmds {
		if _, err := s.apply(ctx, cmd); err != nil {
			if status, _ := fault.StatusOf(err); status == http.StatusConflict {
				// Planned from a read that another step has overtaken (two
				// steps at once): raft refused it, nothing of it is made.
				s.logger.Info("CA rotation step refused", "ca_kind", string(kind), "project", project, "step", string(req.Step), "err", err)
				err = conflict("%s changed while this %s step was being made (another rotation step ran at the same time); "+
					"this step changed nothing: look at the CA keys again and repeat the step if it still applies", what, req.Step)
			}
			if i > 0 {
				// Part of the step is made: audit that part.
				err = errors.Join(err, s.audit(ctx, a, event, fields))
			}
			return nil, err
		}
		fields["ca"] = cmd.Record.ID
		fields["ca_state"] = string(cmd.Record.State)
		fields["fingerprint"] = CAFingerprint(&cmd.Record)
	}
	if err := s.audit(ctx, a, event, fields); err != nil {
		return nil, err
	}
	_, after, err := s.state(ctx).CAsFor(nil, kind, project)
	if err != nil {
		return nil, err
	}
	now, err := rotation.StateOf(after, kind, project)
	if err != nil {
		return nil, err
	}
	return &CARotated{Kind: kind, Project: project, Step: req.Step, What: what, State: now}, nil
}

func phaseError(step rotation.Step, what string, p rotation.Phase) *RotationPhaseError {
	return &RotationPhaseError{Step: step, What: what, Phase: p, err: &fault.Error{Status: http.StatusConflict, Code: CodeWrongPhase,
		Msg: fmt.Sprintf("cannot %s %s now: it is %s (%s); the next step is %s", step, what, p, DescribePhase(p), stepList(NextSteps(p)))}}
}

func stepList(steps []rotation.Step) string { return strings.Join(stepNames(steps), " or ") }

func stepNames(steps []rotation.Step) []string {
	s := make([]string, len(steps))
	for i, st := range steps {
		s[i] = string(st)
	}
	return s
}

// newCAID names a new CA record as the nodes name the first ones, with a
// random suffix.
func (s *Service) newCAID(kind raftstore.CAKind, project string) (string, error) {
	b := make([]byte, 4)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("CA id: %w", err)
	}
	switch kind {
	case raftstore.CAHost:
		return "host-ca-" + hex.EncodeToString(b), nil
	case raftstore.CANodeHost:
		return "node-host-ca-" + hex.EncodeToString(b), nil
	}
	return "user-" + project + "-" + hex.EncodeToString(b), nil
}
