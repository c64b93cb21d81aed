package adminshell

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rampart-ssh/rampart/raftstore"
)

// projects and their grants.

type settingsView struct {
	CertTTL            string   `json:"cert_ttl"`
	Recording          bool     `json:"recording"`
	RecordInput        bool     `json:"record_input"`
	RecordingFailOpen  bool     `json:"recording_fail_open"`
	AllowLocalForward  bool     `json:"allow_local_forward"`
	AllowRemoteForward bool     `json:"allow_remote_forward"`
	AllowAgentForward  bool     `json:"allow_agent_forward"`
	RequireHostCert    bool     `json:"require_host_certificate"`
	SharedLogins       []string `json:"shared_logins"`
	IdleTimeout        string   `json:"idle_timeout,omitempty"`
	MaxSession         string   `json:"max_session,omitempty"`
	ServerNames        []string `json:"server_names"`
	AllowPersonalKeys  bool     `json:"allow_personal_keys"`
}

type projectView struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	Settings    settingsView `json:"settings"`
	Servers     int          `json:"servers"`
	CreatedAt   *time.Time   `json:"created_at,omitempty"`
	UpdatedAt   *time.Time   `json:"updated_at,omitempty"`
}

type projectDetail struct {
	projectView
	Grants []grantView `json:"grants"`
	Tokens int         `json:"tokens"`
}

type grantView struct {
	Project string   `json:"project"`
	Group   string   `json:"group"`
	Role    string   `json:"role"`
	Sudo    []string `json:"sudo"`
}

func newGrantView(g *raftstore.Grant) grantView {
	return grantView{Project: g.Project, Group: g.Group, Role: string(g.Role), Sudo: nonNil(g.Sudo)}
}

func newProjectView(st *raftstore.State, p *raftstore.Project) (projectView, error) {
	s := p.Settings
	pv := projectView{Name: p.Name, Description: p.Description, CreatedAt: timeJSON(p.CreatedAt), UpdatedAt: timeJSON(p.UpdatedAt),
		Settings: settingsView{CertTTL: s.EffectiveCertTTL().String(), Recording: s.Recording, RecordInput: s.RecordInput,
			RecordingFailOpen: s.RecordingFailOpen, AllowLocalForward: s.AllowLocalForward, AllowRemoteForward: s.AllowRemoteForward,
			AllowAgentForward: s.AllowAgentForward, RequireHostCert: s.RequireHostCertificate, SharedLogins: nonNil(s.SharedLogins),
			IdleTimeout: durationJSON(s.IdleTimeout), MaxSession: durationJSON(s.MaxSessionDuration), ServerNames: nonNil(s.ServerNames), AllowPersonalKeys: s.AllowPersonalKeys}}
	if st == nil {
		return pv, nil
	}
	_, servers, err := st.ServersByProject(nil, p.Name)
	pv.Servers = len(servers)
	return pv, err
}

// settingsFlags are the project policy flags of create and set; only the
// flags given change anything.
type settingsFlags struct {
	description  string
	certTTL      time.Duration
	recording    string
	recordInput  bool
	failOpen     bool
	localFwd     bool
	remoteFwd    bool
	agentFwd     bool
	requireCert  bool
	sharedLogins []string
	idle         time.Duration
	maxSession   time.Duration
	serverNames  []string
	personalKeys bool
}

