package adminshell

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	rotation "github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/ca"
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

// caFingerprint is an SSH key's SHA256 fingerprint (as ssh-keygen -l prints
// it), or a TLS CA's pin (as enrollment tokens carry it).
func caFingerprint(r *raftstore.CARecord) string {
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

var rotationSteps = []string{string(rotation.Begin), string(rotation.Promote), string(rotation.Retire), string(rotation.Abort), string(rotation.Rollback)}

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
	v.completeFlag(rotate, "algorithm", fixed(ca.SSHAlgED25519, ca.SSHAlgECDSAP256, ca.SSHAlgRSA3072))
	return rotate
}

// rotateCA performs one rotation step on a CA chain.
func (v *invocation) rotateCA(target string, step rotation.Step, alg string, yes bool) error {
	st := v.state()
	kind, project, what := raftstore.CAHost, "", "the cluster's target host CA"
	switch target {
	case hostTarget:
	case nodeHostTarget:
		kind, what = raftstore.CANodeHost, "the cluster's node host CA"
	default:
		p, err := findProject(st, target)
		if err != nil {
			return err
		}
		kind, project, what = raftstore.CAUser, p.Name, "the user CA of project "+p.Name
	}
	_, recs, err := st.CAsFor(nil, kind, project)
	if err != nil {
		return err
	}
	cur, err := rotation.StateOf(recs, kind, project)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if cur.Phase == rotation.PhaseNone {
		if kind == raftstore.CAUser {
			return fmt.Errorf("project %s has no user CA yet: it is made when its first server enrolls, its first certificate is minted, or an administrator fetches /v1/ca/user/%s; there is nothing to rotate", project, project)
		}
		return fmt.Errorf("the cluster has no %s CA yet: a node makes it when it starts", kind)
	}
	var newKey *raftstore.CARecord
	switch step {
	case rotation.Begin:
		if cur.Phase != rotation.PhaseStable {
			// Refuse before making a key that would be thrown away.
			break
		}
		if v.sh.caKeys == nil {
			return errNoCAKeys
		}
		id, err := v.newCAID(kind, project)
		if err != nil {
			return err
		}
		pub, sealed, keyAlg, err := v.sh.caKeys.NewCAKey(id, alg)
		if errors.Is(err, ca.ErrUnknownKeyAlgorithm) {
			return usagef("--algorithm %q: want %s, %s or %s", alg, ca.SSHAlgED25519, ca.SSHAlgECDSAP256, ca.SSHAlgRSA3072)
		}
		if err != nil {
			return fmt.Errorf("make the new key: %w", err)
		}
		newKey = &raftstore.CARecord{ID: id, Kind: kind, Project: project, Algorithm: keyAlg, PublicKey: pub, SealedKey: sealed, State: raftstore.CANext}
	case rotation.Promote:
		if cur.Phase == rotation.PhaseStaged {
			if err := v.confirm(yes, fmt.Sprintf("make key %s (%s) the signer of %s; anything that does not trust it yet will refuse its certificates",
				cur.Waiting.ID, caFingerprint(cur.Waiting), what)); err != nil {
				return err
			}
		}
	case rotation.Retire:
		if cur.Phase == rotation.PhasePromoted {
			if err := v.confirm(yes, fmt.Sprintf("stop trusting key %s (%s) of %s; certificates it signed stop working",
				cur.Previous.ID, caFingerprint(cur.Previous), what)); err != nil {
				return err
			}
		}
	}
	cmds, err := rotation.Plan(recs, kind, project, step, newKey, v.sh.now().UTC())
	if errors.Is(err, rotation.ErrStep) {
		return fmt.Errorf("cannot %s %s now: it is %s (%s); %s", step, what, cur.Phase, describePhase(cur.Phase), nextStepHint(cur.Phase, target))
	}
	if err != nil {
		return err
	}
	fields := map[string]string{"ca_kind": string(kind), "step": string(step)}
	if project != "" {
		fields["project"] = project
	}
	for i, c := range cmds {
		if _, err := v.applyOnly(c); err != nil {
			if i > 0 {
				err = errors.Join(err, v.record(EventCARotate, fields))
			}
			return err
		}
		fields["ca"] = c.Record.ID
		fields["ca_state"] = string(c.Record.State)
		fields["fingerprint"] = caFingerprint(&c.Record)
	}
	if err := v.record(EventCARotate, fields); err != nil {
		return err
	}
	_, after, err := v.sh.store.State().CAsFor(nil, kind, project)
	if err != nil {
		return err
	}
	now, err := rotation.StateOf(after, kind, project)
	if err != nil {
		return err
	}
	view := newRotateView(now, kind, project, step)
	if v.jsonOut || v.quiet {
		return v.done(view, "")
	}
	for _, line := range strings.Split(rotateMessage(view, what, target), "\n") {
		fmt.Fprintln(v.out, clean(line))
	}
	return nil
}

// newCAID names a new CA record as the nodes name the first ones, with a
// random suffix.
func (v *invocation) newCAID(kind raftstore.CAKind, project string) (string, error) {
	b := make([]byte, 4)
	if _, err := io.ReadFull(v.sh.rand, b); err != nil {
		return "", err
	}
	switch kind {
	case raftstore.CAHost:
		return "host-ca-" + hex.EncodeToString(b), nil
	case raftstore.CANodeHost:
		return "node-host-ca-" + hex.EncodeToString(b), nil
	}
	return "user-" + project + "-" + hex.EncodeToString(b), nil
}

func describePhase(p rotation.Phase) string {
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

func nextStepHint(p rotation.Phase, target string) string {
	switch p {
	case rotation.PhaseStable:
		return "start with: ca rotate " + target + " begin"
	case rotation.PhaseStaged:
		return "next is: ca rotate " + target + " promote (or abort)"
	case rotation.PhasePromoted:
		return "next is: ca rotate " + target + " retire (or rollback)"
	}
	return "see ca ls"
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
