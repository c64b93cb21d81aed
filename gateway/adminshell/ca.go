package adminshell

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	rotation "github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// ca: the SSH certificate authorities and their rotation.

// hostTarget is what `ca rotate` calls the cluster's target host CA, and
// nodeHostTarget its node host CA; any other target names a project's user
// CA.
const (
	hostTarget     = "host"
	nodeHostTarget = "node-host"
)

// Roles of a CA record in its rotation, as listings show them.
const (
	roleSigning  = "signing"
	roleWaiting  = "waiting"
	rolePrevious = "previous"
)

type caView struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Project     string     `json:"project,omitempty"`
	Algorithm   string     `json:"algorithm"`
	State       string     `json:"state"`
	Role        string     `json:"role,omitempty"`
	Fingerprint string     `json:"fingerprint"`
	PublicKey   string     `json:"public_key"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
}

// caFingerprint is the key's fingerprint as every surface shows it.
func caFingerprint(r *raftstore.CARecord) string { return control.CAFingerprint(r) }

// caRoles names each record's part in its kind and project's rotation.
func caRoles(records []*raftstore.CARecord) map[string]string {
	roles := map[string]string{}
	type key struct {
		kind    raftstore.CAKind
		project string
	}
	seen := map[key]bool{}
	for _, r := range records {
		k := key{r.Kind, r.Project}
		if seen[k] {
			continue
		}
		seen[k] = true
		st, err := rotation.StateOf(records, r.Kind, r.Project)
		if err != nil {
			continue
		}
		for _, r := range []struct {
			rec  *raftstore.CARecord
			role string
		}{{st.Active, roleSigning}, {st.Waiting, roleWaiting}, {st.Previous, rolePrevious}} {
			if r.rec != nil {
				roles[r.rec.ID] = r.role
			}
		}
	}
	return roles
}

func newCAView(r *raftstore.CARecord, role string) caView {
	return caView{ID: r.ID, Kind: string(r.Kind), Project: r.Project, Algorithm: r.Algorithm, State: string(r.State), Role: role,
		Fingerprint: caFingerprint(r), PublicKey: r.PublicKey, CreatedAt: timeJSON(r.CreatedAt)}
}

// caOrder sorts the node host CAs first, then target host CAs, then user
// CAs by project, then TLS, each oldest first.
func caOrder(a, b *raftstore.CARecord) int {
	if c := kindRank(a.Kind) - kindRank(b.Kind); c != 0 {
		return c
	}
	if c := strings.Compare(a.Project, b.Project); c != 0 {
		return c
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func kindRank(k raftstore.CAKind) int {
	switch k {
	case raftstore.CANodeHost:
		return 0
	case raftstore.CAHost:
		return 1
	case raftstore.CAUser:
		return 2
	}
	return 3
}

// rotateView is what `ca rotate` reports: where the rotation stands after the
// step.
type rotateView struct {
	Kind     string  `json:"kind"`
	Project  string  `json:"project,omitempty"`
	Step     string  `json:"step"`
	Phase    string  `json:"phase"`
	Active   *caView `json:"active,omitempty"`
	Waiting  *caView `json:"waiting,omitempty"`
	Previous *caView `json:"previous,omitempty"`
}

func newRotateView(st rotation.State, kind raftstore.CAKind, project string, step rotation.Step) rotateView {
	view := func(r *raftstore.CARecord, role string) *caView {
		if r == nil {
			return nil
		}
		v := newCAView(r, role)
		return &v
	}
	return rotateView{Kind: string(kind), Project: project, Step: string(step), Phase: string(st.Phase),
		Active: view(st.Active, roleSigning), Waiting: view(st.Waiting, roleWaiting), Previous: view(st.Previous, rolePrevious)}
}

var caKinds = []string{string(raftstore.CAUser), string(raftstore.CAHost), string(raftstore.CANodeHost), string(raftstore.CATLS)}

// rotationSteps are control.RotationSteps, as arguments.
var rotationSteps = func() []string {
	out := []string{}
	for _, st := range control.RotationSteps {
		out = append(out, string(st))
	}
	return out
}()

func (v *invocation) caCmd() *cobra.Command {
	return group("ca", "SSH certificate authorities: list and rotate keys, print known_hosts lines", nil,
		v.caLsCmd(), v.caRotateCmd(), v.knownHostsCmd())
}

func (v *invocation) caLsCmd() *cobra.Command {
	var kind, project string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List CA keys: every kind, project and state, with its part in a rotation", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			if kind != "" && !slices.Contains(caKinds, kind) {
				return usagef("--kind %q: want user, host, node-host or tls", kind)
			}
			_, recs, err := v.state().CAs(nil)
			if err != nil {
				return err
			}
			roles := caRoles(recs)
			recs = slices.DeleteFunc(slices.Clone(recs), func(r *raftstore.CARecord) bool {
				return (kind != "" && string(r.Kind) != kind) || (project != "" && r.Project != project)
			})
			slices.SortStableFunc(recs, caOrder)
			views, ids := []caView{}, []string{}
			for _, r := range recs {
				views = append(views, newCAView(r, roles[r.ID]))
				ids = append(ids, r.ID)
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "KIND", "PROJECT", "ID", "ALGORITHM", "STATE", "ROLE", "FINGERPRINT", "CREATED")
				for i, c := range views {
					t.row(c.Kind, c.Project, c.ID, c.Algorithm, c.State, c.Role, c.Fingerprint, recs[i].CreatedAt)
				}
				return t.flush()
			})
		},
	}
	ls.Flags().StringVar(&kind, "kind", "", "only CAs of this kind (user, host, node-host, tls)")
	ls.Flags().StringVar(&project, "project", "", "only the user CAs of this project")
	v.completeFlag(ls, "kind", fixed(caKinds...))
	v.completeFlag(ls, "project", projectNames)
	return ls
}

func (v *invocation) caRotateCmd() *cobra.Command {
	var alg string
	var yes bool
	rotate := &cobra.Command{
		Use:   "rotate PROJECT|host|node-host begin|promote|retire|abort|rollback",
		Short: "Rotate a project's user CA, the target host CA or the node host CA, one safe step at a time",
		Long: `Rotate a CA key without refusing a single login. host is the CA of
