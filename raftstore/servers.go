package raftstore

import (
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
)

const tableServers = "servers"

// How a server joined the cluster.
const (
	EnrollToken  = "token"
	EnrollAWS    = "aws"
	EnrollGCP    = "gcp"
	EnrollManual = "manual"
)

// DefaultSSHPort is a server's sshd port unless it says otherwise.
const DefaultSSHPort = 22

// ServerSeenResolution is how far LastSeen must move before a heartbeat is
// written. A ServerSeen within it of the recorded LastSeen changes nothing:
// agents heartbeat far more often than anyone needs LastSeen to move, and
// every write would wake each watcher of the servers table (agents, admin
// listings) for nothing. LastSeen is therefore accurate to this resolution.
const ServerSeenResolution = 30 * time.Second

const (
	maxServerIDLen   = 128
	maxAltNames      = 64
	maxHostKeys      = 16
	maxLabels        = 64
	maxLabelValueLen = 256
	maxCloudIDLen    = 256
)

var (
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)
)

// Server is an enrolled target host.
type Server struct {
	ID      string
	Project string
	// Name is canonical: lowercase and DNS-ish, unique across the names and
	// alt names of every server.
	Name string
	// AltNames are other names (or IP addresses) the server answers to;
	// lowercase, sorted, unique, and no other server's name or alt name.
	AltNames []string
	// Addr is the IP address or host name the cluster dials; several servers
	// may share one (behind NAT, on different ports).
	Addr    string
	SSHPort int
	// HostKeys are the server's plain host public keys, one per entry in
	// authorized_keys format without options.
	HostKeys []string
	Labels   map[string]string
	// EnrollMethod is EnrollToken, EnrollAWS, EnrollGCP or EnrollManual.
	EnrollMethod string
	MachineID    string
	// InstanceID is the cloud instance id; unique when set.
	InstanceID  string
	LastSeen    time.Time
	CreatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
	// LastEventSeq is the highest login-event seq recorded from the
	// server's agent (AgentEventsAppend); an upsert keeps it.
	LastEventSeq uint64 `json:"last_event_seq,omitempty"`
	// AgentKeyHash is HashAgentKey of the public key of the server's agent:
	// the cluster accepts that agent's certificate for this key only, so
	// a renewal or a re-enrollment kills every older certificate.
	// Enrollment sets it (ServerUpsert with SetAgentKey), a renewal moves it
	// (ServerAgentKey), any other upsert keeps it. Empty for a server
	// registered by hand (no agent), or enrolled before keys were recorded:
	// its agent's first renewal records one.
	AgentKeyHash string `json:"agent_key_hash,omitempty"`
	// PrevAgentKeyHash is the key the last renewal replaced. A certificate
	// for it may only fetch the current key's certificate again (a renewal
	// whose answer was lost); an enrollment clears it.
	PrevAgentKeyHash string `json:"prev_agent_key_hash,omitempty"`
	// AgentKeySince is when AgentKeyHash was recorded.
	AgentKeySince time.Time `json:"agent_key_since,omitzero"`
}

func init() {
	registerTable(tableDef{
		name:   tableServers,
		newObj: func() any { return new(Server) },
		schema: &memdb.TableSchema{
			Name: tableServers,
			Indexes: map[string]*memdb.IndexSchema{
				"id":       {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				"project":  {Name: "project", Indexer: &memdb.StringFieldIndex{Field: "Project"}},
				"name":     {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name", Lowercase: true}},
				"alt_name": {Name: "alt_name", Unique: true, AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "AltNames", Lowercase: true}},
				"addr":     {Name: "addr", Indexer: &memdb.StringFieldIndex{Field: "Addr", Lowercase: true}},
				"instance": {Name: "instance", Unique: true, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "InstanceID"}},
			},
		},
	})
	registerCommand(ServerUpsertType, func() Command { return new(ServerUpsert) })
	registerCommand(ServerDeleteType, func() Command { return new(ServerDelete) })
	registerCommand(ServerSeenType, func() Command { return new(ServerSeen) })
}

// canonicalAddr lowercases a host name and writes an IP address in its
// canonical form, so that "::FFFF:0A00:0001" and "::ffff:10.0.0.1" meet.
func canonicalAddr(s string) string {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap().String()
	}
	return strings.ToLower(s)
}

