package agent

import (
	"github.com/rampart-ssh/rampart/agent/hostapply"
	"github.com/rampart-ssh/rampart/api"
)

// desiredFrom turns the cluster's view of this server into what the host
// appliers make true. Entitlements become sudo rules granted to the users
// that hold them.
func desiredFrom(st *api.AgentState, id *Identity) hostapply.Desired {
	d := hostapply.Desired{Sudo: map[string]hostapply.SudoRule{}, TrustedCAKeys: st.UserCAKeys, HostCertificates: id.HostCerts,
		AllowPersonalKeys: st.AllowPersonalKeys, SharedAccounts: st.SharedLogins}
	holders := map[string][]string{}
	for _, u := range st.Users {
		d.Users = append(d.Users, hostapply.User{Name: u.Name, UID: u.UID, Groups: u.Groups, Status: hostapply.Status(u.Status)})
		if u.Status == string(hostapply.StatusActive) {
			for _, s := range u.Sudo {
				holders[s] = append(holders[s], u.Name)
			}
		}
	}
	for _, g := range st.Groups {
		d.Groups = append(d.Groups, hostapply.Group{Name: g.Name, GID: g.GID})
	}
	for _, e := range st.Entitlements {
		if len(holders[e.Name]) == 0 {
			continue
		}
		rule := hostapply.SudoRule{RunAs: e.RunAs, NoPasswd: e.NoPasswd, NoExec: e.NoExec, SetEnv: e.SetEnv, EnvKeep: e.EnvKeep, Users: holders[e.Name]}
		for _, c := range e.Commands {
			rule.Commands = append(rule.Commands, hostapply.SudoCommand{Path: c.Path, Args: c.Args})
		}
		d.Sudo[e.Name] = rule
	}
	return d
}
