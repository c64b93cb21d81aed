package hostapply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// HomePolicy says what happens to a deleted account's home directory.
type HomePolicy string

const (
	// HomeKeep leaves the home directory where it is (owned by the retired
	// uid, which the cluster never reuses).
	HomeKeep HomePolicy = "keep"
	// HomeArchive packs the home directory into Config.ArchiveDir (tar.gz)
	// and then removes it with the account (userdel -r).
	HomeArchive HomePolicy = "archive"
)

// Marker is the GECOS comment of every account the agent creates.
const Marker = "rampart-managed"

// ManagedGroup is the system group (groupadd -r) every account the agent
// manages is a supplementary member of, disabled ones not yet deleted
// included. sshd's drop-in matches it ("Match Group rampart-managed") to let
// those accounts in with a certificate only, so that a new person changes
// no sshd file and costs no reload. The name is reserved: a desired group or
// user of that name is refused.
const ManagedGroup = "rampart-managed"

// Config configures a Host. Paths are as the system sees them (absolute);
// zero values take the defaults shown.
type Config struct {
	// Root prefixes every path the agent reads or writes itself (the state
	// file, sudoers.d, the sshd files). The account database is read and
	// changed through the tools, which always use the real /etc, so a Root
	// other than "/" is only for tests with a fake Runner: New refuses it
	// with ExecRunner (ErrUnsafeRoot).
	Root string
	// Runner runs the system tools; ExecRunner when nil.
	Runner Runner

	// StateFile records what the agent manages. Default
	// /var/lib/rampart-agent/managed.json.
	StateFile string
	// HomeBase is where homes are made (HomeBase/name). Default /home.
	HomeBase string
	// DefaultShell is a User's shell when it names none. Default /bin/bash.
	DefaultShell string
	// MinID is the lowest uid or gid the agent will create or touch.
	// Default 1000.
	MinID uint32
	// Reserved are names refused in addition to api.ReservedUnixNames.
	Reserved []string
	// DeleteGrace is how long a deleted account is kept (locked, expired)
	// before userdel. Default 7 days; negative means at once.
	DeleteGrace time.Duration
	// HomeOnDelete: HomeKeep (default) or HomeArchive.
	HomeOnDelete HomePolicy
	// ArchiveDir holds archived homes. Default
	// /var/lib/rampart-agent/home-archive.
	ArchiveDir string

	// SudoersFile is checked for an include of SudoersDir. Default
	// /etc/sudoers.
	SudoersFile string
	// SudoersDir receives rampart-<entitlement> files. Default
	// /etc/sudoers.d.
	SudoersDir string

	// SSHDConfig is sshd's main config file. Default /etc/ssh/sshd_config.
	SSHDConfig string
	// SSHDDropIn is the agent's drop-in, used when SSHDConfig includes it.
	// Default /etc/ssh/sshd_config.d/00-rampart.conf: sshd keeps the first
	// value it reads, so the drop-in sorts before the usual 10-*.conf,
	// 50-cloud-init.conf. The file of older agents beside it,
	// rampart.conf, is removed when it carries the agent's header.
	SSHDDropIn string
	// TrustedCAKeysFile is sshd's TrustedUserCAKeys. Default
	// /etc/ssh/rampart_user_ca_keys.
	TrustedCAKeysFile string
	// PrincipalsDir holds one AuthorizedPrincipalsFile per managed user.
	// Default /etc/ssh/rampart_principals. The agent owns the directory:
	// files in it that are not a managed, active user's are removed.
	PrincipalsDir string
	// HostCertDir receives rampart_host_<keytype>-cert.pub. Default /etc/ssh.
	HostCertDir string
	// HostKeyGlob finds the host public keys a host certificate must
	// certify. Default /etc/ssh/ssh_host_*_key.pub.
	HostKeyGlob string
	// SSHD is the sshd binary, for sshd -t and -T. Default /usr/sbin/sshd.
	SSHD string
	// SSHDPidFile is read by the default Reload. Default /run/sshd.pid.
	SSHDPidFile string
	// Reload makes sshd read its changed config. nil: on Linux,
	// `systemctl reload` of an active ssh.service or sshd.service when
	// systemd runs, else SIGHUP to the pid in SSHDPidFile (nothing when no
	// sshd runs).
	Reload func(ctx context.Context) error

	// KillUser ends every process of uid. nil: pkill -KILL by effective and
	// real uid; on Linux, with ExecRunner, also every process whose audit
	// login uid is uid (what the user runs through sudo).
	KillUser func(ctx context.Context, uid uint32) error
	// ProcessUIDs lists the uids that own processes, so that KillUser runs
	// only for those. nil: on Linux with ExecRunner a scan of /proc; else
	// KillUser runs for every deprovisioned account on every pass.
	ProcessUIDs func() (map[uint32]bool, error)

	// HostKeyFiles, when set, are the host public keys a host certificate
	// must certify, instead of the files HostKeyGlob finds.
	HostKeyFiles []string

	// SingleUser, when set, is the one account this Host serves, the
	// account the agent runs as (single-user mode, singleuser.go): sshd
	// trust for that account only, no account, group or sudo rule created
	// or changed, sshd reloaded by its pid file only. Never root.
	SingleUser string

	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives one line per change; slog.Default() when nil.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&c.Root, "/")
	def(&c.StateFile, "/var/lib/rampart-agent/managed.json")
	def(&c.HomeBase, "/home")
	def(&c.DefaultShell, "/bin/bash")
	def(&c.ArchiveDir, "/var/lib/rampart-agent/home-archive")
	def(&c.SudoersFile, "/etc/sudoers")
	def(&c.SudoersDir, "/etc/sudoers.d")
	def(&c.SSHDConfig, "/etc/ssh/sshd_config")
	def(&c.SSHDDropIn, "/etc/ssh/sshd_config.d/00-rampart.conf")
	def(&c.TrustedCAKeysFile, "/etc/ssh/rampart_user_ca_keys")
	def(&c.PrincipalsDir, "/etc/ssh/rampart_principals")
	def(&c.HostCertDir, "/etc/ssh")
	def(&c.HostKeyGlob, "/etc/ssh/ssh_host_*_key.pub")
	def(&c.SSHD, "/usr/sbin/sshd")
	def(&c.SSHDPidFile, "/run/sshd.pid")
	if c.HomeOnDelete == "" {
		c.HomeOnDelete = HomeKeep
	}
	if c.MinID == 0 {
		c.MinID = 1000
	}
	if c.DeleteGrace == 0 {
		c.DeleteGrace = 7 * 24 * time.Hour
	}
	if c.Runner == nil {
		c.Runner = ExecRunner{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// check lists every problem of a defaulted config.
func (c *Config) check() error {
	var errs []error
	if !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("config: root %q is not absolute", c.Root))
	}
	if _, real := c.Runner.(ExecRunner); real && filepath.Clean(c.Root) != "/" {
		errs = append(errs, ErrUnsafeRoot)
	}
	for name, p := range map[string]string{
		"state file": c.StateFile, "home base": c.HomeBase, "archive dir": c.ArchiveDir,
		"sudoers file": c.SudoersFile, "sudoers dir": c.SudoersDir, "sshd config": c.SSHDConfig,
		"sshd drop-in": c.SSHDDropIn, "trusted CA keys file": c.TrustedCAKeysFile,
		"principals dir": c.PrincipalsDir, "host cert dir": c.HostCertDir,
		"host key glob": c.HostKeyGlob, "sshd": c.SSHD, "sshd pid file": c.SSHDPidFile,
	} {
		// These paths are written into sshd_config or passed to tools:
		// keep them plain.
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || strings.ContainsAny(p, " \t\r\n\"'%#") {
			errs = append(errs, fmt.Errorf("config: %s %q is not a clean absolute path without spaces, quotes, %% or #", name, p))
		}
	}
	if err := checkShell(c.DefaultShell); err != nil {
		errs = append(errs, fmt.Errorf("config: default shell: %w", err))
	}
	if c.HomeOnDelete != HomeKeep && c.HomeOnDelete != HomeArchive {
		errs = append(errs, fmt.Errorf("config: home on delete %q is not keep or archive", c.HomeOnDelete))
	}
	if c.HomeBase == "/" {
		errs = append(errs, errors.New("config: home base must not be /"))
	}
	for _, f := range c.HostKeyFiles {
		if !filepath.IsAbs(f) || filepath.Clean(f) != f {
			errs = append(errs, fmt.Errorf("config: host key file %q is not a clean absolute path", f))
		}
	}
	if c.SingleUser != "" && (!api.IsPOSIXName(c.SingleUser) || c.SingleUser == "root") {
		errs = append(errs, fmt.Errorf("config: single user %q: give the name of the unprivileged account the agent runs as, never root", c.SingleUser))
	}
	for _, r := range c.Reserved {
		if !api.IsPOSIXName(r) {
			errs = append(errs, fmt.Errorf("config: reserved name %q is not a POSIX name", r))
		}
	}
	return errors.Join(errs...)
}
