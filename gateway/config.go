package gateway

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/auditexport"
	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/gateway/enroll"
	"github.com/rampart-ssh/rampart/gateway/monitor"
	"github.com/rampart-ssh/rampart/gateway/sshalg"
	"github.com/rampart-ssh/rampart/internal/configload"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Config is rampartd's configuration: one struct, loaded by viper from a YAML
// file, RAMPART_* environment variables and flags (in rising precedence), and
// validated once at start with every problem listed.
type Config struct {
	// NodeID names this node; empty means the id stored in the data dir, or a
	// new one on first start.
	NodeID  string `mapstructure:"node_id"`
	DataDir string `mapstructure:"data_dir"`
	// Dev runs the self-contained development setup: a key-encryption key
	// generated in the data dir, and a single node bootstrapping itself.
	Dev       bool      `mapstructure:"dev"`
	Listen    Addresses `mapstructure:"listen"`
	Advertise Addresses `mapstructure:"advertise"`
	Cluster   Cluster   `mapstructure:"cluster"`
	// KEKFile names the key-encryption key file; RAMPART_KEK may carry the key
	// itself (base64) instead.
	KEKFile string `mapstructure:"kek_file"`
	KEK     string `mapstructure:"kek"`
	Log     Log    `mapstructure:"log"`
	SSH     SSH    `mapstructure:"ssh"`
	OIDC    OIDC   `mapstructure:"oidc"`
	Login   Login  `mapstructure:"login"`
	DevIdP  DevIdP `mapstructure:"dev_idp"`
	Jump    Jump   `mapstructure:"jump"`
	Agents  Agents `mapstructure:"agents"`
	Memory  Memory `mapstructure:"memory"`
	// Recording bounds session recordings on this node.
	Recording Recording `mapstructure:"recording"`
	// Metrics says where /metrics, /healthz and /readyz are served.
	Metrics Metrics `mapstructure:"metrics"`
	// API bounds what the HTTPS API's service tokens may cost the cluster.
	API API `mapstructure:"api"`
	// SCIM bounds the SCIM service.
	SCIM SCIM `mapstructure:"scim"`
	// AuditExport ships the audit log to SIEMs (docs/audit-export.md).
	AuditExport AuditExport `mapstructure:"audit_export"`
	// Audit bounds the audit log's spill and retention (config_audit.go).
	Audit Audit `mapstructure:"audit"`
	// Console is the auditor's web console (gateway/console).
	Console Console `mapstructure:"console"`
	// AccessRequests configures this node's access-request notifications.
	AccessRequests AccessRequests `mapstructure:"access_requests"`
}

// Console configures the web console at https://<api>/console/. It signs
// people in with the oidc issuer (authorization code + PKCE).
type Console struct {
	Enabled bool `mapstructure:"enabled"`
	// ClientID and ClientSecret are the console's OAuth client; empty
	// ClientID means oidc.client_id and oidc.client_secret. An empty secret
	// makes it a public client.
	ClientID     string `mapstructure:"client_id"`
	ClientSecret string `mapstructure:"client_secret"`
	// RedirectURL is the callback the IdP knows; empty means
	// https://<advertise.api>/console/callback.
	RedirectURL string `mapstructure:"redirect_url"`
	// AuditorGroup may read sessions, recordings and audit; oidc.admin_group
	// may also end live sessions.
	AuditorGroup string `mapstructure:"auditor_group"`
	// IdleTimeout ends a console session unused for that long.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
}

func init() { defaults["access_requests.allow_private_webhooks"] = false }

// AccessRequests configures the webhooks this node posts new access
// requests to (docs/access-requests.md).
type AccessRequests struct {
	// AllowPrivateWebhooks lets webhooks be plain http and reach loopback,
	// private and link-local addresses; off, they must be https to public
	// addresses. For tests and closed labs.
	AllowPrivateWebhooks bool `mapstructure:"allow_private_webhooks"`
}

// AuditExport configures the cluster's audit exporter: the raft leader ships
// every audit event, at least once, to each sink. Give every node the same
// block, since whichever node leads exports.
type AuditExport struct {
	Sinks []auditexport.SinkConfig `mapstructure:"sinks"`
	// BatchSize is the most events one delivery carries.
	BatchSize int `mapstructure:"batch_size"`
	// RetryMin and RetryMax bound the backoff between failed deliveries.
	RetryMin time.Duration `mapstructure:"retry_min"`
	RetryMax time.Duration `mapstructure:"retry_max"`
}

// API holds the HTTPS API's per-token limits (docs/api.md, "Limits").
type API struct {
	// TokenFailures bounds the refused requests (403 for a scope it lacks,
	// any other 4xx) one service token may make before it is answered 429:
	// Burst at once, then one per Every. Zero takes the defaults (30, 1s).
	TokenFailures TokenFailures `mapstructure:"token_failures"`
}

// TokenFailures is a token bucket: Burst refusals, refilled one per Every.
type TokenFailures struct {
	Burst int           `mapstructure:"burst"`
	Every time.Duration `mapstructure:"every"`
}

// SCIM bounds the SCIM service (docs/scim.md).
type SCIM struct {
	// CreatesPerMinute is how many users and groups one provisioning token
	// may create a minute (each takes a uid or gid for good); more are 429.
	CreatesPerMinute int `mapstructure:"creates_per_minute"`
}

// Metrics places the node's monitoring endpoints (docs/metrics.md): the
// Prometheus metrics, liveness and readiness, all without credentials.
type Metrics struct {
	// Listen, when set, serves them in plain HTTP on this address of
	// their own; empty serves them on the API listener (HTTPS).
	Listen string `mapstructure:"listen"`
	// PathPrefix goes before /metrics, /healthz and /readyz ("" or a path
	// such as /ops; never under /v1).
	PathPrefix string `mapstructure:"path_prefix"`
}

