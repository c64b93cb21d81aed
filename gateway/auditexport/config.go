package auditexport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/gateway/ca"
)

// Sink types (audit_export.sinks[].type).
const (
	KindFile    = "file"
	KindSyslog  = "syslog"
	KindHEC     = "splunk_hec"
	KindWebhook = "webhook"
)

// SinkConfig is one entry of audit_export.sinks in rampartd's configuration
// (configs/rampartd.yaml, docs/audit-export.md). Give every node the same
// list: whichever leads exports.
type SinkConfig struct {
	// Name keys the sink's cursor in raft: renaming a sink starts it
	// over.
	Name string `mapstructure:"name"`
	Type string `mapstructure:"type"`
	// Start is where a sink the cluster never exported to begins:
	// "beginning" (the oldest event kept, the default) or "end" (events
	// written from then on).
	Start string `mapstructure:"start"`

	// file: Path, rotated at MaxSizeMiB, keeping MaxFiles rotated files.
	Path       string `mapstructure:"path"`
	MaxSizeMiB int    `mapstructure:"max_size_mib"`
	MaxFiles   int    `mapstructure:"max_files"`

	// syslog: Address (host:port); TLS (RFC 5425); Framing
	// octet_counting (default) or newline (plain TCP only); Facility
	// (default 13, log audit); AppName (default rampart); Hostname
	// (default the node's id).
	Address  string `mapstructure:"address"`
	TLS      bool   `mapstructure:"tls"`
	Framing  string `mapstructure:"framing"`
	Facility *int   `mapstructure:"facility"`
	AppName  string `mapstructure:"app_name"`
	Hostname string `mapstructure:"hostname"`

	// splunk_hec and webhook: URL (https). HEC's URL is the collector's
	// base (https://splunk:8088); /services/collector/event is added.
	URL string `mapstructure:"url"`
	// splunk_hec: the HEC token, from TokenFile or the environment
	// variable TokenEnv; Index, Source, SourceType (default
	// rampart:audit) for each event.
	TokenFile  string `mapstructure:"token_file"`
	TokenEnv   string `mapstructure:"token_env"`
	Index      string `mapstructure:"index"`
	Source     string `mapstructure:"source"`
	SourceType string `mapstructure:"sourcetype"`
	// webhook: the HMAC key, from HMACKeyFile or the environment variable
	// HMACKeyEnv.
	HMACKeyFile string `mapstructure:"hmac_key_file"`
	HMACKeyEnv  string `mapstructure:"hmac_key_env"`

	// TLS of syslog, splunk_hec and webhook: CAFile (PEM) replaces the
	// system's roots; ServerName overrides the name checked.
	CAFile     string `mapstructure:"ca_file"`
	ServerName string `mapstructure:"server_name"`
	// Timeout bounds one delivery (default 10s).
	Timeout time.Duration `mapstructure:"timeout"`
}

var sinkNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Problems lists what is wrong with the sinks, each starting with its key
// under audit_export.
func Problems(sinks []SinkConfig) []string {
	var errs []string
	seen := map[string]bool{}
	for i := range sinks {
		s := &sinks[i]
		key := fmt.Sprintf("sinks[%d]", i)
		if !sinkNameRE.MatchString(s.Name) {
			errs = append(errs, fmt.Sprintf("%s.name %q: use lower-case letters, digits, - and _, up to 63 characters", key, s.Name))
		} else {
			key = fmt.Sprintf("sinks[%s]", s.Name)
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Sprintf("%s: two sinks have this name (the name keys the sink's cursor)", key))
		}
		seen[s.Name] = true
		for _, err := range s.problems() {
			errs = append(errs, key+"."+err)
		}
	}
	return errs
}

