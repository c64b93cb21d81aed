package agent

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"

	"github.com/rampart-ssh/rampart/agent/hostapply"
	"github.com/rampart-ssh/rampart/api"
)

// Single-user mode: the agent runs as an ordinary account, beside an sshd
// that account runs itself (`make dev`'s demo target), and manages that
// sshd's trust for the account alone (hostapply's SingleUser): it creates
// no account, group or sudo rule. Its files live in the data dir: the
// state file is data_dir/managed.json, and data_dir/sshd holds the user CA
// keys, the principals directory and the host certificates.

// geteuid is the process's effective uid (a variable for tests, which run
// as root in CI).
var geteuid = os.Geteuid

// currentUser is the account the agent runs as.
var currentUser = user.Current

// singleUserProblems checks the single-user settings: all of them or none.
func (c *Config) singleUserProblems() []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if !c.SingleUser {
		for key, v := range map[string]string{"sshd_config": c.SSHDConfig, "sshd_pid_file": c.SSHDPidFile, "sshd_binary": c.SSHDBinary} {
			if v != "" {
				bad("%s is set: it is only for single_user: true (a normal agent manages the system's sshd)", key)
			}
		}
		return errs
	}
	if geteuid() == 0 {
		bad("single_user: the agent runs as root: single-user mode runs as the one unprivileged account it serves (run it as that account)")
	} else if u, err := currentUser(); err != nil {
		bad("single_user: the account the agent runs as is unknown: %v", err)
	} else if !api.IsPOSIXName(u.Username) {
		bad("single_user: the account name %q is not a POSIX user name", u.Username)
	}
	for key, v := range map[string]string{"sshd_config": c.SSHDConfig, "sshd_pid_file": c.SSHDPidFile} {
		if !filepath.IsAbs(v) {
			bad("%s %q: single_user needs the absolute path of the sshd's own file", key, v)
		}
	}
	if c.SSHDBinary != "" && !filepath.IsAbs(c.SSHDBinary) {
		bad("sshd_binary %q: must be an absolute path", c.SSHDBinary)
	}
	if !filepath.IsAbs(c.DataDir) {
		bad("data_dir %q: single_user needs an absolute path (sshd reads files in it)", c.DataDir)
	}
	if len(c.HostKeyFiles) == 0 {
		bad("single_user: set host_key_files to the public host keys of the sshd")
	}
	return errs
}

// HostConfig is the host applier's configuration.
func (c *Config) HostConfig(logger *slog.Logger) hostapply.Config {
	hc := hostapply.Config{Logger: logger, StateFile: c.StateFile, ArchiveDir: c.HomeArchiveDir,
		HomeOnDelete: hostapply.HomePolicy(c.HomeOnDelete), DeleteGrace: c.DeleteGrace}
	if !c.SingleUser {
		return hc
	}
	name := ""
	if u, err := currentUser(); err == nil {
		name = u.Username
	}
	files := filepath.Join(c.DataDir, "sshd")
	hc.SingleUser = name
	hc.StateFile = filepath.Join(c.DataDir, "managed.json")
	hc.SSHDConfig, hc.SSHDPidFile, hc.SSHD = c.SSHDConfig, c.SSHDPidFile, c.SSHDBinary
	hc.TrustedCAKeysFile = filepath.Join(files, "user_ca_keys")
	hc.PrincipalsDir = filepath.Join(files, "principals")
	hc.HostCertDir = files
	hc.HostKeyFiles = c.HostKeyFiles
	// Checked by hostapply like every path, never used: single-user mode
	// drops nothing into the system's sshd_config.d.
	hc.SSHDDropIn = filepath.Join(files, "sshd_config.d", "00-rampart.conf")
	return hc
}
