package api

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The unix-name rule, in one place: the cluster assigns a person's unix name
// by it (gateway/login), turns IdP groups into unix groups by it
// (gateway/httpapi), and the agent creates accounts and groups by it
// (agent/hostapply). A name the cluster gives out is therefore one the agent
// will create.

// MaxUnixNameLen is the longest unix name Rampart uses (useradd's limit on
// most systems).
const MaxUnixNameLen = 32

// Errors ValidUnixName wraps.
var (
	// ErrNotPOSIXName: the name does not match ^[a-z_][a-z0-9_-]{0,31}$.
	ErrNotPOSIXName = errors.New("not a POSIX name")
	// ErrReservedUnixName: the name is a system or otherwise reserved name.
	ErrReservedUnixName = errors.New("reserved unix name")
)

// reservedUnixNames are never given to a person nor created by the agent,
// even where a host has no such account: system accounts of common
// distributions, groups that default sudoers or polkit rules trust (sudo,
// admin, wheel), cloud images' default logins, names with special meaning to
// sudo or sshd, and Rampart's own accounts and groups (rampart-managed is the
// agent's group of certificates-only accounts). A collision with one that
// exists would be caught anyway; reserving them also keeps a missing one
// from being created with a cluster id and then trusted by local policy.
var reservedUnixNames = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`
		root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats
		nobody nogroup nfsnobody
		sshd messagebus dbus syslog uuidd tcpdump tss landscape pollinate usbmux dnsmasq avahi
		polkitd rtkit colord lightdm geoclue chrony ntp rpc rpcuser
		gdm sddm pulse saned cups nscd sssd unbound named dhcpcd
		adm wheel sudo admin administrator staff operator shutdown halt users src
		ftp postfix postdrop postgres mysql redis nginx apache httpd
		ubuntu debian ec2-user centos fedora cloud-user core vagrant ansible
		console tty disk kmem dialout dip cdrom floppy tape audio video plugdev netdev scanner
		input kvm render sgx shadow utmp voice fax lpadmin sambashare sasl crontab ssl-cert
		docker lxd libvirt qemu
		rampart rampart-agent rampart-managed
		`) {
		reservedUnixNames[n] = true
	}
}

// reservedUnixPrefixes: Debian names system accounts "_name" (_apt) and
// systemd "systemd-name".
var reservedUnixPrefixes = []string{"_", "systemd-"}

// ReservedUnixNames lists the reserved names, sorted (names with a reserved
// prefix are reserved too; see IsReservedUnixName).
func ReservedUnixNames() []string {
	out := make([]string, 0, len(reservedUnixNames))
	for n := range reservedUnixNames {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// IsPOSIXName reports whether s is a portable unix account or group name:
// ^[a-z_][a-z0-9_-]{0,31}$. It cannot start with '-' (an option to a tool),
// holds no ':' ',' or whitespace (field separators of /etc/passwd,
// /etc/group and sudoers), and is at most MaxUnixNameLen bytes. Reserved
// names such as root are POSIX names: this is the rule for names that may
// reach a file (a run-as account, a shared login), not for names Rampart
// creates; for those, see ValidUnixName.
func IsPOSIXName(s string) bool {
	if s == "" || len(s) > MaxUnixNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', c == '_':
		case i > 0 && ('0' <= c && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// IsReservedUnixName reports whether Rampart refuses to give out or create
// name: a name on the reserved list or one starting with a reserved prefix
// ("_", "systemd-").
func IsReservedUnixName(name string) bool {
	if reservedUnixNames[name] {
		return true
	}
	for _, p := range reservedUnixPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ValidUnixName is the rule for a unix account or group that Rampart creates
// on a server: a POSIX name that is not reserved. The error wraps
// ErrNotPOSIXName or ErrReservedUnixName and quotes name safely.
func ValidUnixName(name string) error {
	if !IsPOSIXName(name) {
		return fmt.Errorf("%q is %w (lowercase letters, digits, '_' and '-', at most %d, not starting with a digit or '-')", name, ErrNotPOSIXName, MaxUnixNameLen)
	}
	if reservedUnixNames[name] {
		return fmt.Errorf("%q is a %w", name, ErrReservedUnixName)
	}
	for _, p := range reservedUnixPrefixes {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("%q is a %w (it starts with %q)", name, ErrReservedUnixName, p)
		}
	}
	return nil
}
