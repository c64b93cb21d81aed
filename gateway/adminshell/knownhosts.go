package adminshell

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// ca known-hosts: the two @cert-authority lines a client's known_hosts
// needs. The node host CA is trusted for the nodes' names only; the target
// host CA for every other name, never for a node's.

type knownHostsView struct {
	// NodeHost holds a line per node host CA key, for the nodes' names.
	NodeHost []string `json:"node_host"`
	// Host holds a line per target host CA key, for every other name.
	Host []string `json:"host"`
	// NodeNames are the known_hosts patterns of the nodes.
	NodeNames []string `json:"node_names"`
}

func (v *invocation) knownHostsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "known-hosts",
		Short: "Print the @cert-authority lines for known_hosts: the node host CA for the bastion, the target host CA for targets",
		Args:  exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			view, err := knownHosts(v.state())
			if err != nil {
				return err
			}
			return v.emit(view, append(append([]string{}, view.NodeHost...), view.Host...), func(out io.Writer) error {
				fmt.Fprintln(out, "# The bastion's own names: its front doors, certified by the node host CA only.")
				for _, l := range view.NodeHost {
					fmt.Fprintln(out, clean(l))
				}
				fmt.Fprintln(out, "# Targets reached through it: any other name, certified by the target host CA.")
				for _, l := range view.Host {
					fmt.Fprintln(out, clean(l))
				}
				return nil
			})
		},
	}
}

// knownHosts builds the lines from the CA records and the node table.
func knownHosts(st *raftstore.State) (knownHostsView, error) {
	view := knownHostsView{NodeHost: []string{}, Host: []string{}, NodeNames: []string{}}
	_, nodes, err := st.Nodes(nil)
	if err != nil {
		return view, err
	}
	for _, n := range nodes {
		view.NodeNames = append(view.NodeNames, api.KnownHostsNames(n.SSHAddr, n.HostNames)...)
	}
	slices.Sort(view.NodeNames)
	view.NodeNames = slices.Compact(view.NodeNames)
	nodePatterns := strings.Join(view.NodeNames, ",")
	targetPatterns := "*"
	for _, p := range view.NodeNames {
		targetPatterns += ",!" + p
	}
	for _, kind := range []raftstore.CAKind{raftstore.CANodeHost, raftstore.CAHost} {
		_, recs, err := st.CAsFor(nil, kind, "")
		if err != nil {
			return view, err
		}
		// The key that signs now first, then the one waiting to (the
		// store lists them by id, which says nothing of their roles).
		slices.SortStableFunc(recs, func(a, b *raftstore.CARecord) int {
			rank := func(r *raftstore.CARecord) int {
				if r.State == raftstore.CAActive {
					return 0
				}
				return 1
			}
			return cmp.Compare(rank(a), rank(b))
		})
		for _, r := range recs {
			if r.State == raftstore.CARetired {
				continue
			}
			key := strings.TrimSpace(r.PublicKey)
			if kind == raftstore.CANodeHost {
				if nodePatterns != "" {
					view.NodeHost = append(view.NodeHost, "@cert-authority "+nodePatterns+" "+key)
				}
			} else {
				view.Host = append(view.Host, "@cert-authority "+targetPatterns+" "+key)
			}
		}
	}
	return view, nil
}