func (f *settingsFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.description, "description", "", "what the project is for")
	fs.DurationVar(&f.certTTL, "cert-ttl", 0, fmt.Sprintf("per-hop certificate TTL, %s to %s (0: the default, %s)", raftstore.MinCertTTL, raftstore.MaxCertTTL, raftstore.DefaultCertTTL))
	fs.StringVar(&f.recording, "recording", "", "record sessions: on or off (a new project: on)")
	fs.BoolVar(&f.recordInput, "record-input", false, "also record keystrokes (--record-input=false to stop)")
	fs.BoolVar(&f.failOpen, "recording-fail-open", false, "keep a session going when its recording cannot be written")
	fs.BoolVar(&f.localFwd, "allow-local-forward", false, "allow ssh -L")
	fs.BoolVar(&f.remoteFwd, "allow-remote-forward", false, "allow ssh -R")
	fs.BoolVar(&f.agentFwd, "allow-agent-forward", false, "allow ssh -A")
	fs.BoolVar(&f.requireCert, "require-host-certificate", false, "refuse targets that present no host certificate (no fallback to the key pinned at enrollment)")
	fs.StringSliceVar(&f.sharedLogins, "shared-logins", nil, `shared unix accounts the project grants, e.g. deploy,www ("" for none)`)
	fs.DurationVar(&f.idle, "idle-timeout", 0, "end sessions idle this long (0: never)")
	fs.DurationVar(&f.maxSession, "max-session", 0, "end sessions after this long (0: never)")
	fs.StringSliceVar(&f.serverNames, "server-names", nil, `name rules for enrolling targets: glob patterns, e.g. '*.web.example.com,web-*' ("" for any name that is not a node's)`)
	fs.BoolVar(&f.personalKeys, "allow-personal-keys", false, "weaker: servers also accept keys from the accounts' own authorized_keys, which skip the bastion")
}

func (v *invocation) completeSettings(cmd *cobra.Command) {
	v.completeFlag(cmd, "recording", fixed("on", "off"))
	for _, name := range []string{"record-input", "recording-fail-open", "allow-local-forward", "allow-remote-forward", "allow-agent-forward", "require-host-certificate", "allow-personal-keys"} {
		v.completeFlag(cmd, name, fixed("true", "false"))
	}
}

var settingsFlagNames = []string{"description", "cert-ttl", "recording", "record-input", "recording-fail-open",
	"allow-local-forward", "allow-remote-forward", "allow-agent-forward", "require-host-certificate", "shared-logins", "idle-timeout", "max-session", "server-names", "allow-personal-keys"}

// changed reports whether any setting was given.
func (f *settingsFlags) changed(fs *pflag.FlagSet) bool {
	for _, name := range settingsFlagNames {
		if fs.Changed(name) {
			return true
		}
	}
	return false
}

// applyTo sets the changed flags on p.
func (f *settingsFlags) applyTo(fs *pflag.FlagSet, p *raftstore.Project) error {
	s := &p.Settings
	set := func(name string, apply func()) {
		if fs.Changed(name) {
			apply()
		}
	}
	set("description", func() { p.Description = f.description })
	set("cert-ttl", func() { s.CertTTL = f.certTTL })
	if fs.Changed("recording") {
		switch f.recording {
		case "on":
			s.Recording = true
		case "off":
			s.Recording = false
		default:
			return usagef("--recording takes on or off, not %q", f.recording)
		}
	}
	set("record-input", func() { s.RecordInput = f.recordInput })
	set("recording-fail-open", func() { s.RecordingFailOpen = f.failOpen })
	set("allow-local-forward", func() { s.AllowLocalForward = f.localFwd })
	set("allow-remote-forward", func() { s.AllowRemoteForward = f.remoteFwd })
	set("allow-agent-forward", func() { s.AllowAgentForward = f.agentFwd })
	set("require-host-certificate", func() { s.RequireHostCertificate = f.requireCert })
	set("shared-logins", func() { s.SharedLogins = f.sharedLogins })
	set("idle-timeout", func() { s.IdleTimeout = f.idle })
	set("max-session", func() { s.MaxSessionDuration = f.maxSession })
	set("server-names", func() {
		s.ServerNames = slices.DeleteFunc(slices.Clone(f.serverNames), func(p string) bool { return p == "" })
	})
	set("allow-personal-keys", func() { s.AllowPersonalKeys = f.personalKeys })
	return nil
}

func (v *invocation) projectsCmd() *cobra.Command {
	return group("projects", "Projects: servers under one user CA and one set of grants", []string{"project"},
		v.projectsLsCmd(), v.projectsShowCmd(), v.projectsCreateCmd(), v.projectsSetCmd(), v.projectsDeleteCmd(), v.grantCmd(), v.revokeGrantCmd())
}