// Recording says where this node keeps the recordings of the sessions it
// carries, and bounds them so that one person writing without end into a
// terminal cannot fill the disk raft writes to.
type Recording struct {
	// Dir holds the recordings; empty means <data_dir>/recordings. Give it a
	// filesystem of its own to keep recordings and raft apart.
	Dir string `mapstructure:"dir"`
	// MaxSessionBytes caps one recording (one terminal of a session); at
	// the cap the project's failure policy applies: fail closed ends the
	// session with a message, fail open stops recording and goes on
	// (audited either way).
	MaxSessionBytes int64 `mapstructure:"max_session_bytes"`
	// MinFreeMiB is the free-space floor of the recordings filesystem: below
	// it new recorded sessions of projects that fail closed are refused with
	// a message (fail open: unrecorded, audited), and running recordings
	// stop under the same policy. 0 disables the floor.
	MinFreeMiB int64 `mapstructure:"min_free_mib"`
	// Replicas is how many nodes keep each recording, this one included:
	// it is streamed live to one other node and copied to more at close,
	// each copy checked (SHA-256) where it lands. 1 keeps recordings on
	// the node that carried them alone.
	Replicas int `mapstructure:"replicas"`
	// Retention deletes this node's copies (its own sessions' and the
	// others' it keeps) past MaxAge, then the oldest past MaxTotalBytes;
	// each deletion is audited. 0: no limit.
	Retention RecordingRetention `mapstructure:"retention"`
}

// RecordingRetention bounds the recordings a node keeps.
type RecordingRetention struct {
	MaxAge        time.Duration `mapstructure:"max_age"`
	MaxTotalBytes int64         `mapstructure:"max_total_bytes"`
}

// Memory tunes the Go garbage collector. A node's memory is mostly idle
// proxied sessions: per session about as much in goroutine stacks as in
// heap, and Go counts stacks in the heap's growth allowance, so the default
// (GC percent 50) gives the heap roughly the headroom GOGC=100 gives a
// program without them. GOGC and GOMEMLIMIT in the environment win.
type Memory struct {
	// GCPercent is GOGC: the heap may grow by this percent of live memory
	// before the next collection. Lower saves memory for CPU.
	GCPercent int `mapstructure:"gc_percent"`
	// GCMinHeadroomMiB is the least the heap may grow between collections,
	// whatever GCPercent says (0: no floor). It spares a node with few
	// sessions a collection every few megabytes while it streams files.
	GCMinHeadroomMiB int `mapstructure:"gc_min_headroom_mib"`
	// SoftLimitMiB, when not 0, is GOMEMLIMIT in MiB: near it the collector
	// works harder, so a node under a container or cgroup limit slows down
	// instead of being killed.
	SoftLimitMiB int `mapstructure:"soft_limit_mib"`
}

// Agents configures what the cluster tells server agents.
type Agents struct {
	// AdminEntitlement is the sudo entitlement members of a group granted a
	// project with role admin get on its servers (define it with
	// `entitlements create`); empty gives admins no sudo.
	AdminEntitlement string `mapstructure:"admin_entitlement"`
	// CertValidity is how long an agent's mutual-TLS certificate is valid;
	// agents renew theirs when two thirds of it have passed.
	CertValidity time.Duration `mapstructure:"cert_validity"`
	// HostCertValidity is how long the host certificates of targets are
	// valid; agents renew them when two thirds of it have passed.
	HostCertValidity time.Duration `mapstructure:"host_cert_validity"`
	// BinaryDir holds the agent binaries GET /v1/agents/binary serves
	// (rampart-agent-linux-<arch>, or rampart-agent for this node's own
	// platform); empty means the directory of the running rampartd.
	BinaryDir string `mapstructure:"binary_dir"`
	// AWS and GCP configure cloud auto-enrollment (docs/agent.md); each is
	// off until configured.
	AWS AgentsAWS `mapstructure:"aws"`
	GCP AgentsGCP `mapstructure:"gcp"`
}

// AgentsAWS configures AWS auto-enrollment: agents send the instance
// identity document signed by AWS instead of a token. Enabled when
// CertsFile is set.
type AgentsAWS struct {
	// CertsFile is a PEM bundle of AWS's public certificates for instance
	// identity signatures, for every region servers enroll from.
	CertsFile string `mapstructure:"certs_file"`
	// Accounts maps AWS account ids (12 digits) to Rampart projects.
	Accounts map[string]string `mapstructure:"accounts"`
	// MaxAge bounds how long after an instance's pendingTime (its launch or
	// last start) it may auto-enroll.
	MaxAge time.Duration `mapstructure:"max_age"`
	// AllowReenroll lets an instance id that is already enrolled enroll
	// again (replacing the server's credential); by default it is refused.
	AllowReenroll bool `mapstructure:"allow_reenroll"`
}

// AgentsGCP configures GCP auto-enrollment: agents send the instance
// identity token of their Compute Engine metadata server. Enabled when
// Audience or Projects is set.
type AgentsGCP struct {
	// Issuer of the tokens; https://accounts.google.com except in tests.
	Issuer string `mapstructure:"issuer"`
	// Audience is what agents ask their metadata server for (gcp_audience in
	// the agent's configuration) and tokens must carry, such as the
	// cluster's API URL.
	Audience string `mapstructure:"audience"`
	// Projects maps GCP project ids to Rampart projects.
	Projects map[string]string `mapstructure:"projects"`
	// MaxAge bounds how long after an instance's creation (the token's
	// google.compute_engine.instance_creation_timestamp) it may
	// auto-enroll.
	MaxAge time.Duration `mapstructure:"max_age"`
	// AllowReenroll: as for AWS.
	AllowReenroll bool `mapstructure:"allow_reenroll"`
}