targets' host certificates, node-host the CA of the nodes' own front doors.

  begin     add a new key: trusted everywhere, not signing yet
            (wait until every target trusts it: agents receive the keys in their state;
            for host and node-host, clients' @cert-authority lines list
            /v1/ca/host and /v1/ca/node-host: see ca known-hosts)
  promote   the new key signs; the old one stays trusted
            (wait until the certificates it signed have expired)
  retire    stop trusting the old key
  abort     drop a key that began but never signed
  rollback  after promote: the old key signs again; the new one waits

Each node mints every certificate with the CA that is active at that moment,
and re-signs its own front-door host certificate when the node host CA
changes.
promote and retire ask for confirmation (--yes in one-shot mode).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := exactArgs("PROJECT|host|node-host", "STEP")(cmd, args); err != nil {
				return err
			}
			if !slices.Contains(rotationSteps, args[1]) {
				return usagef("step %q: want one of %s", args[1], strings.Join(rotationSteps, ", "))
			}
			if alg != "" && args[1] != string(rotation.Begin) {
				return usagef("--algorithm is for begin only")
			}
			return nil
		},
		ValidArgsFunction: v.completeArgs(func(st *raftstore.State) []string {
			return append([]string{hostTarget, nodeHostTarget}, projectNames(st)...)
		}, fixed(rotationSteps...)),
		RunE: func(_ *cobra.Command, args []string) error {
			return v.rotateCA(args[0], rotation.Step(args[1]), alg, yes)
		},
	}
	rotate.Flags().StringVar(&alg, "algorithm", "", "key algorithm of the new key (begin): ed25519 (default), ecdsa-p256, rsa-3072")
	rotate.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation (promote, retire)")
	v.completeFlag(rotate, "algorithm", fixed(control.KeyAlgorithms...))
	return rotate
}