func (v *invocation) projectsLsCmd() *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List projects", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st := v.state()
			_, projects, err := st.Projects(nil)
			if err != nil {
				return err
			}
			views, ids := []projectView{}, []string{}
			for _, p := range projects {
				pv, err := newProjectView(st, p)
				if err != nil {
					return err
				}
				views = append(views, pv)
				ids = append(ids, p.Name)
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "NAME", "SERVERS", "CERT TTL", "RECORDING", "FORWARDING", "DESCRIPTION")
				for i, p := range views {
					t.row(p.Name, p.Servers, projects[i].Settings.EffectiveCertTTL(), onOff(p.Settings.Recording), forwarding(p.Settings), p.Description)
				}
				return t.flush()
			})
		},
	}
}

func (v *invocation) projectsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use: "show PROJECT", Short: "Show a project's policy, grants and servers", Args: exactArgs("PROJECT"),
		ValidArgsFunction: v.completeArgs(projectNames),
		RunE: func(_ *cobra.Command, args []string) error {
			st := v.state()
			p, err := findProject(st, args[0])
			if err != nil {
				return err
			}
			pv, err := newProjectView(st, p)
			if err != nil {
				return err
			}
			d := projectDetail{projectView: pv, Grants: []grantView{}}
			_, grants, err := st.GrantsByProject(nil, p.Name)
			if err != nil {
				return err
			}
			for _, g := range grants {
				d.Grants = append(d.Grants, newGrantView(g))
			}
			_, tokens, err := st.TokensByProject(nil, p.Name)
			if err != nil {
				return err
			}
			d.Tokens = len(tokens)
			return v.emit(d, []string{p.Name}, func(out io.Writer) error {
				s := p.Settings
				w := newDetails(out)
				w.add("name", p.Name)
				w.add("description", p.Description)
				w.add("servers", d.Servers)
				w.add("enrollment tokens", d.Tokens)
				w.add("cert ttl", s.EffectiveCertTTL())
				w.add("recording", fmt.Sprintf("%s (input %s, fail %s)", onOff(s.Recording), onOff(s.RecordInput), map[bool]string{true: "open", false: "closed"}[s.RecordingFailOpen]))
				w.add("forwarding", forwarding(d.Settings))
				w.add("host certificate", map[bool]string{true: "required", false: "not required (the key pinned at enrollment is accepted)"}[s.RequireHostCertificate])
				w.add("shared logins", s.SharedLogins)
				w.add("idle timeout", s.IdleTimeout)
				w.add("max session", s.MaxSessionDuration)
				w.add("server names", s.ServerNames)
				w.add("personal keys", map[bool]string{true: "allowed (weaker: they skip the bastion)", false: "refused (certificates only)"}[s.AllowPersonalKeys])
				w.add("created", p.CreatedAt)
				w.add("updated", p.UpdatedAt)
				if err := w.flush(); err != nil {
					return err
				}
				return writeGrants(out, d.Grants)
			})
		},
	}
}

func (v *invocation) projectsCreateCmd() *cobra.Command {
	var cf settingsFlags
	create := &cobra.Command{
		Use: "create PROJECT", Short: "Create a project", Args: exactArgs("PROJECT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := raftstore.Project{Name: args[0], Settings: raftstore.DefaultProjectSettings()}
			if err := cf.applyTo(cmd.Flags(), &p); err != nil {
				return err
			}
			stored, err := v.sh.control.CreateProject(v.ctx, v.controlActor(), p)
			if err != nil {
				return err
			}
			return v.doneProject(stored, "project %s created")
		},
	}
	cf.bind(create.Flags())
	v.completeSettings(create)
	return create
}

