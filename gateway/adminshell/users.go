package adminshell

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/gateway/access"
	"github.com/rampart-ssh/rampart/raftstore"
)

// whoami, users and groups.

type whoamiView struct {
	Login    string   `json:"login"`
	UserID   string   `json:"user_id"`
	UnixName string   `json:"unix_name,omitempty"`
	UID      uint32   `json:"uid,omitempty"`
	Groups   []string `json:"groups"`
	Source   string   `json:"source,omitempty"`
	Node     string   `json:"node,omitempty"`
}

func (v *invocation) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use: "whoami", Short: "Show who you are signed in as", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			w := whoamiView{Login: v.actor.Login, UserID: v.actor.UserID, Source: v.actor.Source, Node: v.sh.nodeID, Groups: []string{}}
			_, u, err := v.localState().UserByID(nil, v.actor.UserID)
			if err != nil {
				return err
			}
			if u != nil {
				w.UnixName, w.UID, w.Groups = u.UnixName, u.UID, nonNil(u.Groups)
			}
			return v.emit(w, []string{w.Login}, func(out io.Writer) error {
				d := newDetails(out)
				d.add("login", w.Login)
				d.add("user id", w.UserID)
				if u != nil {
					d.add("unix name", fmt.Sprintf("%s (uid %d)", w.UnixName, w.UID))
				}
				d.add("groups", w.Groups)
				d.add("source", w.Source)
				d.add("node", w.Node)
				return d.flush()
			})
		},
	}
}