// validHostOrIP accepts a DNS-ish name (any case) or an IP address.
func validHostOrIP(s string) bool { return api.ValidHostOrIP(s) }

func validServerID(id string) error {
	switch {
	case id == "":
		return invalidf("server id is empty")
	case len(id) > maxServerIDLen:
		return invalidf("server id is longer than %d bytes", maxServerIDLen)
	case hasControlRune(id) || strings.ContainsFunc(id, func(r rune) bool { return r == ' ' || r == '/' }):
		return invalidf("server id %q holds a space, slash or control character", id)
	}
	return nil
}

// ServerUpsert enrolls a server or replaces its record. The project must
// exist; the name and alt names must not be taken by another server
// (ErrConflict). CreatedAt and CreateIndex are kept, and so is LastSeen when
// the command carries none; an upsert that changes nothing writes nothing.
// An upsert of an enrolled server that is not an enrollment keeps what the
// enrollment recorded (keepEnrollment).
// The agent key (AgentKeyHash and its companions) changes only with
// SetAgentKey; otherwise the recorded one is kept, whatever Server carries.
type ServerUpsert struct {
	Server Server
	Now    time.Time
	// SetAgentKey records Server.AgentKeyHash as the agent's key and
	// forgets the previous one: an enrollment, after which no earlier
	// certificate of the server is accepted. An admin edit leaves it false,
	// so that it can neither move the key nor put back a stale one it read.
	SetAgentKey bool `json:",omitempty"`
}

func (c *ServerUpsert) Type() MessageType { return ServerUpsertType }

func (c *ServerUpsert) Validate() error {
	s := &c.Server
	if err := validServerID(s.ID); err != nil {
		return err
	}
	if !projectNameRE.MatchString(s.Project) {
		return invalidf("server %s: project name %q is not valid", s.ID, s.Project)
	}
	if !api.ValidServerName(s.Name) {
		return invalidf("server %s: name %q is not a DNS-style name", s.ID, s.Name)
	}
	if len(s.AltNames) > maxAltNames {
		return invalidf("server %s: more than %d alt names", s.ID, maxAltNames)
	}
	for _, n := range s.AltNames {
		if !validHostOrIP(n) {
			return invalidf("server %s: alt name %q is neither a DNS-style name nor an IP address", s.ID, n)
		}
	}
	if s.Addr == "" || !validHostOrIP(s.Addr) {
		return invalidf("server %s: address %q is neither a host name nor an IP address", s.ID, s.Addr)
	}
	if s.SSHPort != 0 && (s.SSHPort < 1 || s.SSHPort > 65535) {
		return invalidf("server %s: ssh port %d is outside 1..65535", s.ID, s.SSHPort)
	}
	if len(s.HostKeys) > maxHostKeys {
		return invalidf("server %s: more than %d host keys", s.ID, maxHostKeys)
	}
	for i, k := range s.HostKeys {
		if err := validHostKey(k); err != nil {
			return fmt.Errorf("server %s: host key %d: %w", s.ID, i+1, err)
		}
	}
	if len(s.Labels) > maxLabels {
		return invalidf("server %s: more than %d labels", s.ID, maxLabels)
	}
	for k, v := range s.Labels {
		if !labelKeyRE.MatchString(k) {
			return invalidf("server %s: label key %q is not valid", s.ID, k)
		}
		if err := validText("label "+k, v, maxLabelValueLen); err != nil {
			return fmt.Errorf("server %s: %w", s.ID, err)
		}
	}
	switch s.EnrollMethod {
	case "", EnrollToken, EnrollAWS, EnrollGCP, EnrollManual:
	default:
		return invalidf("server %s: enroll method %q is not token, aws, gcp or manual", s.ID, s.EnrollMethod)
	}
	if err := validText("machine id", s.MachineID, maxCloudIDLen); err != nil {
		return fmt.Errorf("server %s: %w", s.ID, err)
	}
	if err := validText("instance id", s.InstanceID, maxCloudIDLen); err != nil {
		return fmt.Errorf("server %s: %w", s.ID, err)
	}
	if c.SetAgentKey {
		if err := validAgentKeyHash("agent key hash", s.AgentKeyHash); err != nil {
			return fmt.Errorf("server %s: %w", s.ID, err)
		}
	}
	return nil
}

