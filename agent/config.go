package agent

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/rampart-ssh/rampart/internal/configload"
)

// Config is rampart-agent's configuration, loaded by viper from a YAML file,
// RAMPART_AGENT_* environment variables and flags, validated at start with
// every problem listed.
type Config struct {
	// Cluster lists API addresses (host:port); the enrollment token carries
	// them too, and the agent remembers them after enrolling.
	Cluster   []string `mapstructure:"cluster"`
	TokenFile string   `mapstructure:"token_file"`
	DataDir   string   `mapstructure:"data_dir"`
	// AutoEnroll: "" enrolls with the token in TokenFile; "aws" or "gcp"
	// with the instance identity from the cloud's metadata service (see
	// cloud.go), trusting the cluster by CAPin.
	AutoEnroll string            `mapstructure:"auto_enroll"`
	Name       string            `mapstructure:"name"`
	AltNames   []string          `mapstructure:"alt_names"`
	Addr       string            `mapstructure:"addr"`
	SSHPort    int               `mapstructure:"ssh_port"`
	Labels     map[string]string `mapstructure:"labels"`

	// CAPin is the cluster CA's pin ("sha256:<hex>" of its public key),
	// which a token carries; auto-enrollment has no token and needs it here.
	CAPin string `mapstructure:"ca_pin"`
	// AWSMetadataURL is the EC2 instance metadata service (IMDSv2).
	AWSMetadataURL string `mapstructure:"aws_metadata_url"`
	// AWSIdentityForm is the signed form sent: "signature" (the document
	// and /signature) or "rsa2048" (the PKCS #7 form).
	AWSIdentityForm string `mapstructure:"aws_identity_form"`
	// GCPMetadataURL is the Compute Engine metadata server.
	GCPMetadataURL string `mapstructure:"gcp_metadata_url"`
	// GCPAudience is the audience of the identity token asked for: the
	// cluster's agents.gcp.audience.
	GCPAudience string `mapstructure:"gcp_audience"`

	// HostKeyFiles are the sshd host public keys to enroll and certify.
	HostKeyFiles  []string      `mapstructure:"host_key_files"`
	MachineIDFile string        `mapstructure:"machine_id_file"`
	PollWait      time.Duration `mapstructure:"poll_wait"`
	// StateFile records which accounts the agent manages; HomeArchiveDir
	// receives the homes of deleted accounts when HomeOnDelete is archive.
	StateFile      string        `mapstructure:"state_file"`
	HomeOnDelete   string        `mapstructure:"home_on_delete"`
	HomeArchiveDir string        `mapstructure:"home_archive_dir"`
	DeleteGrace    time.Duration `mapstructure:"delete_grace"`
	DryRun         bool          `mapstructure:"dry_run"`
	LogLevel       string        `mapstructure:"log_level"`
	// LoginLog is where sshd logs logins: "auto", "journald", "off" or a
	// log file (agent/events); EventsSpoolDir keeps the login events not
	// yet delivered ("": data_dir/events).
	LoginLog       string `mapstructure:"login_log"`
	EventsSpoolDir string `mapstructure:"events_spool_dir"`

	// Single-user mode (singleuser.go, docs/agent.md): the agent runs as
	// one unprivileged account and manages sshd trust for it alone, for an
	// sshd that account runs with SSHDConfig and SSHDPidFile (SSHDBinary:
	// its program, by default /usr/sbin/sshd). The three are refused
	// without single_user.
	SingleUser  bool   `mapstructure:"single_user"`
	SSHDConfig  string `mapstructure:"sshd_config"`
	SSHDPidFile string `mapstructure:"sshd_pid_file"`
	SSHDBinary  string `mapstructure:"sshd_binary"`
}

var agentDefaults = map[string]any{
	"cluster":          []string{},
	"token_file":       "/var/lib/rampart-agent/enrollment.token",
	"data_dir":         "/var/lib/rampart-agent",
	"auto_enroll":      "",
	"name":             "",
	"alt_names":        []string{},
	"addr":             "",
	"ssh_port":         22,
	"labels":           map[string]string{},
	"host_key_files":   []string{},
	"machine_id_file":  "/etc/machine-id",
	"poll_wait":        "5m",
	"state_file":       "/var/lib/rampart-agent/managed.json",
	"home_on_delete":   "keep",
	"home_archive_dir": "/var/lib/rampart-agent/home-archive",
	"delete_grace":     "168h",
	"dry_run":          false,
	"log_level":        "info",
	"login_log":        "auto",
	"events_spool_dir": "",
	"single_user":      false,
	"sshd_config":      "",
	"sshd_pid_file":    "",
	"sshd_binary":      "",

	// Cloud auto-enrollment (cloud.go).
	"ca_pin":            "",
	"aws_metadata_url":  "http://169.254.169.254",
	"aws_identity_form": "signature",
	"gcp_metadata_url":  "http://metadata.google.internal",
	"gcp_audience":      "",
}

