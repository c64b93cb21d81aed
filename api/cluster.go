package api

// JoinRequest is POSTed by a new node to /v1/cluster/join with a join token's
// secret. The node keeps its private key; it sends only the public key.
type JoinRequest struct {
	Secret    string   `json:"secret"`
	NodeID    string   `json:"node_id"`
	PublicKey string   `json:"public_key"` // PEM, PKIX
	IPs       []string `json:"ips"`
	RaftAddr  string   `json:"raft_addr"`
	APIAddr   string   `json:"api_addr"`
	SSHAddr   string   `json:"ssh_addr"`
}

// JoinResponse carries the node's certificate and the cluster CA.
type JoinResponse struct {
	ClusterID string `json:"cluster_id"`
	CertPEM   string `json:"cert_pem"`
	CAPEM     string `json:"ca_pem"`
}

// VoterRequest is POSTed to /v1/cluster/join/voter by a node that holds its
// certificate (mutual TLS) and has started raft: the leader adds it as a
// non-voter that receives the log.
type VoterRequest struct {
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	SSHAddr  string `json:"ssh_addr"`
}

// VoterResponse tells a joining node the raft index it must apply before it
// asks (POST /v1/cluster/join/promote) to become a voter.
type VoterResponse struct {
	Index uint64 `json:"index"`
}

// Error is the body of every non-2xx API response. Message is meant for the
// person reading it; it never carries internals.
type Error struct {
	Error string `json:"error"`
	// Code is a stable, machine-readable reason a server may add; clients
	// pass it on (client.Error.Code) and leave it empty when absent.
	Code string `json:"code,omitempty"`
}

// Health is the unauthenticated /v1/health answer.
type Health struct {
	Status    string `json:"status"`
	Node      string `json:"node"`
	Leader    bool   `json:"leader"`
	HasLeader bool   `json:"has_leader"`
}

// ClusterStatus is GET /v1/cluster/status: one node's view of the cluster
// (raftstore.Status is this type).
type ClusterStatus struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	LeaderAddr   string `json:"leader_addr"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// StateDigest is the SHA-256 of the node's replica of the tables.
	StateDigest string          `json:"state_digest"`
	Members     []ClusterMember `json:"members"`
}

// ClusterMember is one server of the raft configuration in a ClusterStatus.
type ClusterMember struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr,omitempty"`
	SSHAddr  string `json:"ssh_addr,omitempty"`
	Voter    bool   `json:"voter"`
	Leader   bool   `json:"leader"`
}