func (s *SinkConfig) problems() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if s.Start != "" && s.Start != "beginning" && s.Start != "end" {
		bad("start %q: use beginning or end", s.Start)
	}
	if s.Timeout < 0 || s.Timeout > 5*time.Minute {
		bad("timeout %s: must be between 0 (10s) and 5m", s.Timeout)
	}
	switch s.Type {
	case KindFile:
		if !strings.HasPrefix(s.Path, "/") {
			bad("path %q: must be an absolute path", s.Path)
		}
		if s.MaxSizeMiB < 0 || s.MaxFiles < 0 {
			bad("max_size_mib and max_files must not be negative")
		}
	case KindSyslog:
		if _, _, err := net.SplitHostPort(s.Address); err != nil {
			bad("address %q: must be host:port", s.Address)
		}
		switch s.Framing {
		case "", "octet_counting":
		case "newline":
			if s.TLS {
				bad("framing newline: RFC 5425 (tls: true) frames by octet counting only")
			}
		default:
			bad("framing %q: use octet_counting or newline", s.Framing)
		}
		if s.Facility != nil && (*s.Facility < 0 || *s.Facility > 23) {
			bad("facility %d: must be 0 to 23", *s.Facility)
		}
	case KindHEC, KindWebhook:
		if u, err := url.Parse(s.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			bad("url: must be an https URL")
		}
		file, env, what := s.TokenFile, s.TokenEnv, "token"
		if s.Type == KindWebhook {
			file, env, what = s.HMACKeyFile, s.HMACKeyEnv, "hmac_key"
		}
		if (file == "") == (env == "") {
			bad("set one of %s_file and %s_env", what, what)
		} else if v, err := readSecret(file, env); err != nil {
			bad("%s: %v", what, err)
		} else if s.Type == KindWebhook && len(v) < MinHMACKeyBytes {
			bad("hmac_key: %d bytes; at least %d are required (make one with: openssl rand -hex 32)", len(v), MinHMACKeyBytes)
		}
	default:
		bad("type %q: use file, syslog, splunk_hec or webhook", s.Type)
	}
	if s.CAFile != "" {
		if _, err := readPool(s.CAFile); err != nil {
			bad("ca_file: %v", err)
		}
	}
	return errs
}

// MinHMACKeyBytes is the shortest webhook key admitted: the HMAC-SHA256
// key should be as long as its output.
const MinHMACKeyBytes = 32

// readSecret reads a token or key from a file (trimmed of surrounding
// space), refusing one its group or others may read, as the key-encryption
// key file is (ca.ReadPrivateFile), or from an environment variable; the
// error never holds the secret.
func readSecret(file, env string) (string, error) {
	var v string
	if file != "" {
		b, err := ca.ReadPrivateFile(file, "file")
		if err != nil {
			return "", err
		}
		v = strings.TrimSpace(string(b))
	} else {
		v = strings.TrimSpace(os.Getenv(env))
	}
	if v == "" {
		return "", errors.New("empty")
	}
	return v, nil
}

func readPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

func (s *SinkConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.ServerName}
	if s.CAFile != "" {
		pool, err := readPool(s.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Build makes the sinks of a validated configuration. nodeID is the syslog
// hostname and HEC host when none is configured.
func Build(sinks []SinkConfig, nodeID string, now func() time.Time) ([]Target, error) {
	var out []Target
	for _, s := range sinks {
		t, err := s.build(nodeID, now)
		if err != nil {
			for _, o := range out {
				o.Sink.Close()
			}
			return nil, fmt.Errorf("audit_export sink %s: %w", s.Name, err)
		}
		out = append(out, Target{Name: s.Name, Kind: s.Type, Sink: t, FromEnd: s.Start == "end"})
	}
	return out, nil
}

func (s *SinkConfig) build(nodeID string, now func() time.Time) (Sink, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	var tlsCfg *tls.Config
	if s.Type != KindFile && (s.Type != KindSyslog || s.TLS) {
		var err error
		if tlsCfg, err = s.tlsConfig(); err != nil {
			return nil, err
		}
	}
	host := s.Hostname
	if host == "" {
		host = nodeID
	}
	switch s.Type {
	case KindFile:
		size, files := s.MaxSizeMiB, s.MaxFiles
		if size == 0 {
			size = 100
		}
		if files == 0 {
			files = 10
		}
		return NewFileSink(s.Path, int64(size)<<20, files), nil
	case KindSyslog:
		facility := 13
		if s.Facility != nil {
			facility = *s.Facility
		}
		app := s.AppName
		if app == "" {
			app = "rampart"
		}
		return NewSyslogSink(s.Address, tlsCfg, s.Framing == "newline", facility, host, app, timeout), nil
	case KindHEC:
		tok, err := readSecret(s.TokenFile, s.TokenEnv)
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		st := s.SourceType
		if st == "" {
			st = "rampart:audit"
		}
		return NewHECSink(s.URL, tok, host, s.Source, st, s.Index, tlsCfg, timeout), nil
	case KindWebhook:
		key, err := readSecret(s.HMACKeyFile, s.HMACKeyEnv)
		if err != nil {
			return nil, fmt.Errorf("hmac key: %w", err)
		}
		if len(key) < MinHMACKeyBytes {
			return nil, fmt.Errorf("hmac key: %d bytes; at least %d are required", len(key), MinHMACKeyBytes)
		}
		return NewWebhookSink(s.URL, []byte(key), tlsCfg, timeout, now), nil
	}
	return nil, fmt.Errorf("type %q", s.Type)
}
