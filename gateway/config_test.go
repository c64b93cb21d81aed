package gateway

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func loadWith(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := pflag.NewFlagSet("rampartd", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(fs)
}

func TestLoadConfig(t *testing.T) {
	example, err := filepath.Abs("../configs/rampartd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mixed := filepath.Join(t.TempDir(), "mixed.yaml")
	if err := os.WriteFile(mixed, []byte("kek_file: /k\nbogus: 1\nlogin:\n  binding_ttl: 10x\nlog:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	if err := os.WriteFile(typo, []byte("kek_file: /k\nlisten:\n  apii: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(*testing.T, *Config)
		wantErr []string
	}{
		{name: "ok/annotated-example", args: []string{"-c", example}, check: func(t *testing.T, c *Config) {
			if c.NodeID != "bastion-1" || c.Listen.SSH != "0.0.0.0:22" || c.Cluster.MaxStale != 10*time.Second || c.Log.Format != "json" {
				t.Fatalf("example not read as written: %+v", c)
			}
		}},
		{name: "ok/dev-defaults", args: []string{"--dev"}, check: func(t *testing.T, c *Config) {
			if c.DataDir != "./data" || c.Listen.SSH != "127.0.0.1:2222" || !c.Cluster.Bootstrap {
				t.Fatalf("dev defaults not applied: %+v", c)
			}
		}},
		{name: "ok/env-beats-file-flag-beats-env", args: []string{"-c", example, "--listen-api", "127.0.0.9:9443"},
			env: map[string]string{"RAMPART_LISTEN_API": "127.0.0.8:8443", "RAMPART_LOG_LEVEL": "debug"},
			check: func(t *testing.T, c *Config) {
				if c.Listen.API != "127.0.0.9:9443" || c.Log.Level != "debug" {
					t.Fatalf("precedence wrong: api=%s level=%s", c.Listen.API, c.Log.Level)
				}
			}},
		{name: "fail/every-problem-listed", args: []string{"--listen-api", "nonsense", "--node-id", "Bad Id", "--log-level", "loud"},
			wantErr: []string{"listen.api", "node_id", "log.level", "key-encryption key"}},
		{name: "fail/ciphers-and-pprof", args: []string{"--dev"},
			env:     map[string]string{"RAMPART_SSH_CIPHERS": "rot13", "RAMPART_LOG_PPROF_LISTEN": "0.0.0.0:6060"},
			wantErr: []string{`ssh.ciphers: "rot13" not supported`, "log.pprof_listen"}},
		{name: "ok/default-ciphers-aes-gcm-first", args: []string{"--dev"}, check: func(t *testing.T, c *Config) {
			if strings.Join(c.SSH.Ciphers, ",") != "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr" {
				t.Fatalf("default ciphers %v", c.SSH.Ciphers)
			}
		}},
		{name: "ok/metrics-on-their-own-listener", args: []string{"--dev"},
			env: map[string]string{"RAMPART_METRICS_LISTEN": "127.0.0.1:9090", "RAMPART_METRICS_PATH_PREFIX": "/ops"},
			check: func(t *testing.T, c *Config) {
				if c.Metrics.Listen != "127.0.0.1:9090" || c.Metrics.PathPrefix != "/ops" {
					t.Fatalf("metrics: %+v", c.Metrics)
				}
			}},
		{name: "fail/metrics", args: []string{"--dev"},
			env:     map[string]string{"RAMPART_METRICS_LISTEN": "nowhere", "RAMPART_METRICS_PATH_PREFIX": "/v1/ops"},
			wantErr: []string{"metrics.listen", `metrics.path_prefix "/v1/ops"`}},
		{name: "ok/memory-defaults", args: []string{"--dev"}, check: func(t *testing.T, c *Config) {
			if c.Memory.GCPercent != 50 || c.Memory.GCMinHeadroomMiB != 64 || c.Memory.SoftLimitMiB != 0 {
				t.Fatalf("memory defaults: %+v", c.Memory)
			}
		}},
		{name: "fail/memory", args: []string{"--dev"},
			env: map[string]string{"RAMPART_MEMORY_GC_PERCENT": "5", "RAMPART_MEMORY_SOFT_LIMIT_MIB": "10", "RAMPART_MEMORY_GC_MIN_HEADROOM_MIB": "-1"},
			wantErr: []string{"memory.gc_percent 5: must be between 10 and 1000", "memory.soft_limit_mib 10: 0 for no limit, or between 64 and 1073741824 (1 PiB)",
				"memory.gc_min_headroom_mib -1: must be between 0 (no floor) and 4096"}},
		{name: "ok/preauth-defaults", args: []string{"--dev"}, check: func(t *testing.T, c *Config) {
			if c.SSH.HandshakeTimeout != 20*time.Second || c.SSH.AuthTimeout != 10*time.Minute || c.SSH.MaxDeviceFlowsPerIP != 8 {
				t.Fatalf("pre-auth defaults: %+v", c.SSH)
			}
		}},
		{name: "fail/preauth", args: []string{"--dev"},
			env:     map[string]string{"RAMPART_SSH_HANDSHAKE_TIMEOUT": "11m", "RAMPART_SSH_MAX_DEVICE_FLOWS_PER_IP": "0"},
			wantErr: []string{"ssh.handshake_timeout 11m0s: must be at least 1s and not above ssh.auth_timeout", "ssh.max_device_flows_per_ip (0) must be positive"}},
		{name: "fail/jump-host-injection", args: []string{"--dev"},
			env:     map[string]string{"RAMPART_SSH_JUMP_HOST": "b.example.com\n  ProxyCommand sh -c id", "RAMPART_SSH_CLIENT_HOST_PATTERNS": "*.com"},
			wantErr: []string{"ssh.jump_host: jump host", "ssh.client_host_patterns: host pattern \"*.com\""}},
		{name: "ok/jump-host-with-port", args: []string{"--dev"}, env: map[string]string{"RAMPART_SSH_JUMP_HOST": "bastion.example.com:2222"},
			check: func(t *testing.T, c *Config) {
				n := &Node{cfg: c}
				if !slices.Contains(n.sshHostNames(), "bastion.example.com") {
					t.Fatalf("the jump host is not among the node's host names %v", n.sshHostNames())
				}
			}},
		{name: "fail/bootstrap-and-join", args: []string{"--dev", "--join", "x"}, wantErr: []string{"bootstrap and cluster.join are both set"}},
		{name: "ok/agent-defaults", args: []string{"--dev"}, check: func(t *testing.T, c *Config) {
			if c.Agents.CertValidity != 720*time.Hour || c.Agents.BinaryDir != "" {
				t.Fatalf("agents defaults: %+v", c.Agents)
			}
		}},
		{name: "fail/agent-cert-validity-and-binary-dir", args: []string{"--dev"},
			env:     map[string]string{"RAMPART_AGENTS_CERT_VALIDITY": "10s", "RAMPART_AGENTS_BINARY_DIR": "bin"},
			wantErr: []string{"agents.cert_validity 10s: must be between 30s and 8760h", `agents.binary_dir "bin": must be an absolute path`}},
		{name: "fail/wildcard-without-advertise", args: []string{"--kek-file", "/k"}, wantErr: []string{"set advertise.raft", "set advertise.api"}},
		{name: "fail/bad-uid-range", args: []string{"--dev"}, env: map[string]string{"RAMPART_CLUSTER_UID_RANGE": "10-5"}, wantErr: []string{"cluster.uid_range"}},
		{name: "fail/uid-and-gid-ranges-overlap", args: []string{"--dev"}, env: map[string]string{"RAMPART_CLUSTER_GID_RANGE": "80000-80999"},
			wantErr: []string{"cluster.uid_range 70000-89999 and cluster.gid_range 80000-80999 overlap"}},
		{name: "fail/unknown-key", args: []string{"-c", typo}, wantErr: []string{"listen.apii: unknown key"}},
		// A value that does not decode and a value that does not validate
		// are reported together, each once.
		{name: "fail/decode-and-validation-together", args: []string{"--dev", "-c", mixed},
			wantErr: []string{"bogus: unknown key", `login.binding_ttl: "10x" is not valid here`, `log.level "loud"`}},
		{name: "fail/issuer-not-a-url", args: []string{"--dev", "--oidc-issuer", "idp.example.com"},
			wantErr: []string{`oidc.issuer "idp.example.com": must be the identity provider's http(s) URL`}},
		{name: "fail/issuer-other-scheme", args: []string{"--dev", "--oidc-issuer", "ftp://idp.example.com"},
			wantErr: []string{`oidc.issuer "ftp://idp.example.com"`}},
		{name: "fail/listeners-same-port", args: []string{"--dev", "--listen-api", "127.0.0.1:2222"},
			wantErr: []string{"listen.ssh 127.0.0.1:2222 and listen.api 127.0.0.1:2222: two listeners on one port"}},
		{name: "fail/wildcard-collides", args: []string{"--kek-file", "/k", "--listen-raft", "127.0.0.5:8443"},
			env:     map[string]string{"RAMPART_ADVERTISE_API": "127.0.0.5:8443", "RAMPART_ADVERTISE_RAFT": "127.0.0.5:8300", "RAMPART_OIDC_ISSUER": "https://idp.example.com", "RAMPART_OIDC_CLIENT_ID": "r"},
			wantErr: []string{"listen.api 0.0.0.0:8443 and listen.raft 127.0.0.5:8443: two listeners on one port"}},
		{name: "fail/dev-idp-collides", args: []string{"--dev", "--listen-api", "127.0.0.1:5556"},
			wantErr: []string{"listen.api 127.0.0.1:5556 and dev_idp.listen 127.0.0.1:5556"}},
		{name: "ok/same-port-other-addresses", args: []string{"--dev", "--listen-api", "127.0.0.2:2222"}, check: func(t *testing.T, c *Config) {}},
		{name: "fail/dev-idp-without-dev", args: []string{"--kek-file", "/k", "--listen-api", "127.0.0.1:8443", "--listen-raft", "127.0.0.1:8300"},
			env:     map[string]string{"RAMPART_DEV_IDP_ENABLED": "true", "RAMPART_OIDC_ISSUER": "http://127.0.0.1:5556", "RAMPART_OIDC_CLIENT_ID": "r"},
			wantErr: []string{"dev_idp.enabled is only allowed with dev: true"}},
		{name: "ok/revalidation-defaults", args: []string{"--dev"}, check: func(t *testing.T, c *Config) {
			if c.OIDC.OfflineAccessMode() != "auto" || c.OIDC.RevalidateInterval != 5*time.Minute || c.OIDC.UnverifiedBindingMax != time.Hour {
				t.Fatalf("re-validation defaults: %+v", c.OIDC)
			}
		}},
		{name: "ok/revalidation-5s-in-dev", args: []string{"--dev"},
			env: map[string]string{"RAMPART_OIDC_REVALIDATE_INTERVAL": "5s", "RAMPART_OIDC_OFFLINE_ACCESS": "false"},
			check: func(t *testing.T, c *Config) {
				if c.OIDC.RevalidateInterval != 5*time.Second || c.OIDC.OfflineAccessMode() != "off" {
					t.Fatalf("re-validation: %+v", c.OIDC)
				}
			}},
		{name: "fail/revalidation", args: []string{"--kek-file", "/k", "--listen-api", "127.0.0.1:8443", "--listen-raft", "127.0.0.1:8300"},
			env: map[string]string{"RAMPART_OIDC_ISSUER": "https://idp.example.com", "RAMPART_OIDC_CLIENT_ID": "r",
				"RAMPART_OIDC_REVALIDATE_INTERVAL": "5s", "RAMPART_OIDC_OFFLINE_ACCESS": "sometimes", "RAMPART_OIDC_UNVERIFIED_BINDING_MAX": "2s"},
			wantErr: []string{"oidc.revalidate_interval 5s: must be between 30s and 24h (down to 1s with dev: true)",
				`oidc.offline_access "sometimes": use auto, true or false`, "oidc.unverified_binding_max 2s"}},
		{name: "fail/dev-on-public-address", args: []string{"--dev", "--listen-ssh", "10.1.2.3:2222"},
			wantErr: []string{"listen.ssh 10.1.2.3:2222 is not a loopback address"}},
		{name: "ok/dev-on-public-address-forced", args: []string{"--dev", "--listen-ssh", "10.1.2.3:2222"},
			env: map[string]string{"RAMPART_DEV_IDP_FORCE_NON_LOOPBACK": "true"},
			check: func(t *testing.T, c *Config) {
				if !c.DevIdP.ForceNonLoopback {
					t.Fatal("force flag not read")
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadWith(t, tc.args, tc.env)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("config accepted, want errors mentioning %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if n := strings.Count(err.Error(), w); n != 1 {
						t.Errorf("error mentions %q %d times, want once:\n%v", w, n, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// The default id ranges keep clear of every range a distribution reserves
// or hands out by itself; the old defaults (60001-62999, 63001-65533) sat
// inside Debian's reserved 60000-64999 and systemd's DynamicUser range.
func TestDefaultIDRangesClearOfReserved(t *testing.T) {
	reserved := []struct {
		what       string
		start, end uint32
	}{
		{"regular users (Debian, systemd)", 1000, 59999},
		{"Debian's reserved 60000-64999", 60000, 64999},
		{"systemd-homed", 60001, 60513},
		{"systemd DynamicUser", 61184, 65519},
		{"Debian's reserved 65000-65533", 65000, 65533},
		{"nobody and the 16-bit -1", 65534, 65535},
		{"useradd's first subordinate ids (SUB_UID_MIN, SUB_GID_MIN)", 100000, 165535},
		{"systemd-nspawn container ranges", 524288, 1879048191},
	}
	us, ue, err := ParseRange(DefaultUIDRange)
	if err != nil {
		t.Fatal(err)
	}
	gs, ge, err := ParseRange(DefaultGIDRange)
	if err != nil {
		t.Fatal(err)
	}
	if us <= ge && gs <= ue {
		t.Errorf("uid range %s and gid range %s overlap", DefaultUIDRange, DefaultGIDRange)
	}
	for _, r := range reserved {
		for _, d := range []struct {
			name       string
			start, end uint32
		}{{"uid " + DefaultUIDRange, us, ue}, {"gid " + DefaultGIDRange, gs, ge}} {
			if d.start <= r.end && r.start <= d.end {
				t.Errorf("default %s overlaps %s (%d-%d)", d.name, r.what, r.start, r.end)
			}
		}
	}
	c, err := loadWith(t, []string{"--dev"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.UIDRange != DefaultUIDRange || c.Cluster.GIDRange != DefaultGIDRange {
		t.Errorf("configured defaults %s, %s", c.Cluster.UIDRange, c.Cluster.GIDRange)
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in      string
		wantErr string
	}{
		{"70000-89999", ""},
		{"60001-62999", ""}, // what clusters bootstrapped before kept
		{"10-5", "need 1000 <= start <= end"},
		{"65000-66000", "overflow ids"},
		{"65535-70000", "overflow ids"},
		{"70000-3000000000", "need 1000 <= start <= end <= 2147483647"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, _, err := ParseRange(tc.in)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ParseRange(%q) = %v, want error %q", tc.in, err, tc.wantErr)
			}
		})
	}
}
