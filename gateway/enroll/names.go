package enroll

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// What a target may be called. The target host CA certifies every name and
// the address an enrollment asks for; none of them may be a node's (its
// front door is vouched for by the node host CA alone, and a target
// certified for a node's name could stand in for it wherever a client
// trusts both CAs), and every name must match the project's name rules.

// canonicalName is a name or address as the checks compare it: a name
// lowercased, an IP address in its canonical form.
func canonicalName(s string) string {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap().String()
	}
	return strings.ToLower(strings.TrimSuffix(s, "."))
}

// nodeNames are the names and addresses that belong to the cluster's nodes:
// every address in the node table, the names each node's front door
// certificate is for (as each node records them), and this node's own
// (its host names and the addresses it listens on or advertises).
func (s *Service) nodeNames() map[string]bool {
	out := map[string]bool{}
	addHost := func(hostport string) {
		if host, _, err := net.SplitHostPort(hostport); err == nil && host != "" {
			if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
				out[canonicalName(host)] = true
			}
		}
	}
	if _, nodes, err := s.store.State().Nodes(nil); err == nil {
		for _, node := range nodes {
			for _, a := range []string{node.RaftAddr, node.APIAddr, node.SSHAddr} {
				addHost(a)
			}
			for _, h := range node.HostNames {
				out[canonicalName(h)] = true
			}
		}
	}
	for _, h := range s.cfg.NodeHostNames {
		out[canonicalName(h)] = true
	}
	for _, l := range s.cfg.Targets.Listeners {
		if !l.Addr().IsUnspecified() {
			out[canonicalName(l.Addr().String())] = true
		}
	}
	return out
}

// checkTargetNames refuses (and audits) an enrollment into project whose
// name, alt names or address belong to a node, or whose names are outside
// the project's name rules.
func (s *Service) checkTargetNames(req *api.EnrollRequest, project string) error {
	nodes := s.nodeNames()
	for _, name := range append(append([]string{req.Name}, req.AltNames...), req.Addr) {
		if nodes[canonicalName(name)] {
			return s.refuseName(req, project, name, "node name",
				fault.Errorf(http.StatusForbidden, "%s is a name or address of a node of this cluster: a target cannot be enrolled under it", name))
		}
	}
	_, p, err := s.store.State().ProjectByName(nil, project)
	if err != nil || p == nil {
		return err // a missing project is refused when the server is recorded
	}
	for _, name := range append([]string{req.Name}, req.AltNames...) {
		if ip, err := netip.ParseAddr(name); err == nil {
			// An address among the names must be the server's own: a
			// certificate and a route for an address it does not have
			// would let it stand in for whoever does.
			if canonicalName(ip.String()) != canonicalName(req.Addr) {
				return s.refuseName(req, project, name, "address not its own",
					fault.Errorf(http.StatusForbidden, "%s is not this server's address (%s): an address among its names must be its own", name, req.Addr))
			}
			continue // addresses are not names: the rules are for names
		}
		if !p.Settings.AllowsServerName(name) {
			return s.refuseName(req, project, name, "name rules",
				fault.Errorf(http.StatusForbidden, "the name %s is outside project %s's server name rules (%s): an administrator sets them with projects set %s --server-names",
					name, project, strings.Join(p.Settings.ServerNames, ", "), project))
		}
	}
	return nil
}

// refuseName audits and logs an enrollment refused for a name or address it
// asked for (project is empty when refused before admission), and returns
// err, the answer.
func (s *Service) refuseName(req *api.EnrollRequest, project, name, reason string, err error) error {
	serverName, requested, method, addr := raftstore.ClientText(req.Name), raftstore.ClientText(name), raftstore.ClientText(req.Method), raftstore.ClientText(req.Addr)
	s.audit.Record(EventEnrollmentRefuse, "agent", map[string]string{"server": serverName, "requested_name": requested, "project": project,
		"method": method, "addr": addr, "reason": reason})
	s.logger.Warn("refused enrollment: "+reason, "method", method, "server_name", serverName, "requested_name", requested,
		"project", project, "addr", addr, "err", err)
	return err
}