// rotateCA performs one rotation step on a CA chain (control.RotateCA,
// which validates and audits it) and says what to do next.
func (v *invocation) rotateCA(target string, step rotation.Step, alg string, yes bool) error {
	req := control.CARotation{Kind: raftstore.CAHost, Step: step, Algorithm: alg}
	switch target {
	case hostTarget:
	case nodeHostTarget:
		req.Kind = raftstore.CANodeHost
	default:
		req.Kind, req.Project = raftstore.CAUser, target
	}
	res, err := v.sh.control.RotateCA(v.ctx, v.controlActor(), req, v.confirmer(yes))
	var phase *control.RotationPhaseError
	var refused *fault.Error
	switch {
	case errors.As(err, &phase):
		return fmt.Errorf("cannot %s %s now: it is %s (%s); %s", step, phase.What, phase.Phase, control.DescribePhase(phase.Phase), nextStepHint(phase.Phase, target))
	case errors.As(err, &refused) && refused.Code == control.CodeInvalidAlgorithm:
		return usagef("--algorithm %q: want %s", alg, strings.Join(control.KeyAlgorithms, ", "))
	case err != nil:
		return err
	}
	view := newRotateView(res.State, res.Kind, res.Project, res.Step)
	if v.jsonOut || v.quiet {
		return v.done(view, "")
	}
	for _, line := range strings.Split(rotateMessage(view, res.What, target), "\n") {
		fmt.Fprintln(v.out, clean(line))
	}
	return nil
}

func nextStepHint(p rotation.Phase, target string) string {
	steps := control.NextSteps(p)
	if len(steps) == 0 {
		return "see ca ls"
	}
	hint := "next is: ca rotate " + target + " " + string(steps[0])
	if p == rotation.PhaseStable {
		hint = "start with: ca rotate " + target + " " + string(steps[0])
	}
	for _, alt := range steps[1:] {
		hint += " (or " + string(alt) + ")"
	}
	return hint
}

// rotateMessage says what the step did and what to do next.
func rotateMessage(r rotateView, what, target string) string {
	key := func(c *caView) string {
		if c == nil {
			return "-"
		}
		return c.ID + " (" + c.Fingerprint + ")"
	}
	var b strings.Builder
	switch rotation.Step(r.Step) {
	case rotation.Begin:
		fmt.Fprintf(&b, "%s: new key %s is trusted and waits to sign; %s still signs.\n", what, key(r.Waiting), key(r.Active))
		switch r.Kind {
		case string(raftstore.CAHost):
			b.WriteString("Next: add it to every client's @cert-authority line for targets (GET /v1/ca/host lists both keys; ca known-hosts prints the lines), then: ca rotate host promote")
		case string(raftstore.CANodeHost):
			b.WriteString("Next: add it to every client's @cert-authority line for the bastion (GET /v1/ca/node-host lists both keys; ca known-hosts prints the lines), then: ca rotate node-host promote")
		default:
			fmt.Fprintf(&b, "Next: wait until every target of %s trusts it (agents receive it in their state; servers registered by hand need GET /v1/ca/user/%s again), then: ca rotate %s promote", r.Project, r.Project, target)
		}
	case rotation.Promote:
		fmt.Fprintf(&b, "%s: %s signs now; %s is still trusted.\n", what, key(r.Active), key(r.Previous))
		switch r.Kind {
		case string(raftstore.CANodeHost):
			b.WriteString("Every node re-signs its front-door host certificate with the new key.\n")
		case string(raftstore.CAHost):
			b.WriteString("The jump certifies its per-target servers, and enrollment new targets' host keys, with the new key.\n")
		}
		fmt.Fprintf(&b, "Next: once the certificates the previous key signed have expired: ca rotate %s retire", target)
	case rotation.Retire:
		fmt.Fprintf(&b, "%s: the previous key is retired; only %s is trusted.", what, key(r.Active))
	case rotation.Abort:
		fmt.Fprintf(&b, "%s: the waiting key is retired before it signed anything; %s still signs.", what, key(r.Active))
	case rotation.Rollback:
		fmt.Fprintf(&b, "%s: %s signs again; %s waits as next (ca rotate %s abort drops it, promote uses it again).", what, key(r.Active), key(r.Waiting), target)
	}
	return b.String()
}
