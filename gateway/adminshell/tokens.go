package adminshell

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// enrollment tokens and API service tokens. Secrets are printed once, at
// creation, and never stored, logged or audited: the cluster keeps hashes.

// DefaultTokenTTL is how long an enrollment token lasts unless --ttl says.
const DefaultTokenTTL = 24 * time.Hour

// shortHash is how much of a token hash tables show; revoke takes any
// unique prefix of at least minHashPrefix characters.
const (
	shortHash     = 12
	minHashPrefix = 8
)

type tokenView struct {
	Hash        string     `json:"hash"`
	Kind        string     `json:"kind"`
	Project     string     `json:"project,omitempty"`
	Description string     `json:"description,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	// UsesLeft is null for a token usable until it expires.
	UsesLeft  *int       `json:"uses_left"`
	CreatedBy string     `json:"created_by"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

func newTokenView(t *raftstore.Token) tokenView {
	tv := tokenView{Hash: t.Hash, Kind: string(t.Kind), Project: t.Project, Description: t.Description,
		ExpiresAt: timeJSON(t.ExpiresAt), CreatedBy: t.CreatedBy, CreatedAt: timeJSON(t.CreatedAt)}
	if t.UsesLeft != raftstore.UnlimitedUses {
		n := t.UsesLeft
		tv.UsesLeft = &n
	}
	return tv
}

type createdTokenView struct {
	Token string `json:"token"`
	tokenView
}

func usesText(n *int) string {
	if n == nil {
		return "unlimited"
	}
	return fmt.Sprint(*n)
}

// expiry says when something expires, or that it has.
func expiry(now, t time.Time) string {
	switch {
	case t.IsZero():
		return "never"
	case !now.Before(t):
		return "expired " + fmtTime(t)
	}
	return fmtTime(t)
}

func (v *invocation) tokensCmd() *cobra.Command {
	return group("tokens", "Enrollment tokens for server agents", []string{"token"}, v.tokensCreateCmd(), v.tokensLsCmd(), v.tokensRevokeCmd())
}

func (v *invocation) tokensCreateCmd() *cobra.Command {
	var ttl time.Duration
	var uses int
	var description string
	create := &cobra.Command{
		Use:   "create PROJECT",
		Short: "Create an enrollment token for a project (shown once)",
		Long: "Create a token with which a server's agent enrolls into PROJECT. The token carries the\n" +
			"cluster's API addresses and CA pin; it is printed once and the cluster keeps only its hash.",
		Args: exactArgs("PROJECT"), ValidArgsFunction: v.completeArgs(projectNames),
		RunE: func(_ *cobra.Command, args []string) error {
			if ttl < 0 {
				return usagef("--ttl %s is negative", ttl)
			}
			if uses < 0 {
				return usagef("--uses %d is negative", uses)
			}
			tok, stored, err := v.sh.control.CreateToken(v.ctx, v.controlActor(),
				control.TokenRequest{Kind: api.TokenEnroll, Project: args[0], Description: description, TTL: ttl, Uses: uses})
			if err != nil {
				return err
			}
			tv := newTokenView(stored)
			switch {
			case v.jsonOut:
				return writeJSON(v.out, createdTokenView{Token: tok.String(), tokenView: tv})
			case v.quiet:
				_, err := fmt.Fprintln(v.out, tok.String())
				return err
			}
			// The token alone on stdout, the words around it on stderr:
			// ssh admin@bastion tokens create web > token gives a file
			// install.sh --token-file takes.
			fmt.Fprintf(v.errOut, "Enrollment token for project %s (expires %s, %s uses):\n\n", stored.Project, expiry(v.sh.now(), stored.ExpiresAt), usesText(tv.UsesLeft))
			if _, err := fmt.Fprintln(v.out, tok.String()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(v.errOut, "\nIt is shown only this once. To revoke it: tokens revoke %s\n", stored.Hash[:shortHash])
			return err
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", DefaultTokenTTL, "how long the token stays valid (0: until revoked)")
	create.Flags().IntVar(&uses, "uses", 0, "how many servers may enroll with it (0: any number until it expires)")
	create.Flags().StringVar(&description, "description", "", "a note shown in tokens ls")
	return create
}

func (v *invocation) tokensLsCmd() *cobra.Command {
	var project string
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List enrollment and join tokens (hashes only)", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			st := v.state()
			var toks []*raftstore.Token
			var err error
			if project != "" {
				_, toks, err = st.TokensByProject(nil, project)
			} else {
				_, toks, err = st.Tokens(nil)
			}
			if err != nil {
				return err
			}
			views, ids := []tokenView{}, []string{}
			for _, t := range toks {
				views = append(views, newTokenView(t))
				ids = append(ids, t.Hash)
			}
			now := v.sh.now()
			return v.emit(views, ids, func(out io.Writer) error {
				tb := newTable(out, "HASH", "KIND", "PROJECT", "EXPIRES", "USES LEFT", "CREATED BY", "DESCRIPTION")
				for i, t := range views {
					tb.row(t.Hash[:shortHash], t.Kind, t.Project, expiry(now, toks[i].ExpiresAt), usesText(t.UsesLeft), t.CreatedBy, t.Description)
				}
				return tb.flush()
			})
		},
	}
	ls.Flags().StringVar(&project, "project", "", "only the tokens of this project")
	v.completeFlag(ls, "project", projectNames)
	return ls
}

func (v *invocation) tokensRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use: "revoke HASH-PREFIX", Short: "Revoke a token by (a unique prefix of) its hash", Args: exactArgs("HASH-PREFIX"),
		RunE: func(_ *cobra.Command, args []string) error {
			_, toks, err := v.state().Tokens(nil)
			if err != nil {
				return err
			}
			hashes := make([]string, len(toks))
			for i, t := range toks {
				hashes[i] = t.Hash
			}
			hash, err := byPrefix("token", args[0], hashes, minHashPrefix)
			if err != nil {
				return err
			}
			if err := v.sh.control.RevokeToken(v.ctx, v.controlActor(), hash); err != nil {
				return err
			}
			return v.done(nil, "token %s revoked", hash[:shortHash])
		},
	}
}