// Jump configures the terminating proxy.
type Jump struct {
	// EgressAddrs are the node's addresses towards targets: connections to
	// targets leave from the first, and per-hop certificates may be used
	// only from these (source-address). Default: the SSH listen address, or
	// the advertised one when listening on a wildcard.
	EgressAddrs []string `mapstructure:"egress_addrs"`
	// AllowLoopbackTargets lets servers be registered (and reached) at
	// loopback addresses, for development and tests whose targets run on the
	// node's own machine. On by default in dev mode only; never in
	// production, where a loopback target is the bastion's own machine.
	AllowLoopbackTargets bool `mapstructure:"allow_loopback_targets"`
	// AgentWait bounds how long a person's first login to an account the
	// cluster has just created waits for the target's agent to create it
	// (default 15s; 0 turns the wait off).
	AgentWait time.Duration `mapstructure:"agent_wait"`
}

// SSH configures the front door.
type SSH struct {
	// JumpHost is what users type after -J: a host name or IP address with
	// an optional :port; default: the advertised SSH address. Its host is
	// one of the node's host names (sshHostNames adds it).
	JumpHost string `mapstructure:"jump_host"`
	// HostNames are extra names put in the node's host certificate (DNS names
	// users type); the node's IPs are always in it.
	HostNames []string `mapstructure:"host_names"`
	// HandshakeTimeout bounds each step before a device flow: connect to
	// the first authentication request, and from there to a login or the
	// start of the device flow.
	HandshakeTimeout time.Duration `mapstructure:"handshake_timeout"`
	// AuthTimeout bounds a running device flow (extended to the device
	// code's lifetime).
	AuthTimeout time.Duration `mapstructure:"auth_timeout"`
	// MaxPreauth and MaxPreauthPerIP bound unauthenticated connections,
	// MaxDeviceFlowsPerIP device flows still polling the IdP; per IPv4
	// address or IPv6 /64.
	MaxPreauth          int `mapstructure:"max_preauth"`
	MaxPreauthPerIP     int `mapstructure:"max_preauth_per_ip"`
	MaxDeviceFlowsPerIP int `mapstructure:"max_device_flows_per_ip"`
	// Ciphers are offered to people's clients (front door and the inner
	// server of each jump) and preferred towards targets. The client's order
	// decides among those both sides have, so a cipher left out here is
	// never used; OpenSSH clients are offered only the AES-GCM ones when
	// there are any (sshalg.ForClient). See docs/jump.md.
	Ciphers []string `mapstructure:"ciphers"`
	// ClientHostPatterns are ssh_config host patterns of the cluster's
	// servers ("*.prod.example.com") that `rampart setup` sends through the
	// bastion, besides the names of the servers a person may reach. Served
	// publicly at GET /v1/client/setup.
	ClientHostPatterns []string `mapstructure:"client_host_patterns"`
}

// OIDC names the identity provider and how its claims map to users.
type OIDC struct {
	Issuer        string   `mapstructure:"issuer"`
	ClientID      string   `mapstructure:"client_id"`
	ClientSecret  string   `mapstructure:"client_secret"`
	Scopes        []string `mapstructure:"scopes"`
	UsernameClaim string   `mapstructure:"username_claim"`
	EmailClaim    string   `mapstructure:"email_claim"`
	GroupsClaim   string   `mapstructure:"groups_claim"`
	AdminGroup    string   `mapstructure:"admin_group"`
	// EmailVerifiedClaim is the boolean claim saying the IdP verified the
	// e-mail; only a verified e-mail matches a record SCIM made.
	EmailVerifiedClaim string `mapstructure:"email_verified_claim"`
	// ExternalIDIsSubject: the IdP's SCIM externalId is the ID token's sub
	// (Okta). Then a SCIM record with an externalId is never adopted by
	// e-mail at sign-in; false (Entra ID) allows it by a verified e-mail.
	ExternalIDIsSubject bool `mapstructure:"external_id_is_subject"`
	// OfflineAccess: whether sign-ins ask for a refresh token, which
	// re-validation redeems: auto (when the IdP's discovery lists
	// offline_access), true or false.
	OfflineAccess string `mapstructure:"offline_access"`
	// RevalidateInterval: how often the cluster re-validates everyone
	// with a live binding or session (at least 30s; 1s with dev: true).
	RevalidateInterval time.Duration `mapstructure:"revalidate_interval"`
	// UnverifiedBindingMax: how long a binding stays usable while the IdP
	// cannot confirm its person; then the key needs a browser sign-in.
	UnverifiedBindingMax time.Duration `mapstructure:"unverified_binding_max"`
}

// OfflineAccessMode is oidc.offline_access as login.OIDCConfig takes it
// ("" when the value is not one Validate accepts).
func (o OIDC) OfflineAccessMode() string {
	switch strings.ToLower(strings.TrimSpace(o.OfflineAccess)) {
	case "", "auto":
		return "auto"
	case "true", "on", "yes", "1":
		return "on"
	case "false", "off", "no", "0":
		return "off"
	}
	return ""
}

// Login configures sign-in.
type Login struct {
	// BindingTTL is how long a key stays bound after a browser sign-in.
	BindingTTL time.Duration `mapstructure:"binding_ttl"`
}

// DevIdP runs the embedded development identity provider (dev mode only).
type DevIdP struct {
	Enabled bool   `mapstructure:"enabled"`
	Listen  string `mapstructure:"listen"`
	// ForceNonLoopback allows the dev IdP (and a dev node) on addresses other
	// machines can reach. Never do this with real users.
	ForceNonLoopback bool          `mapstructure:"force_non_loopback"`
	Config           devidp.Config `mapstructure:",squash"`
}

