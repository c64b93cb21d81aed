// Package enroll admits what joins the cluster: servers whose agents enroll
// (with a token, or their AWS or GCP instance identity) and renew their
// certificates, and nodes that join with a join token. It also sweeps
// expired tokens away.
package enroll

import (
	"context"
	"crypto"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/gateway/ca"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
	"github.com/rampart-ssh/rampart/raftstore"
)

const (
	// agentCertValidity: agents renew their certificate well before this.
	agentCertValidity = 30 * 24 * time.Hour
	// targetHostCertValidity: agents renew their host certificates when
	// two thirds of this have passed (agents.host_cert_validity).
	targetHostCertValidity = 90 * 24 * time.Hour
)

// Store is what enrollment and join need of the replicated store.
type Store interface {
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	ConsistentRead(ctx context.Context) error
	AddNonvoter(ctx context.Context, id, addr string) (uint64, error)
	AddVoter(ctx context.Context, id, addr string) error
}

// Certifier issues the certificates enrollment and join hand out, with the
// cluster's CAs (whose keys enrollment never sees).
type Certifier interface {
	// TargetHostCerts certifies each of keys for the server's names and
	// address with the active target host CA, valid for validity, and
	// returns the certificates (authorized_keys lines) and that CA's key.
	TargetHostCerts(srv *raftstore.Server, keys []gossh.PublicKey, validity time.Duration) (certs []string, caKey string, err error)
	// IssueTLS issues a cluster TLS certificate (PEM) of role (api.RoleNode
	// or api.RoleAgent) for id and pub. A key or id it cannot certify is
	// refused with an error wrapping ca.ErrCertRequest (answered 400 with
	// the reason); any other error is the cluster's own (its CA could not
	// be loaded), never shown to the caller.
	IssueTLS(role, id string, pub crypto.PublicKey, ips []net.IP, dnsNames []string, validity time.Duration) ([]byte, error)
	// EnsureUserCA creates the project's user CA unless it has one.
	EnsureUserCA(ctx context.Context, project string) error
}

// Recorder records audit events.
type Recorder interface {
	Record(typ, actor string, fields map[string]string)
}

// AWS configures AWS auto-enrollment (agents.aws); off while CertsFile is
// empty. Its fields are the node configuration's, so one converts to the
// other.
type AWS struct {
	CertsFile     string
	Accounts      map[string]string
	MaxAge        time.Duration
	AllowReenroll bool
}

// GCP configures GCP auto-enrollment (agents.gcp); off while Audience is
// empty.
type GCP struct {
	Issuer        string
	Audience      string
	Projects      map[string]string
	MaxAge        time.Duration
	AllowReenroll bool
}

// Config is what a node's configuration says about enrollment and join.
type Config struct {
	// NodeID is this node's id, named in refusals of cloud enrollment it is
	// not configured for.
	NodeID string
	// AgentCertValidity (agents.cert_validity) and HostCertValidity
	// (agents.host_cert_validity) bound agent and target host
	// certificates; zero means 30 and 90 days.
	AgentCertValidity, HostCertValidity time.Duration
	// NodeCertValidity bounds the certificates of joining nodes.
	NodeCertValidity time.Duration
	AWS              AWS
	GCP              GCP
	// NodeHostNames are the names of this node's front door host
	// certificate, which no target may be enrolled under.
	NodeHostNames []string
	// Targets is where servers may be registered; its listeners are this
	// node's addresses, which no target may be enrolled under either.
	Targets targetaddr.Rule
}

// Service admits servers and nodes. It implements the cluster operations of
// the HTTPS API (httpapi.Cluster). Build one per node with New: it keeps the
// node's cloud identity verifiers between enrollments.
type Service struct {
	store  Store
	certs  Certifier
	audit  Recorder
	cfg    Config
	now    func() time.Time
	logger *slog.Logger
	cloud  cloudVerifiers
}

// New returns the enrollment service of a node.
func New(store Store, certs Certifier, audit Recorder, cfg Config, now func() time.Time, logger *slog.Logger) *Service {
	return &Service{store: store, certs: certs, audit: audit, cfg: cfg, now: now, logger: logger}
}

// EnsureUserCA creates the project's user CA unless it has one.
func (s *Service) EnsureUserCA(ctx context.Context, project string) error {
	return s.certs.EnsureUserCA(ctx, project)
}

// issueTLS issues through the certifier and makes a refused request the
// requester's mistake: a 400 saying why.
func (s *Service) issueTLS(role, id string, pub crypto.PublicKey, ips []net.IP, dnsNames []string, validity time.Duration) ([]byte, error) {
	certPEM, err := s.certs.IssueTLS(role, id, pub, ips, dnsNames, validity)
	if errors.Is(err, ca.ErrCertRequest) {
		return nil, fault.Errorf(http.StatusBadRequest, "%v", err)
	}
	return certPEM, err
}