type serviceTokenView struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Scope is the token's scope; Role is the same, under its old name.
	Scope      string     `json:"scope"`
	Role       string     `json:"role"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

func newServiceTokenView(t *raftstore.ServiceToken) serviceTokenView {
	return serviceTokenView{ID: t.ID, Name: t.Name, Scope: t.Role, Role: t.Role, CreatedBy: t.CreatedBy,
		CreatedAt: timeJSON(t.CreatedAt), ExpiresAt: timeJSON(t.ExpiresAt), LastUsedAt: timeJSON(t.LastUsedAt)}
}

// lastUsed says when a token was last used (coarsely: the API records it
// at most once a minute), or that it never was.
func lastUsed(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmtTime(t)
}

func findServiceToken(st *raftstore.State, ref string) (*raftstore.ServiceToken, error) {
	_, toks, err := st.ServiceTokens(nil)
	if err != nil {
		return nil, err
	}
	for _, t := range toks {
		if t.ID == ref || t.Name == ref {
			return t, nil
		}
	}
	return nil, fmt.Errorf("service token %q: %w", ref, raftstore.ErrNotFound)
}

func (v *invocation) serviceTokensCmd() *cobra.Command {
	return group("service-tokens", "Scoped tokens for the HTTPS API", []string{"service-token"},
		v.serviceTokensCreateCmd(), v.serviceTokensLsCmd(), v.serviceTokensRevokeCmd())
}

func (v *invocation) serviceTokensCreateCmd() *cobra.Command {
	var ttl time.Duration
	var scope string
	create := &cobra.Command{
		Use: "create NAME [--scope read|admin|provisioning|auditor|approver]", Short: "Create a token for the HTTPS API (shown once)", Args: exactArgs("NAME"),
		Long: "Create a service token for the HTTPS API. Its scope decides what it reaches:\n" +
			"  read          every read of the admin API but service tokens\n" +
			"  admin         the whole admin API\n" +
			"  provisioning  SCIM only (as scim tokens create)\n" +
			"  auditor       audit, sessions and recordings, read-only\n" +
			"  approver      access requests: read, approve, deny, revoke, as you (your own never)\n" +
			"The token is yours: its decisions on access requests count as your own.\n" +
			"The secret is printed once; the cluster keeps only its hash.",
		RunE: func(_ *cobra.Command, args []string) error {
			if ttl < 0 {
				return usagef("--ttl %s is negative", ttl)
			}
			if !slices.Contains(raftstore.ServiceRoles, scope) {
				return usagef("--scope %q is not one of %s", scope, strings.Join(raftstore.ServiceRoles, ", "))
			}
			secret, stored, err := v.sh.control.CreateServiceToken(v.ctx, v.controlActor(), control.ServiceTokenRequest{Name: args[0], Scope: scope, TTL: ttl})
			if err != nil {
				return err
			}
			return v.showNewServiceToken(secret, stored, func() error {
				fmt.Fprintf(v.out, "Service token %s (%s), scope %s, expires %s:\n\n  %s\n\n", stored.Name, stored.ID, stored.Role, expiry(v.sh.now(), stored.ExpiresAt), secret)
				_, err := fmt.Fprintf(v.out, "It is shown only this once. Send it as \"Authorization: Bearer <token>\". To revoke it: service-tokens revoke %s\n", stored.ID)
				return err
			})
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token stays valid (0: until revoked)")
	create.Flags().StringVar(&scope, "scope", raftstore.ServiceRoleAdmin, "what the token reaches: "+strings.Join(raftstore.ServiceRoles, ", "))
	v.completeFlag(create, "scope", fixed(raftstore.ServiceRoles...))
	return create
}

func (v *invocation) serviceTokensLsCmd() *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List API service tokens", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			_, toks, err := v.state().ServiceTokens(nil)
			if err != nil {
				return err
			}
			views, ids := []serviceTokenView{}, []string{}
			for _, t := range toks {
				views = append(views, newServiceTokenView(t))
				ids = append(ids, t.ID)
			}
			now := v.sh.now()
			return v.emit(views, ids, func(out io.Writer) error {
				tb := newTable(out, "ID", "NAME", "SCOPE", "CREATED BY", "CREATED", "EXPIRES", "LAST USED")
				for i, t := range views {
					tb.row(t.ID, t.Name, t.Scope, t.CreatedBy, toks[i].CreatedAt, expiry(now, toks[i].ExpiresAt), lastUsed(toks[i].LastUsedAt))
				}
				return tb.flush()
			})
		},
	}
}

func (v *invocation) serviceTokensRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use: "revoke ID|NAME", Short: "Revoke an API service token", Args: exactArgs("ID|NAME"),
		ValidArgsFunction: v.completeArgs(serviceTokenNames),
		RunE: func(_ *cobra.Command, args []string) error {
			t, err := findServiceToken(v.state(), args[0])
			if err != nil {
				return err
			}
			if _, err := v.sh.control.RevokeServiceToken(v.ctx, v.controlActor(), t.ID); err != nil {
				return err
			}
			return v.done(nil, "service token %s (%s) revoked", t.Name, t.ID)
		},
	}
}

// showNewServiceToken prints a token just created, the only time its secret
// is shown: JSON (the secret beside the token's view), the bare secret with
// --quiet, or prose for a person.
func (v *invocation) showNewServiceToken(secret string, stored *raftstore.ServiceToken, prose func() error) error {
	switch {
	case v.jsonOut:
		return writeJSON(v.out, struct {
			Token string `json:"token"`
			serviceTokenView
		}{secret, newServiceTokenView(stored)})
	case v.quiet:
		_, err := fmt.Fprintln(v.out, secret)
		return err
	}
	return prose()
}
