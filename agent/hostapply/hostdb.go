package hostapply

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The account database as the system's name service shows it (getent), so
// that an account from LDAP or sssd counts as taken just like one in
// /etc/passwd.

type passwdEntry struct {
	Name     string
	UID, GID uint32
	Gecos    string
	Home     string
	Shell    string
}

type groupEntry struct {
	Name    string
	GID     uint32
	Members []string
}

// shadowEntry keeps only what the agent checks: the password field of a
// managed account is '*' (active) or starts with '!' (locked), and its
// expiry is empty (active) or 1 (deprovisioned).
type shadowEntry struct {
	Password string
	Expire   string
}

type hostDB struct {
	users  map[string]*passwdEntry
	uids   map[uint32]*passwdEntry
	groups map[string]*groupEntry
	gids   map[uint32]*groupEntry
	shadow map[string]*shadowEntry
}

// snapshot enumerates passwd, group and shadow, or returns the last
// snapshot when no account tool ran since. Services that do not enumerate
// (LDAP without enumeration) are asked one name at a time by nssTaken before
// anything is created.
func (p *pass) snapshot() (*hostDB, error) {
	if p.db != nil && !p.dbStale {
		return p.db, nil
	}
	db := &hostDB{
		users: map[string]*passwdEntry{}, uids: map[uint32]*passwdEntry{},
		groups: map[string]*groupEntry{}, gids: map[uint32]*groupEntry{},
		shadow: map[string]*shadowEntry{},
	}
	out, err := p.runCmd("getent", "passwd")
	if err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	for _, line := range lines(out) {
		e, ok := parsePasswd(line)
		if !ok {
			continue
		}
		// The first entry of a name or id wins, as in a lookup.
		if db.users[e.Name] == nil {
			db.users[e.Name] = e
		}
		if db.uids[e.UID] == nil {
			db.uids[e.UID] = e
		}
	}
	out, err = p.runCmd("getent", "group")
	if err != nil {
		return nil, fmt.Errorf("read groups: %w", err)
	}
	for _, line := range lines(out) {
		e, ok := parseGroup(line)
		if !ok {
			continue
		}
		if db.groups[e.Name] == nil {
			db.groups[e.Name] = e
		}
		if db.gids[e.GID] == nil {
			db.gids[e.GID] = e
		}
	}
	out, err = p.runCmd("getent", "shadow")
	if err != nil {
		return nil, fmt.Errorf("read shadow: %w", err)
	}
	for _, line := range lines(out) {
		f := strings.Split(line, ":")
		if len(f) < 8 || f[0] == "" {
			continue
		}
		if db.shadow[f[0]] == nil {
			db.shadow[f[0]] = &shadowEntry{Password: f[1], Expire: f[7]}
		}
	}
	p.db, p.dbStale = db, false
	return db, nil
}

func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimRight(l, "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

func parsePasswd(line string) (*passwdEntry, bool) {
	f := strings.Split(line, ":")
	if len(f) != 7 || f[0] == "" {
		return nil, false
	}
	uid, ok1 := parseID(f[2])
	gid, ok2 := parseID(f[3])
	if !ok1 || !ok2 {
		return nil, false
	}
	return &passwdEntry{Name: f[0], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]}, true
}

func parseGroup(line string) (*groupEntry, bool) {
	f := strings.Split(line, ":")
	if len(f) != 4 || f[0] == "" {
		return nil, false
	}
	gid, ok := parseID(f[2])
	if !ok {
		return nil, false
	}
	var members []string
	if f[3] != "" {
		members = strings.Split(f[3], ",")
	}
	return &groupEntry{Name: f[0], GID: gid, Members: members}, true
}

// supplementary lists the groups that name user as a member, sorted.
func (db *hostDB) supplementary(user string) []string {
	var out []string
	for name, g := range db.groups {
		if slices.Contains(g.Members, user) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// nssTaken asks the name service for key in database (passwd or group, by
// name or id) and says who holds it, if anyone. getent exits 2 for "not
// found".
func (p *pass) nssTaken(database, key string) (string, bool, error) {
	out, err := p.runCmd("getent", database, key)
	if exitCode(err) == 2 {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	name, _, _ := strings.Cut(strings.TrimSpace(string(out)), ":")
	return name, true, nil
}
