package hostapply

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// posixNameRE is the portable unix account or group name, as the cluster
// checks it (raftstore's posixNameRE): it cannot start with '-' (an option to
// a tool), holds no ':' ',' or whitespace (field separators of /etc/passwd,
// /etc/group and sudoers) and is at most 32 bytes.
var posixNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// shellRE accepts a clean absolute path made of unremarkable characters.
var shellRE = regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`)

// reservedNames are account and group names the agent never creates, even
// where this host has no such account: each is a system account on some
// distribution, a group that default sudoers or polkit rules trust (sudo,
// admin, wheel), or a cloud image's default login. A collision with one that
// exists would be caught anyway; reserving them also keeps a missing one
// from being created with a cluster id and then trusted by local policy.
var reservedNames = toSet(
	"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news",
	"uucp", "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody",
	"nogroup", "messagebus", "sshd", "polkitd", "dbus", "tss", "avahi", "chrony",
	"ntp", "postfix", "postdrop", "ftp", "halt", "shutdown", "operator",
	"adm", "admin", "administrator", "sudo", "wheel", "staff", "users",
	"shadow", "utmp", "tty", "disk", "kmem", "dialout", "fax", "voice", "cdrom",
	"floppy", "tape", "audio", "dip", "video", "plugdev", "netdev", "src",
	"sasl", "scanner", "input", "kvm", "render", "crontab", "ssl-cert",
	"lpadmin", "sambashare", "docker", "lxd", "libvirt", "qemu", "rpc",
	"rpcuser", "nfsnobody", "mysql", "postgres", "redis", "nginx", "apache",
	"ubuntu", "debian", "ec2-user", "centos", "fedora", "cloud-user",
	"rampart", "rampart-agent", ManagedGroup,
)

// reservedPrefixes: Debian names system accounts "_name" and systemd
// "systemd-name".
var reservedPrefixes = []string{"_", "systemd-"}

func toSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// maxID bounds uids and gids: above it, tools disagree on signedness, and
// 4294967295 is (uid_t)-1.
const maxID = 1<<31 - 1

// checkName refuses a user or group name that must not reach a file or a
// command.
func (h *Host) checkName(kind, name string) error {
	if !posixNameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q is not a POSIX name (lowercase letters, digits, '_' and '-', at most 32, not starting with a digit or '-')", ErrInvalid, kind, name)
	}
	if reservedNames[name] || h.extraReserved[name] {
		return fmt.Errorf("%w: %s name %q is reserved", ErrInvalid, kind, name)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("%w: %s name %q starts with the reserved prefix %q", ErrInvalid, kind, name, p)
		}
	}
	return nil
}

// checkID refuses a uid or gid below MinID (root and system accounts), the
// overflow ids and anything past maxID.
func (h *Host) checkID(kind string, id uint32) error {
	switch {
	case id < h.cfg.MinID:
		return fmt.Errorf("%w: %s %d is below %d (system range)", ErrInvalid, kind, id, h.cfg.MinID)
	case id == 65534 || id == 65535:
		return fmt.Errorf("%w: %s %d is the overflow id (nobody)", ErrInvalid, kind, id)
	case id > maxID:
		return fmt.Errorf("%w: %s %d is above %d", ErrInvalid, kind, id, maxID)
	}
	return nil
}

func checkShell(sh string) error {
	if !shellRE.MatchString(sh) || path.Clean(sh) != sh {
		return fmt.Errorf("%w: shell %q is not a clean absolute path", ErrInvalid, sh)
	}
	return nil
}