type userView struct {
	ID        string     `json:"id"`
	Login     string     `json:"login"`
	Email     string     `json:"email,omitempty"`
	UnixName  string     `json:"unix_name"`
	UID       uint32     `json:"uid"`
	Status    string     `json:"status"`
	Groups    []string   `json:"groups"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func newUserView(u *raftstore.User) userView {
	return userView{ID: u.ID, Login: u.Login, Email: u.Email, UnixName: u.UnixName, UID: u.UID, Status: string(u.Status),
		Groups: nonNil(u.Groups), CreatedAt: timeJSON(u.CreatedAt), UpdatedAt: timeJSON(u.UpdatedAt)}
}

type userDetail struct {
	userView
	Grants []grantView `json:"grants"`
	// AccessRequests are the approved just-in-time requests whose window
	// is open: grants for this person alone (requests.go).
	AccessRequests []requestView `json:"access_requests,omitempty"`
	Bindings       int           `json:"bindings"`
	ActiveSessions int           `json:"active_sessions"`
	// Sources say where the record came from: "sign-in", "scim", or both.
	Sources    []string `json:"sources"`
	ExternalID string   `json:"external_id,omitempty"`
	// DeactivatedBy is "identity provider" when the IdP disabled them.
	DeactivatedBy string `json:"deactivated_by,omitempty"`
	// IdPConfirmed is when the identity provider last vouched for them.
	IdPConfirmed idpConfirmations `json:"idp_confirmed"`
	// GroupSources say why they are in each group: "token", "scim" or
	// "token+scim".
	GroupSources map[string]string `json:"group_sources"`
}

// idpConfirmations is when the IdP last confirmed a person, by each path.
type idpConfirmations struct {
	// SCIM is SCIM's last push of them (to the minute).
	SCIM *time.Time `json:"scim,omitempty"`
	// Revalidation is the last successful refresh of their tokens by the
	// re-validation of bindings (none without a refresh token kept).
	Revalidation *time.Time `json:"revalidation,omitempty"`
}

// groupSources says, for each of u's groups, which source names it.
func groupSources(u *raftstore.User) map[string]string {
	out := map[string]string{}
	token := u.GroupsFromToken()
	for _, g := range u.Groups {
		inToken, inSCIM := slices.Contains(token, g), slices.Contains(u.SCIMGroups, g)
		switch {
		case inToken && inSCIM:
			out[g] = "token+scim"
		case inSCIM:
			out[g] = "scim"
		default:
			out[g] = "token"
		}
	}
	return out
}

func (v *invocation) usersCmd() *cobra.Command {
	show := &cobra.Command{
		Use: "show USER", Short: "Show a user (by login, unix name or id)", Args: exactArgs("USER"),
		ValidArgsFunction: v.completeArgs(userNames),
		RunE: func(_ *cobra.Command, args []string) error {
			st := v.state()
			u, err := findUser(st, args[0])
			if err != nil {
				return err
			}
			d := userDetail{userView: newUserView(u), Grants: []grantView{}, Sources: nonNil(u.Sources), ExternalID: u.ExternalID,
				IdPConfirmed: idpConfirmations{SCIM: timeJSON(u.SCIMSeenAt)}, GroupSources: groupSources(u)}
			if _, rec, err := st.IdPSessionByUser(nil, u.ID); err == nil && rec != nil {
				d.IdPConfirmed.Revalidation = timeJSON(rec.ConfirmedAt)
			}
			if u.DisabledByIdP {
				// Through which channel: SCIM undoes only its own.
				d.DeactivatedBy = "identity provider (" + string(cmp.Or(u.DisabledVia, raftstore.ViaSCIM)) + ")"
			}
			// The grants of the user's groups, whether or not the user is
			// active, and their live bindings (gateway/access).
			x, err := access.New(st, nil, v.sh.now).Explain(u)
			if err != nil {
				return err
			}
			for _, g := range x.Grants {
				d.Grants = append(d.Grants, newGrantView(g))
			}
			for _, r := range x.Requests {
				d.AccessRequests = append(d.AccessRequests, newRequestView(r, v.sh.now()))
			}
			d.Bindings = x.LiveBindings
			_, sessions, err := st.SessionsByUser(nil, u.ID)
			if err != nil {
				return err
			}
			for _, s := range sessions {
				if s.Status == raftstore.SessionActive {
					d.ActiveSessions++
				}
			}
			return v.emit(d, []string{u.ID}, func(out io.Writer) error {
				w := newDetails(out)
				w.add("login", d.Login)
				w.add("id", d.ID)
				w.add("email", d.Email)
				w.add("unix name", fmt.Sprintf("%s (uid %d)", d.UnixName, d.UID))
				w.add("status", d.Status)
				if d.DeactivatedBy != "" {
					w.add("deactivated by", d.DeactivatedBy)
				}
				w.add("source", sourcesText(d.Sources))
				w.add("external id", d.ExternalID)
				w.add("scim confirmed", u.SCIMSeenAt)
				groups := make([]string, len(d.Groups))
				for i, g := range d.Groups {
					groups[i] = g + " (" + d.GroupSources[g] + ")"
				}
				w.add("groups", groups)
				w.add("created", u.CreatedAt)
				w.add("updated", u.UpdatedAt)
				for _, r := range d.AccessRequests {
					w.add("access request", fmt.Sprintf("%s: project %s as %s until %s", r.ID, r.Project, r.Login, r.ExpiresAt.Format(time.RFC3339)))
				}
				w.add("live bindings", d.Bindings)
				w.add("active sessions", d.ActiveSessions)
				w.add("idp confirmed", idpConfirmed(st, u.ID, v.sh.now()))
				if err := w.flush(); err != nil {
					return err
				}
				return writeGrants(out, d.Grants)
			})
		},
	}

	return group("users", "Users (created at first sign-in or by SCIM)", []string{"user"},
		v.usersLsCmd(), show, v.usersDisableCmd(), v.usersEnableCmd(), v.usersDeleteCmd())
}

func (v *invocation) usersLsCmd() *cobra.Command {
	var status, grp string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List users", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			_, users, err := v.state().Users(nil)
			if err != nil {
				return err
			}
			views, ids := []userView{}, []string{}
			for _, u := range users {
				if (status != "" && string(u.Status) != status) || (grp != "" && !slices.Contains(u.Groups, grp)) {
					continue
				}
				views = append(views, newUserView(u))
				ids = append(ids, u.ID)
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "LOGIN", "UNIX NAME", "UID", "STATUS", "GROUPS", "ID")
				for _, u := range views {
					t.row(u.Login, u.UnixName, u.UID, u.Status, u.Groups, u.ID)
				}
				return t.flush()
			})
		},
	}
	ls.Flags().StringVar(&status, "status", "", "only users with this status (active, disabled, deleted)")
	ls.Flags().StringVar(&grp, "group", "", "only members of this group")
	v.completeFlag(ls, "status", fixed("active", "disabled", "deleted"))
	v.completeFlag(ls, "group", groupNames)
	return ls
}

// usersSetStatusCmd is users disable or users enable.
func (v *invocation) usersSetStatusCmd(name, short string, to raftstore.UserStatus) *cobra.Command {
	return &cobra.Command{
		Use: name + " USER", Short: short, Args: exactArgs("USER"),
		ValidArgsFunction: v.completeArgs(userNames),
		RunE: func(_ *cobra.Command, args []string) error {
			u, err := findUser(v.state(), args[0])
			if err != nil {
				return err
			}
			stored, err := v.sh.control.SetUserStatus(v.ctx, v.controlActor(), u.ID, to)
			if err != nil {
				return err
			}
			if to == raftstore.UserDisabled {
				return v.done(newUserView(stored), "user %s is now disabled; every node ends their live sessions within seconds", u.Login)
			}
			return v.done(newUserView(stored), "user %s is now %s", u.Login, to)
		},
	}
}

func (v *invocation) usersDisableCmd() *cobra.Command {
	disable := v.usersSetStatusCmd("disable", "Disable a user: sign-ins refused, live sessions ended on every node", raftstore.UserDisabled)
	disable.Long = `Disable a user. At once, on every node of the cluster:
  - new sign-ins are refused, through the browser or with a bound key;
  - their live sessions end (ssh -J hops, and an admin shell they have open):
    each node watches the users table of its own replica, so sessions end
    within a second or two of the change, wherever they run.
Their device bindings and grants are kept: users enable restores access.`
	return disable
}

func (v *invocation) usersEnableCmd() *cobra.Command {
	return v.usersSetStatusCmd("enable", "Enable a disabled user", raftstore.UserActive)
}

func (v *invocation) usersDeleteCmd() *cobra.Command {
	var yes bool
	del := &cobra.Command{
		Use: "delete USER", Aliases: []string{"rm"}, Short: "Delete a user and their device bindings (the uid is never reused)",
		Args: exactArgs("USER"), ValidArgsFunction: v.completeArgs(userNames),
		RunE: func(_ *cobra.Command, args []string) error {
			u, err := findUser(v.state(), args[0])
			if err != nil {
				return err
			}
			n, err := v.sh.control.DeleteUser(v.ctx, v.controlActor(), u.ID, v.confirmer(yes))
			if err != nil {
				return err
			}
			return v.done(nil, "user %s deleted (%d device binding(s) revoked)", u.Login, n)
		},
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return del
}

type groupView struct {
	Name    string      `json:"name"`
	GID     uint32      `json:"gid"`
	Members []string    `json:"members"`
	Grants  []grantView `json:"grants"`
}

func (v *invocation) newGroupView(st *raftstore.State, g *raftstore.Group) (groupView, error) {
	gv := groupView{Name: g.Name, GID: g.GID, Members: []string{}, Grants: []grantView{}}
	_, users, err := st.UsersInGroup(nil, g.Name)
	if err != nil {
		return gv, err
	}
	for _, u := range users {
		gv.Members = append(gv.Members, u.Login)
	}
	slices.Sort(gv.Members)
	_, grants, err := st.GrantsByGroup(nil, g.Name)
	if err != nil {
		return gv, err
	}
	for _, gr := range grants {
		gv.Grants = append(gv.Grants, newGrantView(gr))
	}
	return gv, nil
}

func (v *invocation) groupsCmd() *cobra.Command {
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List groups", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st := v.state()
			_, groups, err := st.Groups(nil)
			if err != nil {
				return err
			}
			views, ids := []groupView{}, []string{}
			for _, g := range groups {
				gv, err := v.newGroupView(st, g)
				if err != nil {
					return err
				}
				views = append(views, gv)
				ids = append(ids, g.Name)
			}
			return v.emit(views, ids, func(out io.Writer) error {
				t := newTable(out, "NAME", "GID", "MEMBERS", "PROJECTS")
				for _, g := range views {
					projects := make([]string, len(g.Grants))
					for i, gr := range g.Grants {
						projects[i] = gr.Project + ":" + gr.Role
					}
					t.row(g.Name, g.GID, len(g.Members), projects)
				}
				return t.flush()
			})
		},
	}
	show := &cobra.Command{
		Use: "show GROUP", Short: "Show a group, its members and its grants", Args: exactArgs("GROUP"),
		ValidArgsFunction: v.completeArgs(groupNames),
		RunE: func(_ *cobra.Command, args []string) error {
			st := v.state()
			g, err := findGroup(st, args[0])
			if err != nil {
				return err
			}
			gv, err := v.newGroupView(st, g)
			if err != nil {
				return err
			}
			return v.emit(gv, []string{g.Name}, func(out io.Writer) error {
				d := newDetails(out)
				d.add("name", gv.Name)
				d.add("gid", gv.GID)
				d.add("members", strings.Join(gv.Members, ", "))
				if err := d.flush(); err != nil {
					return err
				}
				return writeGrants(out, gv.Grants)
			})
		},
	}
	return group("groups", "Groups (from the IdP's group claim)", []string{"group"}, ls, show)
}

// sourcesText says where a record came from, in words.
func sourcesText(sources []string) string {
	scim, signIn := slices.Contains(sources, raftstore.SourceSCIM), slices.Contains(sources, raftstore.SourceSignIn)
	switch {
	case scim && signIn:
		return "SCIM and sign-in"
	case scim:
		return "SCIM (not signed in yet)"
	case signIn:
		return "sign-in"
	}
	return "sign-in (before sources were recorded)"
}

// writeGrants prints a grants section after an object's details.
func writeGrants(out io.Writer, grants []grantView) error {
	if len(grants) == 0 {
		_, err := fmt.Fprintln(out, "\nNo grants.")
		return err
	}
	fmt.Fprintln(out, "\nGrants:")
	t := newTable(out, "  PROJECT", "GROUP", "ROLE", "SUDO")
	for _, g := range grants {
		t.row("  "+g.Project, g.Group, g.Role, g.Sudo)
	}
	return t.flush()
}
