package httpapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// clientSetupConfig is the node's part of GET /v1/client/setup: its -J
// address and the host patterns the operator publishes.
type clientSetupConfig struct {
	jumpHost     string
	hostPatterns []string
}

// SetClientSetup sets what GET /v1/client/setup says about this node: what
// people put after -J, and the host patterns of the cluster's servers.
func (s *Server) SetClientSetup(jumpHost string, hostPatterns []string) {
	s.clientSetup = clientSetupConfig{jumpHost: jumpHost, hostPatterns: slices.Clone(hostPatterns)}
}

// clientSetupHandler serves GET /v1/client/setup (public): what `rampart
// setup` writes into a person's ~/.ssh, and nothing more. The jump host,
// the nodes' host names and the host CA keys are public already (the front
// doors present them); the nodes' addresses, often private, are left out,
// and no server or person is named.
func (s *Server) clientSetupHandler(w http.ResponseWriter, r *http.Request) {
	if err := s.store.CheckFresh(); err != nil {
		s.writeError(w, r, err)
		return
	}
	st := s.store.State()
	idx, nodes, err := st.Nodes(nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := api.ClientSetup{JumpHost: s.clientSetup.jumpHost, NodeNames: []string{}, HostPatterns: []string{},
		NodeHostCAKeys: []string{}, HostCAKeys: []string{}}
	out.HostPatterns = append(out.HostPatterns, s.clientSetup.hostPatterns...)
	out.NodeNames = append(out.NodeNames, api.JumpHostNames(s.clientSetup.jumpHost)...)
	for _, n := range nodes {
		out.NodeNames = append(out.NodeNames, api.PublicKnownHostsNames(n.SSHAddr, n.HostNames)...)
	}
	slices.Sort(out.NodeNames)
	out.NodeNames = slices.Compact(out.NodeNames)
	for _, ca := range []struct {
		kind raftstore.CAKind
		keys *[]string
	}{{raftstore.CANodeHost, &out.NodeHostCAKeys}, {raftstore.CAHost, &out.HostCAKeys}} {
		_, recs, err := st.CAsFor(nil, ca.kind, "")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, rec := range recs {
			if rec.State != raftstore.CARetired {
				*ca.keys = append(*ca.keys, strings.TrimSpace(rec.PublicKey))
			}
		}
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, out)
}