// validHostKey accepts one plain public key in authorized_keys format: no
// options, no certificate, nothing after it (a newline could smuggle a
// second line into known_hosts). Surrounding whitespace is trimmed on store.
func validHostKey(k string) error {
	k = strings.TrimSpace(k)
	if hasControlRune(k) {
		return invalidf("holds a control character")
	}
	pub, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(k))
	switch {
	case err != nil:
		return invalidf("not an authorized_keys public key: %v", err)
	case len(opts) > 0:
		return invalidf("carries options")
	case len(strings.TrimSpace(string(rest))) > 0:
		return invalidf("has trailing data")
	}
	if _, isCert := pub.(*ssh.Certificate); isCert {
		return invalidf("is a certificate, not a plain key")
	}
	return nil
}

// normalize puts s in its stored form: lowercase names, canonical address,
// sorted unique sets, defaults applied, empty collections nil.
func (s *Server) normalize() {
	s.Name = strings.ToLower(s.Name)
	alts := make([]string, 0, len(s.AltNames))
	for _, n := range s.AltNames {
		if n = canonicalAddr(n); n != s.Name {
			alts = append(alts, n)
		}
	}
	s.AltNames = sortedSet(alts)
	s.Addr = canonicalAddr(s.Addr)
	if s.SSHPort == 0 {
		s.SSHPort = DefaultSSHPort
	}
	keys := make([]string, len(s.HostKeys))
	for i, k := range s.HostKeys {
		keys[i] = strings.TrimSpace(k)
	}
	s.HostKeys = sortedSet(keys)
	if len(s.Labels) == 0 {
		s.Labels = nil
	} else {
		s.Labels = maps.Clone(s.Labels)
	}
	if s.EnrollMethod == "" {
		s.EnrollMethod = EnrollManual
	}
}

// sameServer compares everything but the raft indexes.
func sameServer(a, b *Server) bool {
	return a.ID == b.ID && a.Project == b.Project && a.Name == b.Name &&
		slices.Equal(a.AltNames, b.AltNames) && a.Addr == b.Addr && a.SSHPort == b.SSHPort &&
		slices.Equal(a.HostKeys, b.HostKeys) && maps.Equal(a.Labels, b.Labels) &&
		a.EnrollMethod == b.EnrollMethod && a.MachineID == b.MachineID && a.InstanceID == b.InstanceID &&
		a.LastSeen.Equal(b.LastSeen) && a.CreatedAt.Equal(b.CreatedAt) &&
		a.AgentKeyHash == b.AgentKeyHash && a.PrevAgentKeyHash == b.PrevAgentKeyHash && a.AgentKeySince.Equal(b.AgentKeySince)
}

func (c *ServerUpsert) apply(tx *writeTxn) (any, error) {
	s := c.Server
	s.normalize()
	if err := projectExistsTxn(tx, s.Project); err != nil {
		return nil, fmt.Errorf("server %s: %w", s.Name, err)
	}
	raw, err := tx.First(tableServers, "id", s.ID)
	if err != nil {
		return nil, fmt.Errorf("upsert server %s: %w", s.ID, err)
	}
	var old *Server
	if raw != nil {
		old = raw.(*Server)
		s.CreatedAt, s.CreateIndex = old.CreatedAt, old.CreateIndex
		s.LastEventSeq = old.LastEventSeq
		if s.LastSeen.IsZero() {
			s.LastSeen = old.LastSeen
		}
	} else {
		s.CreatedAt, s.CreateIndex = c.Now, tx.index
	}
	c.agentKey(&s, old)
	if err := c.keepEnrollment(&s, old); err != nil {
		return nil, err
	}
	if err := checkServerNamesTxn(tx.Txn, &s); err != nil {
		return nil, err
	}
	if old != nil && sameServer(old, &s) {
		cp := *old
		return &cp, nil // no-op: don't wake watchers
	}
	s.ModifyIndex = tx.index
	if err := tx.Insert(tableServers, &s); err != nil {
		return nil, fmt.Errorf("insert server %s: %w", s.ID, err)
	}
	return &s, tx.bump(tableServers)
}