// Addresses are the node's three ports.
type Addresses struct {
	SSH  string `mapstructure:"ssh"`
	API  string `mapstructure:"api"`
	Raft string `mapstructure:"raft"`
}

// Cluster says how this node finds its cluster.
type Cluster struct {
	// Bootstrap makes the first node of a new cluster.
	Bootstrap bool `mapstructure:"bootstrap"`
	// Join is a join token; JoinFile a file holding one.
	Join     string `mapstructure:"join"`
	JoinFile string `mapstructure:"join_file"`
	// MaxStale: a follower that has not heard from the leader for this long
	// refuses reads that security decisions depend on.
	MaxStale time.Duration `mapstructure:"max_stale"`
	UIDRange string        `mapstructure:"uid_range"`
	GIDRange string        `mapstructure:"gid_range"`
	// NodeCertValidity is how long a node's TLS certificate is valid; each
	// node renews its own when two thirds of it have passed.
	NodeCertValidity time.Duration `mapstructure:"node_cert_validity"`
}

// Log configures log/slog.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
	// PprofListen, when set, serves Go's runtime profiles
	// (/debug/pprof/...) on that loopback address, for diagnosing CPU and
	// memory use. Never on a routable address: profiles reveal internals.
	PprofListen string `mapstructure:"pprof_listen"`
}

// defaults lists every key, so that viper also reads it from the environment.
var defaults = map[string]any{
	"node_id":                             "",
	"data_dir":                            "/var/lib/rampart",
	"dev":                                 false,
	"listen.ssh":                          "0.0.0.0:22",
	"listen.api":                          "0.0.0.0:8443",
	"listen.raft":                         "0.0.0.0:8300",
	"advertise.ssh":                       "",
	"advertise.api":                       "",
	"advertise.raft":                      "",
	"cluster.bootstrap":                   false,
	"cluster.join":                        "",
	"cluster.join_file":                   "",
	"cluster.max_stale":                   "10s",
	"cluster.uid_range":                   DefaultUIDRange,
	"cluster.gid_range":                   DefaultGIDRange,
	"cluster.node_cert_validity":          "17520h",
	"kek_file":                            "",
	"kek":                                 "",
	"log.level":                           "info",
	"log.format":                          "text",
	"log.pprof_listen":                    "",
	"memory.gc_percent":                   50,
	"metrics.listen":                      "",
	"metrics.path_prefix":                 "",
	"memory.gc_min_headroom_mib":          64,
	"memory.soft_limit_mib":               0,
	"recording.dir":                       "",
	"recording.max_session_bytes":         int64(1 << 30),
	"recording.min_free_mib":              int64(512),
	"recording.replicas":                  2,
	"recording.retention.max_age":         "0s",
	"recording.retention.max_total_bytes": int64(0),
	"ssh.jump_host":                       "",
	"ssh.host_names":                      []string{},
	"ssh.handshake_timeout":               "20s",
	"ssh.auth_timeout":                    "10m",
	"ssh.max_preauth":                     256,
	"ssh.max_preauth_per_ip":              16,
	"ssh.max_device_flows_per_ip":         8,
	"ssh.ciphers":                         sshalg.DefaultCiphers,
	"ssh.client_host_patterns":            []string{},
	"oidc.issuer":                         "",
	"oidc.client_id":                      "",
	"oidc.client_secret":                  "",
	"oidc.scopes":                         []string{"openid", "profile", "email", "groups"},
	"oidc.username_claim":                 "preferred_username",
	"oidc.email_claim":                    "email",
	"oidc.groups_claim":                   "groups",
	"scim.creates_per_minute":             120,
	"oidc.email_verified_claim":           "email_verified",
	"oidc.external_id_is_subject":         true,
	"oidc.admin_group":                    "rampart-admins",
	"oidc.offline_access":                 "auto",
	"oidc.revalidate_interval":            "5m",
	"oidc.unverified_binding_max":         "1h",
	"login.binding_ttl":                   "8h",
	"dev_idp.enabled":                     false,
	"dev_idp.listen":                      "127.0.0.1:5556",
	"dev_idp.force_non_loopback":          false,
	"dev_idp.issuer":                      "",
	"dev_idp.clients":                     []map[string]any{},
	"dev_idp.users":                       []map[string]any{},
	"dev_idp.device_code_ttl":             "5m",
	"dev_idp.poll_interval":               "2s",
	"dev_idp.slow_down_polls":             0,
	"dev_idp.allow_non_loopback":          false,
	"dev_idp.claim_names.username":        "",
	"dev_idp.claim_names.groups":          "",
	"jump.egress_addrs":                   []string{},
	"jump.allow_loopback_targets":         false,
	"jump.agent_wait":                     "15s",
	"agents.admin_entitlement":            "admin",
	"agents.cert_validity":                "720h",
	"agents.host_cert_validity":           "2160h",
	"agents.binary_dir":                   "",
	"agents.aws.certs_file":               "",
	"agents.aws.accounts":                 map[string]string{},
	"agents.aws.max_age":                  "1h",
	"agents.aws.allow_reenroll":           false,
	"agents.gcp.issuer":                   cloudid.GoogleIssuer,
	"agents.gcp.audience":                 "",
	"agents.gcp.projects":                 map[string]string{},
	"agents.gcp.max_age":                  "1h",
	"agents.gcp.allow_reenroll":           false,
	"audit_export.sinks":                  []map[string]any{},
	"audit_export.batch_size":             auditexport.DefaultBatchSize,
	"audit_export.retry_min":              auditexport.DefaultRetryMin.String(),
	"audit_export.retry_max":              auditexport.DefaultRetryMax.String(),
	"console.enabled":                     true,
	"console.client_id":                   "",
	"console.client_secret":               "",
	"console.redirect_url":                "",
	"console.auditor_group":               "rampart-auditors",
	"console.idle_timeout":                "30m",
}

