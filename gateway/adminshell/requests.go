package adminshell

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// just-in-time access requests and each project's policy for them.

type requestView struct {
	ID        string     `json:"id"`
	Project   string     `json:"project"`
	User      string     `json:"user"`
	UserID    string     `json:"user_id"`
	Login     string     `json:"login"`
	Reason    string     `json:"reason"`
	Duration  string     `json:"duration"`
	State     string     `json:"state"`
	Needed    int        `json:"approvals_needed"`
	Approvers []string   `json:"approved_by"`
	DecidedBy string     `json:"decided_by,omitempty"`
	Decision  string     `json:"decision_reason,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
}

func newRequestView(r *raftstore.AccessRequest, now time.Time) requestView {
	v := requestView{ID: r.ID, Project: r.Project, User: r.Requester, UserID: r.UserID, Login: r.Login, Reason: r.Reason,
		Duration: r.Duration.String(), State: string(r.StateAt(now)), Needed: r.Needed, Approvers: []string{},
		DecidedBy: r.DecidedBy, Decision: r.DecisionReason, CreatedAt: timeJSON(r.CreatedAt), ExpiresAt: timeJSON(r.ExpiresAt), EndedAt: timeJSON(r.EndedAt)}
	for _, a := range r.Approvals {
		v.Approvers = append(v.Approvers, a.Login)
	}
	return v
}

func (v *invocation) requestsCmd() *cobra.Command {
	return group("requests", "Just-in-time access requests: list, approve, deny, revoke; each project's request policy", []string{"request"},
		v.requestsLsCmd(), v.requestsShowCmd(), v.requestsApproveCmd(), v.requestsDecideCmd("deny"), v.requestsDecideCmd("revoke"),
		v.requestsPolicyCmd())
}

// decider is the administrator deciding: never their own request.
func (v *invocation) decider() raftstore.Decider {
	return raftstore.Decider{ID: v.actor.UserID, Login: v.actor.Login, Admin: true}
}

func (v *invocation) requestsLsCmd() *cobra.Command {
	var project, user, state string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List access requests, newest first", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			f := control.AccessRequestFilter{Project: project, State: raftstore.AccessRequestState(state)}
			if user != "" {
				u, err := findUser(v.state(), user)
				if err != nil {
					return err
				}
				f.UserID = u.ID
			}
			rs, err := v.sh.control.AccessRequests(f)
			if err != nil {
				return err
			}
			now := v.sh.now()
			views, ids := []requestView{}, []string{}
			for _, r := range rs {
				views = append(views, newRequestView(r, now))
				ids = append(ids, r.ID)
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "ID", "PROJECT", "USER", "LOGIN", "FOR", "STATE", "APPROVED BY", "REASON")
				for _, r := range views {
					t.row(r.ID, r.Project, r.User, r.Login, r.Duration, r.State, strings.Join(r.Approvers, ","), r.Reason)
				}
				return t.flush()
			})
		},
	}
	ls.Flags().StringVar(&project, "project", "", "only this project's requests")
	ls.Flags().StringVar(&user, "user", "", "only this person's requests")
	ls.Flags().StringVar(&state, "state", "", "only requests in this state: pending, approved, denied, expired, revoked")
	v.completeFlag(ls, "user", userNames)
	return ls
}

func (v *invocation) requestsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use: "show ID", Short: "Show an access request", Args: exactArgs("ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := v.sh.control.AccessRequest(args[0])
			if err != nil {
				return err
			}
			rv := newRequestView(r, v.sh.now())
			return v.emit(rv, []string{r.ID}, func(out io.Writer) error {
				t := newTable(out, "FIELD", "VALUE")
				t.row("id", rv.ID)
				t.row("project", rv.Project)
				t.row("user", rv.User)
				t.row("login", rv.Login)
				t.row("for", rv.Duration)
				t.row("reason", rv.Reason)
				t.row("state", rv.State)
				t.row("approvals", fmt.Sprintf("%d of %d %s", len(rv.Approvers), rv.Needed, strings.Join(rv.Approvers, ",")))
				if rv.DecidedBy != "" {
					t.row("decided by", rv.DecidedBy+": "+rv.Decision)
				}
				if rv.ExpiresAt != nil {
					t.row("until", rv.ExpiresAt.Format(time.RFC3339))
				}
				return t.flush()
			})
		},
	}
}

func (v *invocation) requestsApproveCmd() *cobra.Command {
	return &cobra.Command{
		Use: "approve ID", Short: "Approve an access request (never your own)", Args: exactArgs("ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			r, err := v.sh.control.ApproveAccessRequest(v.ctx, v.controlActor(), v.decider(), args[0])
			if err != nil {
				return err
			}
			if r.State == raftstore.RequestApproved {
				return v.done(newRequestView(r, v.sh.now()), "approved %s: %s may reach project %s until %s", r.ID, r.Requester, r.Project, r.ExpiresAt.UTC().Format(time.RFC3339))
			}
			return v.done(newRequestView(r, v.sh.now()), "approval of %s recorded (%d of %d)", r.ID, len(r.Approvals), r.Needed)
		},
	}
}

// requestsDecideCmd is deny or revoke, each with a required reason.
func (v *invocation) requestsDecideCmd(verb string) *cobra.Command {
	var reason string
	short := "Deny a pending access request, with a reason"
	if verb == "revoke" {
		short = "End a pending or approved access request now (its sessions end), with a reason"
	}
	c := &cobra.Command{
		Use: verb + " ID --reason TEXT", Short: short, Args: exactArgs("ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("requests %s needs --reason", verb)
			}
			do := v.sh.control.DenyAccessRequest
			if verb == "revoke" {
				do = v.sh.control.RevokeAccessRequest
			}
			r, err := do(v.ctx, v.controlActor(), v.decider(), args[0], reason)
			if err != nil {
				return err
			}
			return v.done(newRequestView(r, v.sh.now()), "%s %s", map[string]string{"deny": "denied", "revoke": "revoked"}[verb], r.ID)
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why (required; the person is shown it)")
	return c
}

type policyView struct {
	Project     string   `json:"project"`
	Enabled     bool     `json:"enabled"`
	Requesters  []string `json:"requesters"`
	Approvers   []string `json:"approvers"`
	Approvals   int      `json:"approvals"`
	MaxDuration string   `json:"max_duration"`
	Windows     []string `json:"windows"`
	// Webhooks are shown as kind and host: paths and secrets stay unshown.
	Webhooks []string `json:"webhooks"`
}

func newPolicyView(p *raftstore.Project) policyView {
	pv := policyView{Project: p.Name, Requesters: []string{}, Approvers: []string{}, Windows: []string{}, Webhooks: []string{}}
	pol := p.Settings.Requests
	if pol == nil {
		return pv
	}
	pv.Enabled, pv.Approvals, pv.MaxDuration = true, pol.EffectiveApprovals(), pol.EffectiveMaxDuration().String()
	pv.Requesters, pv.Approvers = nonNil(pol.Requesters), nonNil(pol.Approvers)
	for _, w := range pol.Windows {
		pv.Windows = append(pv.Windows, w.String())
	}
	for _, h := range pol.Webhooks {
		host := h.URL
		if i := strings.Index(host, "://"); i >= 0 {
			host = host[i+3:]
		}
		host, _, _ = strings.Cut(host, "/")
		pv.Webhooks = append(pv.Webhooks, h.Kind+" "+host)
	}
	return pv
}

func (v *invocation) requestsPolicyCmd() *cobra.Command {
	var (
		requesters, approvers, windows, slack, jsonHooks []string
		approvals                                        int
		maxDur                                           time.Duration
		secret                                           string
		off, replace                                     bool
	)
	c := &cobra.Command{
		Use:   "policy PROJECT [flags]",
		Short: "Show or set who may request access to a project, who approves, for how long, when, and which webhooks are told",
		Long: "Without flags, shows the policy. With flags, changes what they name and keeps the rest (--replace: sets the whole\n" +
			"policy, unnamed settings to their defaults): --approvers is required on a new policy; --requesters \"\" lets anyone ask;\n" +
			"--approvals 1 or 2 (two different people); --max bounds a request (default 8h); --window \"mon-fri 09:00-18:00 Europe/Paris\"\n" +
			"limits when requests are taken (--window \"\" clears); --slack URL posts a Slack incoming-webhook message; --webhook URL\n" +
			"posts JSON signed with HMAC-SHA256 under --secret (each replaces the webhooks of its kind; \"\" clears them).\n" +
			"--off stops taking requests (approved ones run out).",
		Args: exactArgs("PROJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			changed := false
			cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { changed = changed || cmd.Flags().Changed(f.Name) })
			if !changed {
				p, err := findProject(v.state(), args[0])
				if err != nil {
					return err
				}
				pv := newPolicyView(p)
				return v.emit(pv, []string{p.Name}, func(out io.Writer) error { return writePolicy(out, pv) })
			}
			set := cmd.Flags().Changed
			var windowList []raftstore.RequestWindow
			for _, w := range windows {
				if w == "" {
					continue
				}
				rw, err := raftstore.ParseRequestWindow(w)
				if err != nil {
					return usagef("%v", err)
				}
				windowList = append(windowList, rw)
			}
			stored, err := v.sh.control.UpdateProject(v.ctx, v.controlActor(), args[0], func(p *raftstore.Project) error {
				if off {
					p.Settings.Requests = nil
					return nil
				}
				pol := p.Settings.Requests.Clone()
				if pol == nil || replace {
					pol = &raftstore.RequestPolicy{Approvals: approvals, MaxDuration: maxDur}
				}
				if set("requesters") || replace {
					pol.Requesters = nonEmpty(requesters)
				}
				if set("approvers") || replace {
					pol.Approvers = nonEmpty(approvers)
				}
				if set("approvals") {
					pol.Approvals = approvals
				}
				if set("max") {
					pol.MaxDuration = maxDur
				}
				if set("window") || replace {
					pol.Windows = windowList
				}
				if set("slack") || replace {
					pol.Webhooks = withWebhooks(pol.Webhooks, raftstore.WebhookSlack, slack, "")
				}
				if set("webhook") || replace {
					pol.Webhooks = withWebhooks(pol.Webhooks, raftstore.WebhookJSON, jsonHooks, secret)
				} else if set("secret") {
					for i := range pol.Webhooks {
						if pol.Webhooks[i].Kind == raftstore.WebhookJSON {
							pol.Webhooks[i].Secret = secret
						}
					}
				}
				p.Settings.Requests = pol
				return nil
			})
			if err != nil {
				return err
			}
			pv := newPolicyView(stored)
			if v.jsonOut {
				return writeJSON(v.out, pv)
			}
			if off {
				return v.done(pv, "project %s takes no access requests", stored.Name)
			}
			return writePolicy(v.out, pv)
		},
	}
	f := c.Flags()
	f.StringSliceVar(&requesters, "requesters", nil, "groups whose members may request (empty: anyone)")
	f.StringSliceVar(&approvers, "approvers", nil, "groups whose members approve (required)")
	f.IntVar(&approvals, "approvals", 1, "approvals needed, from different people: 1 or 2")
	f.DurationVar(&maxDur, "max", raftstore.DefaultRequestMaxDuration, "longest a request may last")
	f.StringArrayVar(&windows, "window", nil, "weekly window requests are taken in, e.g. \"mon-fri 09:00-18:00 Europe/Paris\" (repeatable)")
	f.StringArrayVar(&slack, "slack", nil, "Slack-compatible incoming webhook URL (repeatable)")
	f.StringArrayVar(&jsonHooks, "webhook", nil, "JSON webhook URL, signed with --secret (repeatable)")
	f.StringVar(&secret, "secret", "", "HMAC secret of the JSON webhooks (at least 16 characters)")
	f.BoolVar(&off, "off", false, "take no requests")
	f.BoolVar(&replace, "replace", false, "set the whole policy: settings not named take their defaults")
	return c
}

// nonEmpty is ss without empty strings, nil if none is left.
func nonEmpty(ss []string) []string {
	out := slices.DeleteFunc(slices.Clone(ss), func(s string) bool { return s == "" })
	if len(out) == 0 {
		return nil
	}
	return out
}

// withWebhooks is hooks with those of kind replaced by urls (secret keying
// each, for json ones).
func withWebhooks(hooks []raftstore.RequestWebhook, kind string, urls []string, secret string) []raftstore.RequestWebhook {
	out := slices.DeleteFunc(slices.Clone(hooks), func(h raftstore.RequestWebhook) bool { return h.Kind == kind })
	for _, u := range nonEmpty(urls) {
		out = append(out, raftstore.RequestWebhook{Kind: kind, URL: u, Secret: secret})
	}
	return out
}

func writePolicy(out io.Writer, pv policyView) error {
	t := newTable(out, "FIELD", "VALUE")
	if !pv.Enabled {
		t.row("requests", "off")
		return t.flush()
	}
	requesters := strings.Join(pv.Requesters, ",")
	if requesters == "" {
		requesters = "anyone"
	}
	t.row("project", pv.Project)
	t.row("requesters", requesters)
	t.row("approvers", strings.Join(pv.Approvers, ","))
	t.row("approvals", pv.Approvals)
	t.row("max", pv.MaxDuration)
	t.row("windows", strings.Join(pv.Windows, "; "))
	t.row("webhooks", strings.Join(pv.Webhooks, "; "))
	return t.flush()
}

// secretFlags are the flags whose values are secrets (a webhook's HMAC
// secret, and webhook URLs, whose paths often are): the command line the
// log and the audit log get shows them redacted.
var secretFlags = []string{"--secret", "--slack", "--webhook"}

// redactArgs is args with the values of secretFlags replaced.
func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		for _, f := range secretFlags {
			switch {
			case out[i] == f && i+1 < len(out):
				out[i+1] = "<redacted>"
				i++
			case strings.HasPrefix(out[i], f+"="):
				out[i] = f + "=<redacted>"
			}
		}
	}
	return out
}
