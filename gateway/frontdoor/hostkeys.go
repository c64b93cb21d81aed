package frontdoor

import gossh "golang.org/x/crypto/ssh"

// SetHostCertificate replaces the host certificate the front door offers,
// from the next connection on, and keeps its plain host key: a node re-signs
// its key when the cluster's host CA rotates. cert must be a certificate
// signer for the same host key (gossh.NewCertSigner).
func (s *Server) SetHostCertificate(cert gossh.Signer) {
	// gliderlabs keeps one host signer per key type, under its own lock;
	// a certificate's type differs from its plain key's.
	s.srv.AddHostKey(cert)
}
