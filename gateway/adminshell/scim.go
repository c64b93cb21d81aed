package adminshell

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/raftstore"
)

// scim tokens: the provisioning tokens an identity provider's SCIM client
// authenticates with. They open /scim/v2/ and nothing else; secrets are
// printed once and the cluster keeps their hashes.

func (v *invocation) scimCmd() *cobra.Command {
	tokens := group("tokens", "Provisioning tokens for the IdP's SCIM client", []string{"token"},
		v.scimTokensCreateCmd(), v.scimTokensLsCmd(), v.scimTokensRevokeCmd())
	return group("scim", "SCIM 2.0 provisioning from the identity provider (docs/scim.md)", nil, tokens)
}

func (v *invocation) scimTokensCreateCmd() *cobra.Command {
	var ttl time.Duration
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a provisioning token for SCIM (shown once)", Args: exactArgs("NAME"),
		RunE: func(_ *cobra.Command, args []string) error {
			if ttl < 0 {
				return usagef("--ttl %s is negative", ttl)
			}
			secret, stored, err := v.sh.control.CreateProvisioningToken(v.ctx, v.controlActor(), args[0], ttl)
			if err != nil {
				return err
			}
			return v.showNewServiceToken(secret, stored, func() error {
				fmt.Fprintf(v.out, "Provisioning token %s (%s), expires %s:\n\n  %s\n\n", stored.Name, stored.ID, expiry(v.sh.now(), stored.ExpiresAt), secret)
				_, err := fmt.Fprintf(v.out, "It is shown only this once. Give it to the IdP's SCIM client as its bearer token, with the base URL\nhttps://<node>:8443/scim/v2. To revoke it: scim tokens revoke %s\n", stored.ID)
				return err
			})
		},
	}
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token stays valid (0: until revoked)")
	return create
}

// provisioningTokens lists the service tokens of scope provisioning.
func provisioningTokens(st *raftstore.State) ([]*raftstore.ServiceToken, error) {
	_, toks, err := st.ServiceTokens(nil)
	var out []*raftstore.ServiceToken
	for _, t := range toks {
		if t.Role == raftstore.ServiceRoleProvisioning {
			out = append(out, t)
		}
	}
	return out, err
}

func (v *invocation) scimTokensLsCmd() *cobra.Command {
	return &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List provisioning tokens", Args: exactArgs(),
		RunE: func(*cobra.Command, []string) error {
			toks, err := provisioningTokens(v.state())
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
				tb := newTable(out, "ID", "NAME", "CREATED BY", "CREATED", "EXPIRES")
				for i, t := range views {
					tb.row(t.ID, t.Name, t.CreatedBy, toks[i].CreatedAt, expiry(now, toks[i].ExpiresAt))
				}
				return tb.flush()
			})
		},
	}
}

func (v *invocation) scimTokensRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use: "revoke ID|NAME", Short: "Revoke a provisioning token", Args: exactArgs("ID|NAME"),
		ValidArgsFunction: v.completeArgs(serviceTokenNames),
		RunE: func(_ *cobra.Command, args []string) error {
			toks, err := provisioningTokens(v.state())
			if err != nil {
				return err
			}
			for _, t := range toks {
				if t.ID == args[0] || t.Name == args[0] {
					if _, err := v.sh.control.RevokeProvisioningToken(v.ctx, v.controlActor(), t.ID); err != nil {
						return err
					}
					return v.done(nil, "provisioning token %s (%s) revoked", t.Name, t.ID)
				}
			}
			return fmt.Errorf("provisioning token %q: %w", args[0], raftstore.ErrNotFound)
		},
	}
}
