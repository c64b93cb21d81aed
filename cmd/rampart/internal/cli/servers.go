package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client/bastion"
)

// server is one line of `rampart servers`.
type server struct {
	Name    string `json:"name"`
	Project string `json:"project"`
	Login   string `json:"login"`
	// Logins are the shared logins the person may use there too.
	Logins  []string          `json:"logins,omitempty"`
	Command string            `json:"command"`
	Labels  map[string]string `json:"labels,omitempty"`
}

func (a *app) serversCmd() *cobra.Command {
	var labels []string
	var output string
	c := &cobra.Command{
		Use:   "servers",
		Short: "List the servers you may reach, with the login to use on them",
		Long: `servers asks the bastion, signed in with your bound key, which servers you may reach now.
LOGIN is your unix name on them, which may differ from your name on this machine.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			want, err := parseLabels(labels)
			if err != nil {
				return err
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: use table or json", output)
			}
			e, err := newEnv()
			if err != nil {
				return err
			}
			who, err := signedInWhoami(e)
			if err != nil {
				return err
			}
			return a.printServers(filterServers(who, want), output)
		},
	}
	c.Flags().StringArrayVarP(&labels, "label", "l", nil, "only servers with this label, key=value (repeat for more)")
	c.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// signedInWhoami asks the front door who the person is, with the bound key.
func signedInWhoami(e *env) (*api.Whoami, error) {
	cfg, err := e.load()
	if err != nil {
		return nil, err
	}
	key, err := e.boundKey(cfg)
	if err != nil {
		return nil, err
	}
	who, err := whoamiWith(cfg, key)
	if errors.Is(err, bastion.ErrNotBound) {
		return nil, errors.New("your key is not signed in (or its sign-in has expired or was revoked): run `rampart login`")
	}
	return who, err
}

func parseLabels(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range list {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-l %q: use key=value, such as -l env=prod", l)
		}
		out[k] = v
	}
	return out, nil
}

// filterServers keeps the servers that carry every wanted label.
func filterServers(who *api.Whoami, want map[string]string) []server {
	out := []server{}
	for _, d := range who.Servers {
		ok := true
		for k, v := range want {
			if d.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, server{Name: d.Name, Project: d.Project, Login: who.UnixName, Logins: d.Logins, Command: d.Command, Labels: d.Labels})
		}
	}
	return out
}

func (a *app) printServers(list []server, output string) error {
	if output == "json" {
		b, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(a.out, "%s\n", b)
		return nil
	}
	if len(list) == 0 {
		fmt.Fprintln(a.out, "No servers are available to you (with these labels).")
		return nil
	}
	tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPROJECT\tLOGIN\tLABELS")
	for _, s := range list {
		var ls []string
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			ls = append(ls, k+"="+s.Labels[k])
		}
		login := s.Login
		if len(s.Logins) > 0 {
			login += " (also: " + strings.Join(s.Logins, ", ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Project, login, strings.Join(ls, ","))
	}
	return tw.Flush()
}