// devDefaults replace some defaults when --dev is given.
var devDefaults = map[string]any{
	"data_dir":          "./data",
	"listen.ssh":        "127.0.0.1:2222",
	"listen.api":        "127.0.0.1:8443",
	"listen.raft":       "127.0.0.1:8300",
	"cluster.bootstrap": true,
	"dev_idp.enabled":   true,
	"dev_idp.issuer":    "http://127.0.0.1:5556",
	"dev_idp.clients":   []map[string]any{{"id": "rampart"}},
	"dev_idp.users": []map[string]any{
		{"username": "alice", "password": "alice", "email": "alice@example.com", "groups": []string{"engineering", "rampart-admins"}},
		{"username": "bob", "password": "bob", "email": "bob@example.com", "groups": []string{"engineering"}},
	},
	"oidc.issuer":    "http://127.0.0.1:5556",
	"oidc.client_id": "rampart",

	// Dev targets run on this machine (127.0.0.N).
	"jump.allow_loopback_targets": true,
}

// Flags declares rampartd's flags on fs.
func Flags(fs *pflag.FlagSet) {
	fs.StringP("config", "c", "", "configuration file (YAML)")
	fs.Bool("dev", false, "development mode: single self-bootstrapping node, generated key-encryption key, ./data")
	fs.String("node-id", "", "this node's id (default: stored in the data dir, or generated)")
	fs.String("data-dir", "", "data directory")
	fs.String("listen-ssh", "", "SSH listen address")
	fs.String("listen-api", "", "HTTPS API listen address")
	fs.String("listen-raft", "", "raft listen address")
	fs.Bool("bootstrap", false, "bootstrap a new cluster with this node as its first member")
	fs.String("join", "", "join token of an existing cluster")
	fs.String("join-file", "", "file holding a join token")
	fs.String("kek-file", "", "key-encryption key file")
	fs.String("log-level", "", "debug, info, warn or error")
	fs.String("oidc-issuer", "", "OIDC issuer URL of the identity provider")
	fs.String("oidc-client-id", "", "OAuth client id registered at the identity provider")
	fs.Bool("allow-loopback-targets", false, "allow servers at loopback addresses (development and tests only; on with --dev)")
}

var flagKeys = map[string]string{
	"dev": "dev", "node-id": "node_id", "data-dir": "data_dir",
	"listen-ssh": "listen.ssh", "listen-api": "listen.api", "listen-raft": "listen.raft",
	"bootstrap": "cluster.bootstrap", "join": "cluster.join", "join-file": "cluster.join_file",
	"kek-file": "kek_file", "log-level": "log.level",
	"oidc-issuer": "oidc.issuer", "oidc-client-id": "oidc.client_id",
	"allow-loopback-targets": "jump.allow_loopback_targets",
}

