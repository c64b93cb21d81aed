package adminshell

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/raftstore"
)

// lookup and completion of the objects commands name.

// findUser resolves a user by id, login or unix name.
func findUser(st *raftstore.State, ref string) (*raftstore.User, error) {
	for _, by := range []func(string) (*raftstore.User, error){
		func(s string) (*raftstore.User, error) { _, u, err := st.UserByID(nil, s); return u, err },
		func(s string) (*raftstore.User, error) {
			// Two subjects may share a login; then only the id or the unix
			// name says which person is meant.
			_, us, err := st.UsersByLogin(nil, s)
			if err != nil || len(us) == 0 {
				return nil, err
			}
			if len(us) > 1 {
				return nil, fmt.Errorf("login %q belongs to %d users: name one by its id or unix name", s, len(us))
			}
			return us[0], nil
		},
		func(s string) (*raftstore.User, error) { _, u, err := st.UserByUnixName(nil, s); return u, err },
	} {
		u, err := by(ref)
		if err != nil {
			return nil, err
		}
		if u != nil {
			return u, nil
		}
	}
	return nil, fmt.Errorf("user %q: %w", ref, raftstore.ErrNotFound)
}

// userLogin names a user id by its login, or the id when it is unknown.
func userLogin(st *raftstore.State, id string) string {
	if _, u, err := st.UserByID(nil, id); err == nil && u != nil {
		return u.Login
	}
	return id
}

func findGroup(st *raftstore.State, name string) (*raftstore.Group, error) {
	_, g, err := st.GroupByName(nil, name)
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, fmt.Errorf("group %q: %w", name, raftstore.ErrNotFound)
	}
	return g, nil
}

func findProject(st *raftstore.State, name string) (*raftstore.Project, error) {
	_, p, err := st.ProjectByName(nil, name)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("project %q: %w", name, raftstore.ErrNotFound)
	}
	return p, nil
}

func findEntitlement(st *raftstore.State, name string) (*raftstore.Entitlement, error) {
	_, e, err := st.EntitlementByName(nil, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, fmt.Errorf("entitlement %q: %w", name, raftstore.ErrNotFound)
	}
	return e, nil
}

// findServer resolves a server by id, then by name, alt name or address.
func findServer(st *raftstore.State, ref string) (*raftstore.Server, error) {
	_, s, err := st.ServerByID(nil, ref)
	if err != nil {
		return nil, err
	}
	if s != nil {
		return s, nil
	}
	if _, s, err = st.ServerByAddress(nil, ref); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, fmt.Errorf("server %q: %w", ref, raftstore.ErrNotFound)
	}
	return s, nil
}

// byPrefix resolves ref to the one id among ids that equals it or starts
// with it; a prefix shorter than minLen, or matching several, is refused.
func byPrefix(what, ref string, ids []string, minLen int) (string, error) {
	var match []string
	for _, id := range ids {
		if id == ref {
			return id, nil
		}
		if strings.HasPrefix(id, ref) {
			match = append(match, id)
		}
	}
	switch {
	case len(match) == 0 || ref == "":
		return "", fmt.Errorf("%s %q: %w", what, ref, raftstore.ErrNotFound)
	case len(ref) < minLen:
		return "", fmt.Errorf("%s prefix %q is too short: give at least %d characters", what, ref, minLen)
	case len(match) > 1:
		return "", fmt.Errorf("%s prefix %q matches %d: give more characters", what, ref, len(match))
	}
	return match[0], nil
}

// Name lists for completion. Errors give no candidates.

func userNames(st *raftstore.State) []string {
	_, users, _ := st.Users(nil)
	out := make([]string, 0, len(users))
	for _, u := range users {
		out = append(out, u.Login)
	}
	sort.Strings(out)
	return out
}

func groupNames(st *raftstore.State) []string {
	_, groups, _ := st.Groups(nil)
	out := make([]string, 0, len(groups))
	for _, g := range groups {
		out = append(out, g.Name)
	}
	return out
}

func projectNames(st *raftstore.State) []string {
	_, projects, _ := st.Projects(nil)
	out := make([]string, 0, len(projects))
	for _, p := range projects {
		out = append(out, p.Name)
	}
	return out
}

func serverNames(st *raftstore.State) []string {
	_, servers, _ := st.Servers(nil)
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

func entitlementNames(st *raftstore.State) []string {
	_, ents, _ := st.Entitlements(nil)
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return out
}

func sessionIDs(st *raftstore.State) []string {
	_, sessions, _ := st.Sessions(nil)
	out := make([]string, 0, len(sessions))
	for _, s := range sessions {
		out = append(out, s.ID)
	}
	return out
}

func nodeIDs(st *raftstore.State) []string {
	_, nodes, _ := st.Nodes(nil)
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.ID)
	}
	return out
}

func serviceTokenNames(st *raftstore.State) []string {
	_, toks, _ := st.ServiceTokens(nil)
	out := make([]string, 0, len(toks))
	for _, t := range toks {
		out = append(out, t.Name)
	}
	sort.Strings(out)
	return out
}

// completeArgs completes the n-th positional argument from lists[n]; a nil
// list (or an argument past the last) completes nothing.
func (v *invocation) completeArgs(lists ...func(*raftstore.State) []string) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) >= len(lists) || lists[len(args)] == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return lists[len(args)](v.localState()), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFlag registers the completion of a flag's value.
func (v *invocation) completeFlag(cmd *cobra.Command, flag string, list func(*raftstore.State) []string) {
	_ = cmd.RegisterFlagCompletionFunc(flag, func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return list(v.localState()), cobra.ShellCompDirectiveNoFileComp
	})
}

// fixed returns a list function of constant words.
func fixed(words ...string) func(*raftstore.State) []string {
	return func(*raftstore.State) []string { return words }
}

// exactArgs wants exactly the named arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s takes %s (got %d argument(s))", strings.TrimPrefix(cmd.CommandPath(), rootName+" "),
				strings.Join(names, " "), len(args))
		}
		return nil
	}
}
