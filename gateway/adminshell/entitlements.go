package adminshell

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/raftstore"
)

// entitlements: named, structured sudo rules that grants reference.

type commandView struct {
	Path string `json:"path"`
	// Args is null when any arguments are allowed, [] when none are.
	Args    []string `json:"args"`
	AnyArgs bool     `json:"any_args"`
}

type entitlementView struct {
	Name      string        `json:"name"`
	Commands  []commandView `json:"commands"`
	RunAs     string        `json:"run_as"`
	NoPasswd  bool          `json:"nopasswd"`
	NoExec    bool          `json:"noexec"`
	SetEnv    bool          `json:"setenv"`
	EnvKeep   []string      `json:"env_keep"`
	UsedBy    []string      `json:"used_by"`
	CreatedAt *time.Time    `json:"created_at,omitempty"`
}

func newEntitlementView(e *raftstore.Entitlement, grants []*raftstore.Grant) entitlementView {
	ev := entitlementView{Name: e.Name, Commands: []commandView{}, RunAs: e.RunAs, NoPasswd: e.NoPasswd, NoExec: e.NoExec,
		SetEnv: e.SetEnv, EnvKeep: nonNil(e.EnvKeep), UsedBy: []string{}, CreatedAt: timeJSON(e.CreatedAt)}
	for _, c := range e.Commands {
		ev.Commands = append(ev.Commands, commandView{Path: c.Path, Args: c.Args, AnyArgs: c.Args == nil && c.Path != raftstore.SudoAllCommands})
	}
	for _, g := range grants {
		for _, s := range g.Sudo {
			if s == e.Name {
				ev.UsedBy = append(ev.UsedBy, g.ID)
			}
		}
	}
	return ev
}

// sudoLine renders a command the way it was given: arguments after the
// path, `""` for "no arguments" (sudoers' own spelling), the path alone for
// any arguments.
func sudoLine(c commandView) string {
	switch {
	case c.Args == nil:
		return c.Path
	case len(c.Args) == 0:
		return c.Path + ` ""`
	}
	return displayArgs(append([]string{c.Path}, c.Args...))
}

// parseSudoCommand splits one --command value with the shell's word rules.
func parseSudoCommand(s string) (raftstore.SudoCommand, error) {
	words, err := splitWords(s)
	if err != nil {
		return raftstore.SudoCommand{}, usagef("--command %q: %v", s, err)
	}
	if len(words) == 0 {
		return raftstore.SudoCommand{}, usagef("--command is empty")
	}
	c := raftstore.SudoCommand{Path: words[0]}
	switch args := words[1:]; {
	case len(args) == 1 && args[0] == "":
		c.Args = []string{} // `""`: no arguments at all
	case len(args) > 0:
		c.Args = args
	}
	return c, nil
}

func (v *invocation) entitlementsCmd() *cobra.Command {
	return group("entitlements", "Sudo entitlements: structured sudo rules that grants give", []string{"entitlement", "ent"},
		v.entitlementsLsCmd(), v.entitlementsShowCmd(), v.entitlementsCreateCmd(), v.entitlementsDeleteCmd())
}

// allGrants are the grants whose use of entitlements listings show.
func allGrants(st *raftstore.State) ([]*raftstore.Grant, error) {
	_, gs, err := st.Grants(nil)
	return gs, err
}

func (v *invocation) entitlementsLsCmd() *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List sudo entitlements", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st := v.state()
			_, ents, err := st.Entitlements(nil)
			if err != nil {
				return err
			}
			gs, err := allGrants(st)
			if err != nil {
				return err
			}
			views, ids := []entitlementView{}, []string{}
			for _, e := range ents {
				views = append(views, newEntitlementView(e, gs))
				ids = append(ids, e.Name)
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "NAME", "RUN AS", "NOPASSWD", "COMMANDS", "USED BY")
				for _, e := range views {
					cmds := make([]string, len(e.Commands))
					for i, c := range e.Commands {
						cmds[i] = sudoLine(c)
					}
					t.row(e.Name, e.RunAs, e.NoPasswd, strings.Join(cmds, "; "), e.UsedBy)
				}
				return t.flush()
			})
		},
	}
}