// keepEnrollment keeps what an agent's enrollment established about a
// server through an upsert that is not an enrollment (an administrator's
// edit): the machine and instance ids that clone detection compares, how it
// enrolled, and its host keys (kept when the edit names none). The address
// and port, and a different set of host keys, are refused: enrollment never
// moves a server, and only the agent on it can vouch for a new address.
func (c *ServerUpsert) keepEnrollment(s, old *Server) error {
	if c.SetAgentKey || old == nil || old.EnrollMethod == EnrollManual {
		return nil
	}
	s.EnrollMethod, s.MachineID, s.InstanceID = old.EnrollMethod, old.MachineID, old.InstanceID
	if len(s.HostKeys) == 0 {
		s.HostKeys = old.HostKeys
	}
	switch {
	case s.Addr != old.Addr || s.SSHPort != old.SSHPort:
		return fmt.Errorf("%w: server %s was enrolled by its agent at %s port %d; its address cannot be changed by hand: enroll it again from its new address (or delete it first)",
			ErrConflict, old.Name, old.Addr, old.SSHPort)
	case !slices.Equal(s.HostKeys, old.HostKeys):
		return fmt.Errorf("%w: server %s was enrolled by its agent with its host keys; they cannot be changed by hand: enroll it again to record new ones",
			ErrConflict, old.Name)
	}
	return nil
}

// checkServerNamesTxn refuses s when one of its names (canonical or alt) is
// already a name or alt name of another server, or its instance id is
// another server's. The unique memdb indexes would silently let the newer
// row shadow the older one, so this check is what keeps names unambiguous.
func checkServerNamesTxn(tx *memdb.Txn, s *Server) error {
	names := append([]string{s.Name}, s.AltNames...)
	for _, n := range names {
		for _, index := range []string{"name", "alt_name"} {
			raw, err := tx.First(tableServers, index, n)
			if err != nil {
				return fmt.Errorf("check server name %s: %w", n, err)
			}
			if raw != nil && raw.(*Server).ID != s.ID {
				return fmt.Errorf("%w: name %s already belongs to server %s (%s)", ErrConflict, n, raw.(*Server).ID, raw.(*Server).Name)
			}
		}
	}
	// A name is looked up before an address (ServerByAddress), so a name
	// or alt name that is another server's address would take that
	// server's traffic, and an address that is another server's name would
	// be unreachable by it. Names and addresses stay apart across servers.
	for _, n := range names {
		if n == s.Addr {
			continue
		}
		it, err := tx.Get(tableServers, "addr", n)
		if err != nil {
			return fmt.Errorf("check server name %s: %w", n, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if other := raw.(*Server); other.ID != s.ID {
				return fmt.Errorf("%w: name %s is the address of server %s (%s)", ErrConflict, n, other.ID, other.Name)
			}
		}
	}
	for _, index := range []string{"name", "alt_name"} {
		raw, err := tx.First(tableServers, index, s.Addr)
		if err != nil {
			return fmt.Errorf("check server address %s: %w", s.Addr, err)
		}
		if raw != nil && raw.(*Server).ID != s.ID {
			return fmt.Errorf("%w: address %s is a name of server %s (%s)", ErrConflict, s.Addr, raw.(*Server).ID, raw.(*Server).Name)
		}
	}
	if s.InstanceID != "" {
		raw, err := tx.First(tableServers, "instance", s.InstanceID)
		if err != nil {
			return fmt.Errorf("check instance %s: %w", s.InstanceID, err)
		}
		if raw != nil && raw.(*Server).ID != s.ID {
			return fmt.Errorf("%w: instance %s is already enrolled as server %s (%s)", ErrConflict, s.InstanceID, raw.(*Server).ID, raw.(*Server).Name)
		}
	}
	return nil
}

// CheckServerNames is the name check of ServerUpsert, made on this replica
// without writing: ErrConflict when one of srv's names (or its instance id)
// belongs to another server. It lets a caller refuse a registration before
// spending anything on it; the upsert checks again on the leader.
func (s *State) CheckServerNames(srv Server) error {
	tx := s.ReadTxn()
	defer tx.Abort()
	srv.normalize() // copies what it changes
	return checkServerNamesTxn(tx, &srv)
}

// ServerDelete removes a server.
type ServerDelete struct {
	ID string
}

func (c *ServerDelete) Type() MessageType { return ServerDeleteType }

func (c *ServerDelete) Validate() error { return validServerID(c.ID) }

func (c *ServerDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableServers, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("delete server %s: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("server %s: %w", c.ID, ErrNotFound)
	}
	if err := tx.Delete(tableServers, raw); err != nil {
		return nil, fmt.Errorf("delete server %s: %w", c.ID, err)
	}
	// What its agent reported goes with it.
	applied, err := tx.First(tableAgentApplied, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("delete server %s: %w", c.ID, err)
	}
	if applied != nil {
		if err := tx.Delete(tableAgentApplied, applied); err != nil {
			return nil, fmt.Errorf("delete server %s: %w", c.ID, err)
		}
		if err := tx.bump(tableAgentApplied); err != nil {
			return nil, err
		}
	}
	return nil, tx.bump(tableServers)
}

// ServerSeen records a heartbeat. It moves LastSeen only when Now is at
// least ServerSeenResolution past the recorded LastSeen; otherwise (and when
// Now is earlier, as after a leader change with a slower clock) it writes
// nothing, so heartbeats neither wake watchers nor move LastSeen backwards.
// It leaves the server's ModifyIndex as it is. It returns the server as
// stored.
type ServerSeen struct {
	ID  string
	Now time.Time
}

func (c *ServerSeen) Type() MessageType { return ServerSeenType }

func (c *ServerSeen) Validate() error {
	if c.Now.IsZero() {
		return invalidf("server %s: heartbeat without a time", c.ID)
	}
	return validServerID(c.ID)
}

func (c *ServerSeen) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableServers, "id", c.ID)
	if err != nil {
		return nil, fmt.Errorf("server %s seen: %w", c.ID, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("server %s: %w", c.ID, ErrNotFound)
	}
	s := *raw.(*Server)
	if !s.LastSeen.IsZero() && c.Now.Sub(s.LastSeen) < ServerSeenResolution {
		return &s, nil
	}
	// ModifyIndex stays: it moves with what the server is (its names,
	// address, project, keys), which agents' state indexes follow; a
	// heartbeat changes none of that.
	s.LastSeen = c.Now
	if err := tx.Insert(tableServers, &s); err != nil {
		return nil, fmt.Errorf("update server %s: %w", c.ID, err)
	}
	return &s, tx.bump(tableServers)
}