// LoadConfig reads the configuration file named by --config (if any), the
// environment and the flags, then validates the result.
func LoadConfig(fs *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("RAMPART")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for flag, key := range flagKeys {
		if err := v.BindPFlag(key, fs.Lookup(flag)); err != nil {
			return nil, fmt.Errorf("bind flag --%s: %w", flag, err)
		}
	}
	if path, _ := fs.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	if v.GetBool("dev") {
		for k, d := range devDefaults {
			v.SetDefault(k, d)
		}
	}
	// Decoding and validation problems are reported together; a key that
	// failed to decode is not validated again.
	var cfg Config
	problems, failed := configload.Decode(v, &cfg)
	problems = append(problems, configload.Keep(cfg.problems(), failed)...)
	if err := configload.Error(problems); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate returns every problem with the configuration in one error.
func (c *Config) Validate() error { return configload.Error(c.problems()) }

// problems lists every problem with the configuration, each starting with
// its key.
func (c *Config) problems() []string {
	var errs []string
	if c.API.TokenFailures.Burst < 0 || c.API.TokenFailures.Every < 0 {
		errs = append(errs, "api.token_failures: burst and every must not be negative")
	}
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.NodeID != "" && !enroll.ValidNodeID(c.NodeID) {
		bad("node_id %q: use lowercase letters, digits and dashes, up to 63 characters", c.NodeID)
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	for name, addr := range map[string]string{"listen.ssh": c.Listen.SSH, "listen.api": c.Listen.API, "listen.raft": c.Listen.Raft} {
		if err := enroll.CheckHostPort(addr, true); err != nil {
			bad("%s: %v", name, err)
		}
	}
	for name, addr := range map[string]string{"advertise.ssh": c.Advertise.SSH, "advertise.api": c.Advertise.API, "advertise.raft": c.Advertise.Raft} {
		if addr == "" {
			continue
		}
		if err := enroll.CheckHostPort(addr, false); err != nil {
			bad("%s: %v", name, err)
		}
	}
	if isWildcard(c.Listen.Raft) && c.Advertise.Raft == "" {
		bad("listen.raft %s is a wildcard: set advertise.raft to the address other nodes dial", c.Listen.Raft)
	}
	if isWildcard(c.Listen.API) && c.Advertise.API == "" {
		bad("listen.api %s is a wildcard: set advertise.api to the address agents and nodes dial", c.Listen.API)
	}
	if c.Cluster.Join != "" && c.Cluster.JoinFile != "" {
		bad("cluster.join and cluster.join_file are both set: use one")
	}
	if c.Cluster.Bootstrap && (c.Cluster.Join != "" || c.Cluster.JoinFile != "") {
		bad("cluster.bootstrap and cluster.join are both set: bootstrap the first node only, join the others")
	}
	if c.Cluster.MaxStale < time.Second {
		bad("cluster.max_stale %s: must be at least 1s", c.Cluster.MaxStale)
	}
	us, ue, uerr := ParseRange(c.Cluster.UIDRange)
	if uerr != nil {
		bad("cluster.uid_range: %v", uerr)
	}
	gs, ge, gerr := ParseRange(c.Cluster.GIDRange)
	if gerr != nil {
		bad("cluster.gid_range: %v", gerr)
	}
	if uerr == nil && gerr == nil && us <= ge && gs <= ue {
		bad("cluster.uid_range %s and cluster.gid_range %s overlap: each user's own group has the user's uid as its gid, so group gids must lie elsewhere", c.Cluster.UIDRange, c.Cluster.GIDRange)
	}
	if !c.Dev && c.KEKFile == "" && c.KEK == "" {
		bad("no key-encryption key: set kek_file (or RAMPART_KEK); create one with: openssl rand -base64 32")
	}
	if c.KEKFile != "" && c.KEK != "" {
		bad("kek_file and kek (RAMPART_KEK) are both set: use one")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format %q: use text or json", c.Log.Format)
	}
	if a := c.Log.PprofListen; a != "" {
		if host, _, err := net.SplitHostPort(a); err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
			bad("log.pprof_listen %q: must be a loopback host:port (profiles reveal internals)", a)
		}
	}
	if a := c.Metrics.Listen; a != "" {
		if err := enroll.CheckHostPort(a, true); err != nil {
			bad("metrics.listen: %v", err)
		}
	}
	if !monitor.ValidPrefix(c.Metrics.PathPrefix) {
		bad("metrics.path_prefix %q: empty, or a path such as /ops (starting with /, no trailing /, not under /v1)", c.Metrics.PathPrefix)
	}
	if c.Memory.GCPercent < 10 || c.Memory.GCPercent > 1000 {
		bad("memory.gc_percent %d: must be between 10 and 1000 (Go's default is 100)", c.Memory.GCPercent)
	}
	if c.Memory.GCMinHeadroomMiB < 0 || c.Memory.GCMinHeadroomMiB > 4096 {
		bad("memory.gc_min_headroom_mib %d: must be between 0 (no floor) and 4096", c.Memory.GCMinHeadroomMiB)
	}
	if c.Memory.SoftLimitMiB != 0 && (c.Memory.SoftLimitMiB < 64 || c.Memory.SoftLimitMiB > 1<<30) {
		bad("memory.soft_limit_mib %d: 0 for no limit, or between 64 and 1073741824 (1 PiB)", c.Memory.SoftLimitMiB)
	}
	if c.OIDC.Issuer == "" || c.OIDC.ClientID == "" {
		bad("oidc.issuer and oidc.client_id are required: they name the identity provider people sign in with")
	}
	if c.OIDC.Issuer != "" {
		if u, err := url.Parse(c.OIDC.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("oidc.issuer %q: must be the identity provider's http(s) URL, such as https://idp.example.com/realms/main", c.OIDC.Issuer)
		}
	}
	if c.Console.Enabled {
		if c.Console.IdleTimeout < time.Minute || c.Console.IdleTimeout > 24*time.Hour {
			bad("console.idle_timeout %s: must be between 1m and 24h", c.Console.IdleTimeout)
		}
		if c.Console.AuditorGroup == "" {
			bad("console.auditor_group: name the IdP group whose members may use the console")
		}
		if u := c.Console.RedirectURL; u != "" {
			if pu, err := url.Parse(u); err != nil || pu.Scheme != "https" || pu.Host == "" || pu.Path != "/console/callback" {
				bad("console.redirect_url %q: must be https://<this node's API address>/console/callback", u)
			}
		}
	}
	if c.OIDC.OfflineAccessMode() == "" {
		bad("oidc.offline_access %q: use auto, true or false", c.OIDC.OfflineAccess)
	}
	minInterval := 30 * time.Second
	if c.Dev {
		// Development and tests (the dev IdP) may re-validate faster than
		// any real IdP should be asked.
		minInterval = time.Second
	}
	if c.OIDC.RevalidateInterval < minInterval || c.OIDC.RevalidateInterval > 24*time.Hour {
		bad("oidc.revalidate_interval %s: must be between 30s and 24h (down to 1s with dev: true)", c.OIDC.RevalidateInterval)
	}
	if c.OIDC.UnverifiedBindingMax < time.Minute || c.OIDC.UnverifiedBindingMax > 30*24*time.Hour || c.OIDC.UnverifiedBindingMax <= c.OIDC.RevalidateInterval {
		bad("oidc.unverified_binding_max %s: must be between 1m and 720h, and longer than oidc.revalidate_interval (%s)", c.OIDC.UnverifiedBindingMax, c.OIDC.RevalidateInterval)
	}
	if c.SCIM.CreatesPerMinute < 1 || c.SCIM.CreatesPerMinute > 100000 {
		bad("scim.creates_per_minute %d: must be between 1 and 100000", c.SCIM.CreatesPerMinute)
	}
	if c.Login.BindingTTL < time.Minute || c.Login.BindingTTL > 30*24*time.Hour {
		bad("login.binding_ttl %s: must be between 1m and 720h", c.Login.BindingTTL)
	}
	if c.SSH.AuthTimeout < time.Minute {
		bad("ssh.auth_timeout %s: must be at least 1m (people need time to approve in a browser)", c.SSH.AuthTimeout)
	}
	if c.SSH.HandshakeTimeout < time.Second || c.SSH.HandshakeTimeout > c.SSH.AuthTimeout {
		bad("ssh.handshake_timeout %s: must be at least 1s and not above ssh.auth_timeout", c.SSH.HandshakeTimeout)
	}
	if c.SSH.JumpHost != "" {
		if err := api.CheckJumpHost(c.SSH.JumpHost); err != nil {
			bad("ssh.jump_host: %v", err)
		}
	}
	for _, h := range c.SSH.HostNames {
		if !api.ValidHostOrIP(h) {
			bad("ssh.host_names: %q is not a host name or IP address", h)
		}
	}
	for _, p := range c.SSH.ClientHostPatterns {
		if err := api.CheckHostPattern(p); err != nil {
			bad("ssh.client_host_patterns: %v", err)
		}
	}
	if c.SSH.MaxPreauth < 1 || c.SSH.MaxPreauthPerIP < 1 || c.SSH.MaxPreauthPerIP > c.SSH.MaxPreauth {
		bad("ssh.max_preauth (%d) and ssh.max_preauth_per_ip (%d) must be positive, per-IP not above the total", c.SSH.MaxPreauth, c.SSH.MaxPreauthPerIP)
	}
	if c.SSH.MaxDeviceFlowsPerIP < 1 {
		bad("ssh.max_device_flows_per_ip (%d) must be positive", c.SSH.MaxDeviceFlowsPerIP)
	}
	if err := sshalg.CheckCiphers(c.SSH.Ciphers); err != nil {
		bad("ssh.ciphers: %v", err)
	}
	if c.DevIdP.Enabled {
		if !c.Dev {
			bad("dev_idp.enabled is only allowed with dev: true; production nodes use a real identity provider")
		}
		if err := enroll.CheckHostPort(c.DevIdP.Listen, false); err != nil {
			bad("dev_idp.listen: %v", err)
		}
		if c.DevIdP.Config.Issuer == "" {
			bad("dev_idp.issuer is empty")
		}
	}
	if c.Dev && !c.DevIdP.ForceNonLoopback {
		for name, addr := range map[string]string{"listen.ssh": c.Listen.SSH, "listen.api": c.Listen.API, "listen.raft": c.Listen.Raft, "dev_idp.listen": c.DevIdP.Listen} {
			if name == "dev_idp.listen" && !c.DevIdP.Enabled {
				continue
			}
			if host, _, err := net.SplitHostPort(addr); err == nil {
				if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
					bad("%s %s is not a loopback address: dev mode (and its dev IdP, which signs in anyone with a dev password) stays on loopback unless dev_idp.force_non_loopback is set", name, addr)
				}
			}
		}
	}
	if c.Agents.CertValidity < 30*time.Second || c.Agents.CertValidity > 8760*time.Hour {
		bad("agents.cert_validity %s: must be between 30s and 8760h", c.Agents.CertValidity)
	}
	if c.Agents.HostCertValidity < 15*time.Second || c.Agents.HostCertValidity > 8760*time.Hour {
		bad("agents.host_cert_validity %s: must be between 15s and 8760h", c.Agents.HostCertValidity)
	}
	if c.Cluster.NodeCertValidity < 30*time.Second || c.Cluster.NodeCertValidity > 43800*time.Hour {
		bad("cluster.node_cert_validity %s: must be between 30s and 43800h", c.Cluster.NodeCertValidity)
	}
	if c.Agents.BinaryDir != "" && !strings.HasPrefix(c.Agents.BinaryDir, "/") {
		bad("agents.binary_dir %q: must be an absolute path", c.Agents.BinaryDir)
	}
	for _, err := range c.Agents.AWS.validate() {
		bad("agents.aws.%v", err)
	}
	for _, err := range c.Agents.GCP.validate() {
		bad("agents.gcp.%v", err)
	}
	if c.Jump.AgentWait < 0 || c.Jump.AgentWait > 5*time.Minute {
		bad("jump.agent_wait %s is not between 0 (no wait) and 5m", c.Jump.AgentWait)
	}
	if c.Recording.Dir != "" && !strings.HasPrefix(c.Recording.Dir, "/") {
		bad("recording.dir %q: must be an absolute path", c.Recording.Dir)
	}
	if c.Recording.MaxSessionBytes < 1<<20 {
		bad("recording.max_session_bytes %d: must be at least 1048576 (1 MiB)", c.Recording.MaxSessionBytes)
	}
	if c.Recording.MinFreeMiB < 0 {
		bad("recording.min_free_mib %d: must be 0 (no floor) or more", c.Recording.MinFreeMiB)
	}
	if c.Recording.Replicas < 1 || c.Recording.Replicas > 9 {
		bad("recording.replicas %d: must be between 1 (this node only) and 9", c.Recording.Replicas)
	}
	if r := c.Recording.Retention; r.MaxAge < 0 || r.MaxTotalBytes < 0 {
		bad("recording.retention: max_age and max_total_bytes must be 0 (no limit) or more")
	}
	for _, a := range c.Jump.EgressAddrs {
		if ip := net.ParseIP(a); ip == nil || ip.IsUnspecified() {
			bad("jump.egress_addrs: %q is not a specific IP address", a)
		}
	}
	for _, p := range auditexport.Problems(c.AuditExport.Sinks) {
		bad("audit_export.%s", p)
	}
	if ae := c.AuditExport; ae.BatchSize < 1 || ae.BatchSize > raftstore.MaxAuditBatch || ae.RetryMin < 10*time.Millisecond || ae.RetryMax < ae.RetryMin || ae.RetryMax > time.Hour {
		bad("audit_export: batch_size %d must be 1 to %d; retry_min %s at least 10ms; retry_max %s between retry_min and 1h", ae.BatchSize, raftstore.MaxAuditBatch, ae.RetryMin, ae.RetryMax)
	}
	errs = append(errs, c.Audit.problems()...)
	errs = append(errs, c.listenerCollisions()...)
	return errs
}