// Flags declares rampart-agent's flags.
func Flags(fs *pflag.FlagSet) {
	fs.StringP("config", "c", "", "configuration file (YAML)")
	fs.String("token-file", "", "enrollment token file (deleted after a successful enrollment)")
	fs.String("data-dir", "", "the agent's data directory")
	fs.String("name", "", "the server's canonical name (default: the host name)")
	fs.String("addr", "", "the IP address the bastion dials")
	fs.Int("ssh-port", 0, "sshd's port")
	fs.Bool("dry-run", false, "compute and log changes without applying them")
	fs.String("log-level", "", "debug, info, warn or error")
}

var agentFlagKeys = map[string]string{
	"token-file": "token_file", "data-dir": "data_dir", "name": "name", "addr": "addr",
	"ssh-port": "ssh_port", "dry-run": "dry_run", "log-level": "log_level",
}

// LoadConfig reads --config (if any), the environment and the flags.
func LoadConfig(fs *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	for k, d := range agentDefaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("RAMPART_AGENT")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for flag, key := range agentFlagKeys {
		if err := v.BindPFlag(key, fs.Lookup(flag)); err != nil {
			return nil, err
		}
	}
	if path, _ := fs.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	// Decoding and validation problems are reported together; a key that
	// failed to decode is not validated again.
	var cfg Config
	decodeProblems, failed := configload.Decode(v, &cfg)
	if cfg.Name == "" {
		if h, err := os.Hostname(); err == nil {
			cfg.Name = strings.ToLower(h)
		}
	}
	// A single-user agent's sshd is not the system's: its keys are named.
	if len(cfg.HostKeyFiles) == 0 && !cfg.SingleUser {
		cfg.HostKeyFiles, _ = filepath.Glob("/etc/ssh/ssh_host_*_key.pub")
	}
	problems := append(decodeProblems, configload.Keep(cfg.problems(), failed)...)
	if err := configload.Error(problems); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Validate lists every problem at once.
func (c *Config) Validate() error { return configload.Error(c.problems()) }

// problems lists every problem with the configuration, each starting with
// its key.
func (c *Config) problems() []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	switch c.AutoEnroll {
	case "":
	case "aws", "gcp":
		errs = append(errs, c.validateAutoEnroll()...)
	default:
		bad("auto_enroll %q: use aws, gcp or leave it empty", c.AutoEnroll)
	}
	if c.Name == "" {
		bad("name is empty and the host name is unknown")
	}
	if ip := net.ParseIP(c.Addr); ip == nil || ip.IsUnspecified() {
		bad("addr %q: give the IP address the bastion dials this server at", c.Addr)
	}
	if c.SSHPort < 1 || c.SSHPort > 65535 {
		bad("ssh_port %d: must be 1-65535", c.SSHPort)
	}
	for _, a := range c.Cluster {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("cluster address %q is not host:port", a)
		}
	}
	if len(c.HostKeyFiles) == 0 {
		bad("no sshd host keys found: set host_key_files")
	}
	if c.HomeOnDelete != "keep" && c.HomeOnDelete != "archive" {
		bad("home_on_delete %q: use keep or archive", c.HomeOnDelete)
	}
	if c.PollWait < time.Second || c.PollWait > 10*time.Minute {
		bad("poll_wait %s: must be between 1s and 10m", c.PollWait)
	}
	if l := c.LoginLog; l != "auto" && l != "journald" && l != "off" && !filepath.IsAbs(l) {
		bad("login_log %q: use auto, journald, off or the absolute path of sshd's log file", l)
	}
	if c.EventsSpoolDir != "" && !filepath.IsAbs(c.EventsSpoolDir) {
		bad("events_spool_dir %q: must be an absolute path", c.EventsSpoolDir)
	}
	errs = append(errs, c.singleUserProblems()...)
	return errs
}