func (v *invocation) projectsSetCmd() *cobra.Command {
	var sf settingsFlags
	set := &cobra.Command{
		Use: "set PROJECT", Short: "Change a project's description or policy (only the flags given)", Args: exactArgs("PROJECT"),
		ValidArgsFunction: v.completeArgs(projectNames),
		RunE: func(cmd *cobra.Command, args []string) error {
			stored, err := v.sh.control.UpdateProject(v.ctx, v.controlActor(), args[0], func(p *raftstore.Project) error {
				if !sf.changed(cmd.Flags()) {
					return usagef("projects set: give at least one setting to change (see projects set --help)")
				}
				return sf.applyTo(cmd.Flags(), p)
			})
			if err != nil {
				return err
			}
			return v.doneProject(stored, "project %s updated")
		},
	}
	sf.bind(set.Flags())
	v.completeSettings(set)
	return set
}

func (v *invocation) projectsDeleteCmd() *cobra.Command {
	var yes bool
	del := &cobra.Command{
		Use: "delete PROJECT", Aliases: []string{"rm"}, Short: "Delete a project with its grants and enrollment tokens (it must have no servers)",
		Args: exactArgs("PROJECT"), ValidArgsFunction: v.completeArgs(projectNames),
		RunE: func(_ *cobra.Command, args []string) error {
			p, err := findProject(v.state(), args[0])
			if err != nil {
				return err
			}
			if err := v.sh.control.DeleteProject(v.ctx, v.controlActor(), p.Name, v.confirmer(yes)); err != nil {
				return err
			}
			return v.done(nil, "project %s deleted", p.Name)
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return del
}

// doneProject reports a project created or changed.
func (v *invocation) doneProject(stored *raftstore.Project, msg string) error {
	pv, err := newProjectView(v.localState(), stored)
	if err != nil {
		return err
	}
	return v.done(pv, msg, stored.Name)
}

func (v *invocation) grantCmd() *cobra.Command {
	var role string
	var sudo []string
	c := &cobra.Command{
		Use:   "grant PROJECT GROUP",
		Short: "Give a group access to a project (replacing its earlier grant there)",
		Long: "Give an IdP group access to a project's servers with a role (user, or admin to also manage\n" +
			"the project) and the sudo entitlements its members get there. The group need not exist yet.",
		Args: exactArgs("PROJECT", "GROUP"), ValidArgsFunction: v.completeArgs(projectNames, groupNames),
		RunE: func(_ *cobra.Command, args []string) error {
			if role != string(raftstore.GrantUser) && role != string(raftstore.GrantAdmin) {
				return usagef("--role takes user or admin, not %q", role)
			}
			g := raftstore.Grant{Project: args[0], Group: args[1], Role: raftstore.GrantRole(role), Sudo: sudo}
			stored, err := v.sh.control.Grant(v.ctx, v.controlActor(), g)
			if err != nil {
				return err
			}
			return v.done(newGrantView(stored), "group %s granted %s in project %s (sudo: %s)", g.Group, role, g.Project, cell(stored.Sudo))
		},
	}
	c.Flags().StringVar(&role, "role", string(raftstore.GrantUser), "user or admin")
	c.Flags().StringSliceVar(&sudo, "sudo", nil, "sudo entitlements the group's members get (repeatable)")
	v.completeFlag(c, "role", fixed("user", "admin"))
	v.completeFlag(c, "sudo", entitlementNames)
	return c
}

func (v *invocation) revokeGrantCmd() *cobra.Command {
	return &cobra.Command{
		Use: "revoke PROJECT GROUP", Short: "Take a group's access to a project away",
		Args: exactArgs("PROJECT", "GROUP"), ValidArgsFunction: v.completeArgs(projectNames, groupNames),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := v.sh.control.RevokeGrant(v.ctx, v.controlActor(), args[0], args[1]); err != nil {
				return err
			}
			return v.done(nil, "group %s no longer has access to project %s", args[1], args[0])
		},
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// forwarding summarises the forwarding policy: "-L,-A" or "none".
func forwarding(s settingsView) string {
	var out []string
	for _, f := range []struct {
		on   bool
		flag string
	}{{s.AllowLocalForward, "-L"}, {s.AllowRemoteForward, "-R"}, {s.AllowAgentForward, "-A"}} {
		if f.on {
			out = append(out, f.flag)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return fmtList(out)
}

func fmtList(ss []string) string { return strings.Join(ss, ",") }
