package httpapi

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/raftstore"
)

// agentRenew serves POST /v1/agents/renew: an agent presenting its current,
// still valid certificate (requireAgent: its server is enrolled, from the
// same machine) trades a new public key for a fresh certificate. A removed
// server's agent, or one whose certificate has expired, cannot renew: it
// enrolls again.
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
	// A renewal rotates the key: the old one may have been exposed for as
	// long as the old certificate was valid.
	if old, ok := r.TLS.VerifiedChains[0][0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && old.Equal(pub) {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "renewal needs a new key pair; this is the key of the current certificate"))
		return
	}
	resp, err := s.cluster.RenewAgent(r.Context(), srv, &req)
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
	block, rest := pem.Decode([]byte(text))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, Errorf(http.StatusBadRequest, "public_key is not a PEM PUBLIC KEY")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, Errorf(http.StatusBadRequest, "public_key holds more than one PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "public_key is not a PKIX public key")
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