// listenerCollisions lists listeners that share an address and port; a
// wildcard address takes its port on every address.
func (c *Config) listenerCollisions() []string {
	type listener struct{ key, addr string }
	ls := []listener{{"listen.ssh", c.Listen.SSH}, {"listen.api", c.Listen.API}, {"listen.raft", c.Listen.Raft}}
	if c.DevIdP.Enabled {
		ls = append(ls, listener{"dev_idp.listen", c.DevIdP.Listen})
	}
	if c.Log.PprofListen != "" {
		ls = append(ls, listener{"log.pprof_listen", c.Log.PprofListen})
	}
	var errs []string
	for i, a := range ls {
		ha, pa, err := net.SplitHostPort(a.addr)
		if err != nil {
			continue // reported as not host:port
		}
		for _, b := range ls[i+1:] {
			hb, pb, err := net.SplitHostPort(b.addr)
			if err != nil || pa != pb {
				continue
			}
			ipa, ipb := net.ParseIP(ha), net.ParseIP(hb)
			if ipa == nil || ipb == nil {
				continue
			}
			if ipa.Equal(ipb) || ipa.IsUnspecified() || ipb.IsUnspecified() {
				errs = append(errs, fmt.Sprintf("%s %s and %s %s: two listeners on one port; give each its own", a.key, a.addr, b.key, b.addr))
			}
		}
	}
	return errs
}

