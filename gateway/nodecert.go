package gateway

import (
	"os"
	"time"

	"github.com/rampart-ssh/rampart/gateway/authority"
)

// newNodeCertRenewer builds the renewer of the node's TLS certificate over
// the data directory's tls/node.key and tls/node.crt.
func (n *Node) newNodeCertRenewer() *authority.NodeCertRenewer {
	var stored time.Time
	if fi, err := os.Stat(n.dir.path("tls", "node.crt")); err == nil {
		stored = fi.ModTime()
	}
	return n.keys.NodeCertRenewer(n.tls, nodeCertFiles{n.dir}, n.nodeCertTTL(), stored,
		func(typ string, fields map[string]string) { n.audit.Record(typ, "node:"+n.id, fields) })
}

// nodeCertTTL is how long node certificates are valid (cluster.node_cert_validity).
func (n *Node) nodeCertTTL() time.Duration {
	if v := n.cfg.Cluster.NodeCertValidity; v > 0 {
		return v
	}
	return 2 * 365 * 24 * time.Hour
}

// nodeCertFiles are the node's TLS key and certificate in the data directory.
type nodeCertFiles struct{ dir dataDir }

func (f nodeCertFiles) ReadKey() ([]byte, error) { return f.dir.readFile("tls", "node.key") }

func (f nodeCertFiles) WriteCert(certPEM []byte) error {
	return f.dir.writeFile(certPEM, "tls", "node.crt")
}