// ServerByID returns the server, or nil.
func (s *State) ServerByID(ws memdb.WatchSet, id string) (uint64, *Server, error) {
	return getOne[Server](s, ws, tableServers, "id", id)
}

// ServerByInstance returns the server enrolled with a cloud instance id, or
// nil.
func (s *State) ServerByInstance(ws memdb.WatchSet, instanceID string) (uint64, *Server, error) {
	return getOne[Server](s, ws, tableServers, "instance", instanceID)
}

// ServersByProject lists the servers of project, ordered by id.
func (s *State) ServersByProject(ws memdb.WatchSet, project string) (uint64, []*Server, error) {
	return getAll[Server](s, ws, tableServers, "project", project)
}

// Servers lists every server, ordered by id.
func (s *State) Servers(ws memdb.WatchSet) (uint64, []*Server, error) {
	return getAll[Server](s, ws, tableServers, "id")
}

// ServerByAddress resolves what a user asked to reach, case-insensitively:
// first a canonical name, then an alt name, then an address. It returns nil
// when nothing matches, and ErrConflict when the name is only an address
// that several servers share: a jump must never guess which one was meant.
func (s *State) ServerByAddress(ws memdb.WatchSet, name string) (uint64, *Server, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	idx := maxIndexTxn(tx, ws, tableServers)
	if name == "" {
		return idx, nil, nil
	}
	key := canonicalAddr(name)
	for _, index := range []string{"name", "alt_name"} {
		ch, raw, err := tx.FirstWatch(tableServers, index, key)
		if err != nil {
			return 0, nil, fmt.Errorf("find server by %s: %w", index, err)
		}
		ws.Add(ch)
		if raw != nil {
			return idx, raw.(*Server), nil
		}
	}
	it, err := tx.Get(tableServers, "addr", key)
	if err != nil {
		return 0, nil, fmt.Errorf("find server by addr: %w", err)
	}
	ws.Add(it.WatchCh())
	first := it.Next()
	if first == nil {
		return idx, nil, nil
	}
	if second := it.Next(); second != nil {
		return idx, nil, fmt.Errorf("%w: address %s is shared by servers %s and %s: use a name", ErrConflict, key, first.(*Server).Name, second.(*Server).Name)
	}
	return idx, first.(*Server), nil
}