func isWildcard(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// The uid and gid ranges of a new cluster; a cluster stores its ranges when
// it bootstraps (raftstore.ClusterInit), so changing these or the
// configuration later changes nothing for it. They keep clear of what
// distributions reserve (docs/cluster.md): regular users (1000–59999),
// Debian's reserved 60000–65533 with systemd-homed (60001–60513) and
// DynamicUser (61184–65519) in it, nobody (65534) and the 16-bit -1
// (65535), the subordinate ids that useradd hands out from 100000 for
// rootless containers, and systemd-nspawn's container ranges from 524288.
const (
	DefaultUIDRange = "70000-89999"
	DefaultGIDRange = "90000-99999"
)

// maxRangeID bounds uids and gids: above it, tools disagree on signedness
// (the agent refuses such ids too).
const maxRangeID = 1<<31 - 1

// ParseRange parses "start-end" of uids or gids.
func ParseRange(s string) (start, end uint32, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not start-end", s)
	}
	x, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	y, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q: start and end must be numbers", s)
	}
	if x < 1000 || y < x || y > maxRangeID {
		return 0, 0, fmt.Errorf("%q: need 1000 <= start <= end <= %d", s, maxRangeID)
	}
	if x <= 65535 && y >= 65534 {
		return 0, 0, fmt.Errorf("%q holds 65534 or 65535, the overflow ids (nobody)", s)
	}
	return uint32(x), uint32(y), nil
}

// validate lists the problems of the AWS auto-enrollment settings, each
// starting with its key under agents.aws.
func (a *AgentsAWS) validate() []error {
	var errs []error
	if a.CertsFile == "" {
		if len(a.Accounts) > 0 {
			errs = append(errs, errors.New("accounts is set but certs_file is empty: AWS auto-enrollment needs AWS's public certificates"))
		}
		return errs
	}
	if _, err := cloudid.ReadAWSCertificates(a.CertsFile); err != nil {
		errs = append(errs, fmt.Errorf("certs_file %s: %v", a.CertsFile, err))
	}
	if len(a.Accounts) == 0 {
		errs = append(errs, errors.New("accounts is empty: map at least one AWS account id to a project"))
	}
	for _, acct := range slices.Sorted(maps.Keys(a.Accounts)) {
		if !cloudid.ValidAWSAccount(acct) {
			errs = append(errs, fmt.Errorf("accounts: %q is not a 12-digit AWS account id (quote account ids in YAML, or leading zeros are lost)", acct))
		}
		if p := a.Accounts[acct]; p == "" || strings.ContainsFunc(p, unicode.IsSpace) {
			errs = append(errs, fmt.Errorf("accounts: account %s maps to %q, which is not a project name", acct, p))
		}
	}
	if a.MaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("max_age %s: must be at least 1m", a.MaxAge))
	}
	return errs
}

// validate lists the problems of the GCP auto-enrollment settings, each
// starting with its key under agents.gcp.
func (g *AgentsGCP) validate() []error {
	if g.Audience == "" && len(g.Projects) == 0 {
		return nil
	}
	var errs []error
	if g.Audience == "" {
		errs = append(errs, errors.New("audience is empty: set it to what agents ask their metadata server for (gcp_audience), such as the cluster's API URL"))
	}
	if len(g.Projects) == 0 {
		errs = append(errs, errors.New("projects is empty: map at least one GCP project id to a project"))
	}
	for _, id := range slices.Sorted(maps.Keys(g.Projects)) {
		if !cloudid.ValidGCPProject(id) {
			errs = append(errs, fmt.Errorf("projects: %q is not a GCP project id", id))
		}
		if p := g.Projects[id]; p == "" || strings.ContainsFunc(p, unicode.IsSpace) {
			errs = append(errs, fmt.Errorf("projects: GCP project %s maps to %q, which is not a project name", id, p))
		}
	}
	if g.MaxAge < time.Minute {
		errs = append(errs, fmt.Errorf("max_age %s: must be at least 1m", g.MaxAge))
	}
	u, err := url.Parse(g.Issuer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		errs = append(errs, fmt.Errorf("issuer %q is not an https URL", g.Issuer))
	case u.Scheme == "http":
		// Plain http only for a test issuer on this machine.
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("issuer %q: must be https (http only on a loopback address, for tests)", g.Issuer))
		}
	}
	return errs
}
