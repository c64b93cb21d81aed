package login

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MaxUnixNameLen is the longest unix name Rampart creates (useradd's limit on
// most systems).
const MaxUnixNameLen = 32

var unixNamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

// reservedNames are never given to a person: system accounts of common
// distributions, names with special meaning to sudo or sshd, and Rampart's
// own mode selector. Anything below uid 1000 on a typical system is here.
var reservedNames = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`
		root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats nobody nogroup
		sshd _apt systemd-network systemd-resolve systemd-timesync systemd-coredump systemd-journal messagebus
		syslog uuidd tcpdump tss landscape pollinate usbmux dnsmasq avahi polkitd rtkit colord lightdm geoclue
		adm wheel sudo admin staff operator shutdown halt ftp postfix postgres mysql redis nginx apache httpd
		ubuntu debian ec2-user centos fedora cloud-user core vagrant ansible
		rampart rampart-agent rampart-managed console tty disk kmem dialout cdrom floppy tape audio video plugdev netdev
		users input kvm render sgx shadow utmp voice fax lpadmin sambashare docker lxd
		`) {
		reservedNames[n] = true
	}
}

// ErrUnsafeName is wrapped by every refusal of a claimed name.
var ErrUnsafeName = errors.New("cannot be used as a unix account name")

// BaseUnixName derives the unix name a claimed login asks for, or refuses it.
//
// The rule, which is documented for operators in docs/login.md:
//  1. an e-mail style login keeps only the part before the last '@';
//  2. ASCII letters are lowercased, and '.' becomes '_' (jane.doe → jane_doe);
//  3. the result must match [a-z_][a-z0-9_-]*, be at most 32 characters, and
//     not be a reserved or system name. Nothing else is rewritten: a claim
//     that needs more than that is refused, not guessed at.
func BaseUnixName(login string) (string, error) {
	name := login
	if i := strings.LastIndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		case r == '.':
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	name = b.String()
	quoted := strconv.QuoteToASCII(login)
	switch {
	case name == "":
		return "", fmt.Errorf("login %s is empty: %w", quoted, ErrUnsafeName)
	case len(name) > MaxUnixNameLen:
		return "", fmt.Errorf("login %s is longer than %d characters: %w", quoted, MaxUnixNameLen, ErrUnsafeName)
	case !unixNamePattern.MatchString(name):
		return "", fmt.Errorf("login %s has characters other than letters, digits, '_', '-' and '.', or starts with a digit or '-': %w", quoted, ErrUnsafeName)
	case reservedNames[name]:
		return "", fmt.Errorf("login %s maps to the reserved system name %q: %w", quoted, name, ErrUnsafeName)
	}
	return name, nil
}

// ResolveCollision returns the first of base, base-2, base-3, … that taken
// reports free, truncating base so the result stays within MaxUnixNameLen.
// The first person to log in keeps the plain name; later ones get suffixes in
// order of first login, and a name once given never changes.
func ResolveCollision(base string, taken func(string) (bool, error)) (string, error) {
	for i := 1; i < 1000; i++ {
		cand := base
		if i > 1 {
			suffix := "-" + strconv.Itoa(i)
			cand = base[:min(len(base), MaxUnixNameLen-len(suffix))] + suffix
		}
		if reservedNames[cand] {
			continue
		}
		t, err := taken(cand)
		if err != nil {
			return "", err
		}
		if !t {
			return cand, nil
		}
	}
	return "", fmt.Errorf("no free unix name for %q: %w", base, ErrUnsafeName)
}
