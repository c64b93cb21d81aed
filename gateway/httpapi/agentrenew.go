package httpapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/http"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/raftstore"
)

// replacedMessage is what a certificate for a key that is no longer the
// server's agent key is told.
const replacedMessage = "this agent certificate was replaced (renewed or re-enrolled): the cluster accepts only the newest certificate of server %s; " +
	"an agent that holds no newer one must enroll again"

// requireAgentRenewal is requireAgent for POST /v1/agents/renew, which also
// admits a certificate for the key the last renewal replaced, so that an
// agent whose renewal answer was lost can fetch its new certificate (see
// agentRenew).
func (s *Server) requireAgentRenewal(h func(http.ResponseWriter, *http.Request, *raftstore.Server)) http.HandlerFunc {
	return s.agentGate(h, true)
}

// checkAgentKey admits leaf only if its key is the server's agent key (or
// the server records none: registered by hand, or enrolled before keys were
// recorded), or, with retiredMayRenew, the key the last renewal replaced.
// It writes the refusal itself. A follower that has not applied a renewal
// yet would refuse the renewed certificate, so a mismatch is decided only
// after the local replica has caught up with the leader (ConsistentRead);
// the server is then read again and checked as requireAgent does.
func (s *Server) checkAgentKey(w http.ResponseWriter, r *http.Request, srv *raftstore.Server, leaf *x509.Certificate, retiredMayRenew bool) (*raftstore.Server, bool) {
	keyHash, err := raftstore.HashAgentKey(leaf.PublicKey)
	if err != nil {
		s.writeError(w, r, Errorf(http.StatusUnauthorized, "the agent certificate's public key is not usable"))
		return nil, false
	}
	accepted := func(srv *raftstore.Server) bool {
		return srv.AgentKeyHash == "" || keyHash == srv.AgentKeyHash || (retiredMayRenew && keyHash == srv.PrevAgentKeyHash)
	}
	if accepted(srv) {
		return srv, true
	}
	if err := s.store.ConsistentRead(r.Context()); err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	_, fresh, err := s.store.State().ServerByID(nil, srv.ID)
	switch {
	case err != nil:
		s.writeError(w, r, err)
		return nil, false
	case fresh == nil:
		s.writeError(w, r, Errorf(http.StatusGone, "server %s was removed from Rampart; enroll it again", srv.ID))
		return nil, false
	case fresh.MachineID != "" && r.Header.Get(api.MachineIDHeader) != fresh.MachineID:
		s.logger.Warn("agent credential used from another machine", "server", srv.ID, "remote", r.RemoteAddr)
		s.writeError(w, r, Errorf(http.StatusConflict, "this agent's credential belongs to another machine (a cloned image?): enroll this one with its own token"))
		return nil, false
	case !accepted(fresh):
		s.logger.Warn("replaced agent certificate refused", "server", srv.ID, "remote", r.RemoteAddr, "path", r.URL.Path,
			"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC())
		// A client that pooled this connection handshakes again next time,
		// with whatever newer certificate it has.
		w.Header().Set("Connection", "close")
		s.writeError(w, r, Errorf(http.StatusUnauthorized, replacedMessage, srv.ID))
		return nil, false
	}
	return fresh, true
}

// agentRenew serves POST /v1/agents/renew: an agent presenting its current,
// still valid certificate (requireAgent: its server is enrolled, from the
// same machine, and this is the certificate of its agent key) trades a new
// public key for a fresh certificate. The server's agent key moves to the
// new key (ServerAgentKey) before the certificate is issued: from then on
// the old certificate is refused everywhere.
//
// The answer can be lost after the key has moved. The agent keeps its new
// key on disk until it holds the certificate, and asks again with the same
// key and the old certificate: the certificate of the key the last renewal
// replaced may still ask, for the key that replaced it only: that moves
// nothing and issues that key's certificate again. It gains nobody
// anything, since the certificate is useless without the new private key,
// and it ends with the old certificate's validity or the next renewal. A
// removed server's agent, or one whose certificate has expired, cannot
// renew: it enrolls again.
func (s *Server) agentRenew(w http.ResponseWriter, r *http.Request, srv *raftstore.Server) {
	var req api.AgentRenewRequest
	if err := readJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	pub, err := parseAgentPublicKey(req.PublicKey)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	newKey, err := raftstore.HashAgentKey(pub)
	if err != nil {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "public_key: %v", err))
		return
	}
	leaf := r.TLS.VerifiedChains[0][0]
	presented, err := raftstore.HashAgentKey(leaf.PublicKey)
	if err != nil {
		s.writeError(w, r, Errorf(http.StatusUnauthorized, "the agent certificate's public key is not usable"))
		return
	}
	retry := srv.AgentKeyHash != "" && presented != srv.AgentKeyHash // the replaced key (requireAgentRenewal)
	switch {
	case retry && newKey != srv.AgentKeyHash:
		s.logger.Warn("replaced agent certificate refused", "server", srv.ID, "remote", r.RemoteAddr, "path", r.URL.Path,
			"serial", leaf.SerialNumber.String(), "reason", "renewal for another key than the one that replaced it")
		s.writeError(w, r, Errorf(http.StatusUnauthorized, replacedMessage, srv.ID))
		return
	case retry:
		s.logger.Info("agent renewal asked again with the replaced certificate; issuing the new key's certificate again",
			"server", srv.Name, "server_id", srv.ID)
	case newKey == presented:
		// A renewal rotates the key: the old one may have been exposed for
		// as long as the old certificate was valid.
		s.writeError(w, r, Errorf(http.StatusBadRequest, "renewal needs a new key pair; this is the key of the current certificate"))
		return
	case newKey == srv.PrevAgentKeyHash:
		s.writeError(w, r, Errorf(http.StatusBadRequest, "renewal needs a new key pair; this key was retired by the last renewal"))
		return
	}
	// A compare-and-set on the leader: it refuses when the presented key
	// was replaced meanwhile (by a concurrent renewal, or one this node has
	// not applied yet), and changes nothing when this renewal is repeated.
	_, err = s.store.Apply(r.Context(), &raftstore.ServerAgentKey{ID: srv.ID, KeyHash: newKey, Replaces: presented, Now: s.now().UTC()})
	switch {
	case errors.Is(err, raftstore.ErrNotFound):
		s.writeError(w, r, Errorf(http.StatusGone, "server %s was removed from Rampart; enroll it again", srv.ID))
		return
	case errors.Is(err, raftstore.ErrConflict):
		s.logger.Warn("replaced agent certificate refused", "server", srv.ID, "remote", r.RemoteAddr, "path", r.URL.Path,
			"serial", leaf.SerialNumber.String(), "err", err)
		s.writeError(w, r, Errorf(http.StatusUnauthorized, replacedMessage, srv.ID))
		return
	case err != nil:
		s.writeError(w, r, err)
		return
	}
	resp, err := s.cluster.RenewAgent(r.Context(), srv, &req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// agentHostCerts serves POST /v1/agents/hostcerts: an enrolled agent, over
// its current certificate, gets its server's host certificates again, for
// the host keys pinned at enrollment (never for keys it names: enrollment
// never moves a server), signed by the current host CA. Agents ask when two
// thirds of their certificates' lifetime have passed, or when the host CA
// changed.
func (s *Server) agentHostCerts(w http.ResponseWriter, r *http.Request, srv *raftstore.Server) {
	resp, err := s.cluster.RenewHostCerts(r.Context(), srv)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseAgentPublicKey checks that text is one PEM "PUBLIC KEY" of a kind and
// size the cluster signs for agents: ECDSA P-256/P-384, Ed25519, or RSA of
// 2048 bits or more.
func parseAgentPublicKey(text string) (crypto.PublicKey, error) {
	pub, err := ca.ParsePublicKeyPEM(text)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "%v", err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, Errorf(http.StatusBadRequest, "public_key: ECDSA keys must be P-256 or P-384")
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, Errorf(http.StatusBadRequest, "public_key: RSA keys must have at least 2048 bits")
		}
	default:
		return nil, Errorf(http.StatusBadRequest, "public_key: use an ECDSA, Ed25519 or RSA key")
	}
	return pub, nil
}
