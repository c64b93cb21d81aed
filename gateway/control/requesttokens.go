package control

import (
	"net/http"

	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Who a service token decides access requests as. A token is not a person,
// and the rules of requests are about people: nobody approves their own
// request, and two approvals come from two people. So a token's decisions
// count as its owner's, the person who created it in the admin shell
// (raftstore.ServiceToken OwnerID): a token alice owns cannot approve
// alice's request, and alice's approval and her token's are one approval.

// errApproverNeedsPerson: an approver token made by no person would
// approve as nobody.
var errApproverNeedsPerson = &fault.Error{Status: http.StatusBadRequest, Code: "invalid_scope",
	Msg: "an approver token approves as the person who creates it: create it in the admin shell (service-tokens create NAME --scope approver)"}

// TokenDecider returns who tok decides access requests as: its owner, a
// person who must still be active (an approver token then reaches only the
// projects its owner approves for; an admin token any project, as an
// administrator). A token with no owner (bootstrap's, or one another token
// created) may deny and revoke when it is an admin token, as itself
// ("api:" and its name), but never approve: an approval must be a person's.
func TokenDecider(st *raftstore.State, tok *raftstore.ServiceToken, approve bool) (raftstore.Decider, error) {
	admin := tok.Role == raftstore.ServiceRoleAdmin
	if tok.OwnerID == "" {
		if approve || !admin {
			return raftstore.Decider{}, forbidden("token %s belongs to no person, and a decision on an access request counts as its owner's: use a token a person created in the admin shell", tok.Name)
		}
		return raftstore.Decider{ID: "api:" + tok.Name, Login: "api:" + tok.Name, Admin: true}, nil
	}
	_, u, err := st.UserByID(nil, tok.OwnerID)
	if err != nil {
		return raftstore.Decider{}, err
	}
	if u == nil || u.Status != raftstore.UserActive {
		return raftstore.Decider{}, forbidden("the person who owns token %s is not an active user", tok.Name)
	}
	return raftstore.Decider{ID: u.ID, Login: u.Login + " (api:" + tok.Name + ")", Admin: admin}, nil
}