func (v *invocation) entitlementsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use: "show ENTITLEMENT", Short: "Show a sudo entitlement", Args: exactArgs("ENTITLEMENT"),
		ValidArgsFunction: v.completeArgs(entitlementNames),
		RunE: func(_ *cobra.Command, args []string) error {
			st := v.state()
			e, err := findEntitlement(st, args[0])
			if err != nil {
				return err
			}
			gs, err := allGrants(st)
			if err != nil {
				return err
			}
			ev := newEntitlementView(e, gs)
			return v.emit(ev, []string{e.Name}, func(out io.Writer) error {
				d := newDetails(out)
				d.add("name", ev.Name)
				d.add("run as", ev.RunAs)
				d.add("nopasswd", ev.NoPasswd)
				d.add("noexec", ev.NoExec)
				d.add("setenv", ev.SetEnv)
				d.add("env keep", ev.EnvKeep)
				d.add("used by", ev.UsedBy)
				d.add("created", e.CreatedAt)
				for i, c := range ev.Commands {
					line := sudoLine(c)
					if c.AnyArgs {
						line += "   (any arguments)"
					}
					d.add(fmt.Sprintf("command %d", i+1), line)
				}
				return d.flush()
			})
		},
	}
}

func (v *invocation) entitlementsCreateCmd() *cobra.Command {
	var (
		commands                 []string
		runAs                    string
		noPasswd, noExec, setEnv bool
		envKeep                  []string
	)
	create := &cobra.Command{
		Use:   "create ENTITLEMENT --command CMD [--command CMD...]",
		Short: "Create a sudo entitlement",
		Long: "Create a named sudo rule. Each --command is a path and its arguments, split like the shell:\n" +
			"  --command '/usr/bin/systemctl restart nginx'   exactly these arguments\n" +
			"  --command '/usr/bin/uptime \"\"'                no arguments\n" +
			"  --command /usr/bin/journalctl                  any arguments\n" +
			"  --command ALL                                  any command (alone)",
		Args: exactArgs("ENTITLEMENT"),
		RunE: func(_ *cobra.Command, args []string) error {
			if len(commands) == 0 {
				return usagef("entitlements create: give at least one --command")
			}
			e := raftstore.Entitlement{Name: args[0], RunAs: runAs, NoPasswd: noPasswd, NoExec: noExec, SetEnv: setEnv, EnvKeep: envKeep}
			for _, s := range commands {
				c, err := parseSudoCommand(s)
				if err != nil {
					return err
				}
				e.Commands = append(e.Commands, c)
			}
			stored, err := v.sh.control.CreateEntitlement(v.ctx, v.controlActor(), e)
			if err != nil {
				return err
			}
			return v.done(newEntitlementView(stored, nil), "entitlement %s created", e.Name)
		},
	}
	f := create.Flags()
	f.StringArrayVar(&commands, "command", nil, "a command the rule allows, with its arguments (repeatable)")
	f.StringVar(&runAs, "run-as", raftstore.DefaultRunAs, "account the commands run as")
	f.BoolVar(&noPasswd, "nopasswd", false, "no password prompt")
	f.BoolVar(&noExec, "noexec", false, "forbid the commands from running other programs")
	f.BoolVar(&setEnv, "setenv", false, "let the user set environment variables (root-equivalent: only for trusted commands)")
	f.StringSliceVar(&envKeep, "env-keep", nil, "variables kept from the user's environment")
	return create
}

func (v *invocation) entitlementsDeleteCmd() *cobra.Command {
	var yes bool
	del := &cobra.Command{
		Use: "delete ENTITLEMENT", Aliases: []string{"rm"}, Short: "Delete a sudo entitlement (no grant may use it)",
		Args: exactArgs("ENTITLEMENT"), ValidArgsFunction: v.completeArgs(entitlementNames),
		RunE: func(_ *cobra.Command, args []string) error {
			e, err := findEntitlement(v.state(), args[0])
			if err != nil {
				return err
			}
			if err := v.sh.control.DeleteEntitlement(v.ctx, v.controlActor(), e.Name, v.confirmer(yes)); err != nil {
				return err
			}
			return v.done(nil, "entitlement %s deleted", e.Name)
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return del
}
