package adminshell

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// servers: enrolled targets.

type serverView struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Project      string            `json:"project"`
	AltNames     []string          `json:"alt_names"`
	Addr         string            `json:"addr"`
	SSHPort      int               `json:"ssh_port"`
	Labels       map[string]string `json:"labels"`
	EnrollMethod string            `json:"enroll_method"`
	InstanceID   string            `json:"instance_id,omitempty"`
	MachineID    string            `json:"machine_id,omitempty"`
	HostKeys     []string          `json:"host_keys"`
	LastSeen     *time.Time        `json:"last_seen,omitempty"`
	CreatedAt    *time.Time        `json:"created_at,omitempty"`
}

func newServerView(s *raftstore.Server) serverView {
	labels := s.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return serverView{ID: s.ID, Name: s.Name, Project: s.Project, AltNames: nonNil(s.AltNames), Addr: s.Addr, SSHPort: s.SSHPort,
		Labels: labels, EnrollMethod: s.EnrollMethod, InstanceID: s.InstanceID, MachineID: s.MachineID,
		HostKeys: nonNil(s.HostKeys), LastSeen: timeJSON(s.LastSeen), CreatedAt: timeJSON(s.CreatedAt)}
}

// labelFilter is one --label of servers ls: key=value, or key alone for
// "has the label".
type labelFilter struct {
	key, value string
	any        bool
}

func parseLabelFilters(specs []string) ([]labelFilter, error) {
	out := make([]labelFilter, 0, len(specs))
	for _, s := range specs {
		k, val, ok := strings.Cut(s, "=")
		if k == "" {
			return nil, usagef("--label %q: want key=value or key", s)
		}
		out = append(out, labelFilter{key: k, value: val, any: !ok})
	}
	return out, nil
}

func matchLabels(labels map[string]string, fs []labelFilter) bool {
	for _, f := range fs {
		val, ok := labels[f.key]
		if !ok || (!f.any && val != f.value) {
			return false
		}
	}
	return true
}

func (v *invocation) serversCmd() *cobra.Command {
	return group("servers", "Servers enrolled in projects", []string{"server"},
		v.serversLsCmd(), v.serversShowCmd(), v.serversDeleteCmd(), v.serversLabelCmd())
}

func (v *invocation) serversLsCmd() *cobra.Command {
	var project string
	var labels []string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List servers", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			filters, err := parseLabelFilters(labels)
			if err != nil {
				return err
			}
			st := v.state()
			var servers []*raftstore.Server
			if project != "" {
				if _, err := findProject(st, project); err != nil {
					return err
				}
				_, servers, err = st.ServersByProject(nil, project)
			} else {
				_, servers, err = st.Servers(nil)
			}
			if err != nil {
				return err
			}
			views, ids := []serverView{}, []string{}
			for _, s := range servers {
				if matchLabels(s.Labels, filters) {
					views = append(views, newServerView(s))
					ids = append(ids, s.ID)
				}
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "NAME", "PROJECT", "ADDRESS", "LABELS", "LAST SEEN", "ID")
				for i, s := range views {
					t.row(s.Name, s.Project, fmt.Sprintf("%s:%d", s.Addr, s.SSHPort), s.Labels, lastSeen(v.sh.now(), servers[i].LastSeen), s.ID)
				}
				return t.flush()
			})
		},
	}
	ls.Flags().StringVar(&project, "project", "", "only servers of this project")
	ls.Flags().StringArrayVar(&labels, "label", nil, "only servers with this label: key=value, or key (repeatable; all must match)")
	v.completeFlag(ls, "project", projectNames)
	return ls
}

func (v *invocation) serversShowCmd() *cobra.Command {
	return &cobra.Command{
		Use: "show SERVER", Short: "Show a server (by name, alt name, address or id)", Args: exactArgs("SERVER"),
		ValidArgsFunction: v.completeArgs(serverNames),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := findServer(v.state(), args[0])
			if err != nil {
				return err
			}
			sv := newServerView(s)
			return v.emit(sv, []string{s.ID}, func(out io.Writer) error {
				d := newDetails(out)
				d.add("name", sv.Name)
				d.add("id", sv.ID)
				d.add("project", sv.Project)
				d.add("alt names", sv.AltNames)
				d.add("address", fmt.Sprintf("%s:%d", sv.Addr, sv.SSHPort))
				d.add("labels", sv.Labels)
				d.add("enrolled by", sv.EnrollMethod)
				d.add("instance id", sv.InstanceID)
				d.add("machine id", sv.MachineID)
				d.add("last seen", lastSeen(v.sh.now(), s.LastSeen))
				d.add("enrolled", s.CreatedAt)
				for i, k := range sv.HostKeys {
					d.add(fmt.Sprintf("host key %d", i+1), k)
				}
				return d.flush()
			})
		},
	}
}

func (v *invocation) serversDeleteCmd() *cobra.Command {
	var yes bool
	del := &cobra.Command{
		Use: "delete SERVER", Aliases: []string{"rm"}, Short: "Delete a server: it can no longer be reached through the cluster",
		Args: exactArgs("SERVER"), ValidArgsFunction: v.completeArgs(serverNames),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := findServer(v.state(), args[0])
			if err != nil {
				return err
			}
			if _, err := v.sh.control.DeleteServer(v.ctx, v.controlActor(), s.ID, v.confirmer(yes)); err != nil {
				return err
			}
			return v.done(nil, "server %s deleted", s.Name)
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return del
}

func (v *invocation) serversLabelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "label SERVER KEY=VALUE... | KEY-...",
		Short: "Set (key=value) or remove (key-) a server's labels",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("servers label takes SERVER and at least one KEY=VALUE or KEY- (got %d argument(s))", len(args))
			}
			return nil
		},
		ValidArgsFunction: v.completeArgs(serverNames),
		RunE: func(_ *cobra.Command, args []string) error {
			s, err := findServer(v.state(), args[0])
			if err != nil {
				return err
			}
			var edits []control.LabelEdit
			for _, a := range args[1:] {
				if k, ok := strings.CutSuffix(a, "-"); ok && !strings.Contains(a, "=") {
					edits = append(edits, control.LabelEdit{Key: k, Remove: true})
					continue
				}
				k, val, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return usagef("label %q: want KEY=VALUE to set or KEY- to remove", a)
				}
				edits = append(edits, control.LabelEdit{Key: k, Value: val})
			}
			stored, err := v.sh.control.LabelServer(v.ctx, v.controlActor(), s.ID, edits)
			if err != nil {
				return err
			}
			return v.done(newServerView(stored), "server %s labels: %s", s.Name, cell(stored.Labels))
		},
	}
}

// lastSeen says how long ago an agent last reported.
func lastSeen(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	ago := now.Sub(t).Truncate(time.Second)
	if ago < time.Second {
		return "just now"
	}
	return fmtDuration(ago) + " ago"
}
