package raftstore

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-memdb"
	"github.com/rampart-ssh/rampart/api"
)

const tableProjects = "projects"

// Limits of a project's per-hop certificate TTL, and its default: the
// bounds are api's (api/certttl.go), which the CA enforces too. These names
// stay for the admin shell's flag help.
const (
	DefaultCertTTL = api.DefaultUserCertTTL
	MinCertTTL     = api.MinUserCertTTL
	MaxCertTTL     = api.MaxUserCertTTL
)

// maxDescriptionLen bounds free-text descriptions shown in the admin shell.
const maxDescriptionLen = 1024

// projectNameRE: a project name is also a path segment of grant ids
// ("project/group") and of CA names, so it never holds a slash.
var projectNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ProjectSettings is the policy a project applies to every hop into it.
type ProjectSettings struct {
	// CertTTL is the per-hop user certificate TTL; 0 means DefaultCertTTL.
	// When set it must lie within MinCertTTL..MaxCertTTL.
	CertTTL time.Duration
	// Recording records pty sessions; RecordInput also records keystrokes.
	Recording   bool
	RecordInput bool
	// RecordingFailOpen lets a session go on when its recording cannot be
	// written; false (the default) closes it.
	RecordingFailOpen  bool
	AllowLocalForward  bool
	AllowRemoteForward bool
	AllowAgentForward  bool
	// RequireHostCertificate refuses to connect to a target that offers
	// no host certificate from the host CA, instead of accepting the host
	// key pinned at enrollment.
	RequireHostCertificate bool
	// SharedLogins are unix accounts other than the user's own that the
	// project grants (e.g. "deploy"); POSIX names, kept sorted and unique.
	SharedLogins []string
	// IdleTimeout and MaxSessionDuration end a session; 0 means none.
	IdleTimeout        time.Duration
	MaxSessionDuration time.Duration
	// ServerNames are the name rules of the project's targets: glob
	// patterns (path.Match: *, ?, [a-z]) that every name and alt name an
	// enrollment asks for must match one of. Empty: any name that is not a
	// node's. Kept lowercase, sorted and unique.
	ServerNames []string `json:",omitempty"`
	// AllowPersonalKeys lets the project's servers accept keys from the
	// managed accounts' own authorized_keys besides certificates: a weaker
	// mode, in which such a login skips the bastion and its recording.
	AllowPersonalKeys bool
	// Requests, when set, lets people ask for just-in-time access to the
	// project (requestpolicy.go); nil takes no requests.
	Requests *RequestPolicy `json:",omitempty"`
}

// maxServerNameRules bounds a project's name rules.
const maxServerNameRules = 64

// AllowsServerName reports whether the project's name rules let a target
// be called name (case-insensitive).
func (s ProjectSettings) AllowsServerName(name string) bool {
	if len(s.ServerNames) == 0 {
		return true
	}
	name = strings.ToLower(name)
	for _, p := range s.ServerNames {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

// DefaultProjectSettings are the settings of a project created without
// them: sessions are recorded. Only creation applies them; a stored project
// keeps what it has (an old record decodes Recording as it was written).
func DefaultProjectSettings() ProjectSettings {
	return ProjectSettings{Recording: true}
}

// EffectiveCertTTL is CertTTL with the default applied.
func (s ProjectSettings) EffectiveCertTTL() time.Duration {
	if s.CertTTL == 0 {
		return DefaultCertTTL
	}
	return s.CertTTL
}

func (s ProjectSettings) validate() error {
	if s.CertTTL != 0 {
		if err := api.CheckUserCertTTL(s.CertTTL); err != nil {
			return invalidf("cert ttl %v", err)
		}
	}
	switch {
	case s.IdleTimeout < 0:
		return invalidf("idle timeout %s is negative", s.IdleTimeout)
	case s.MaxSessionDuration < 0:
		return invalidf("max session duration %s is negative", s.MaxSessionDuration)
	}
	for _, l := range s.SharedLogins {
		if !api.IsPOSIXName(l) {
			return invalidf("shared login %q is not a POSIX user name", l)
		}
	}
	if len(s.ServerNames) > maxServerNameRules {
		return invalidf("more than %d server name rules", maxServerNameRules)
	}
	for _, p := range s.ServerNames {
		if _, err := path.Match(p, ""); err != nil || p == "" || len(p) > 253 || hasControlRune(p) || strings.ContainsAny(p, "/ ") {
			return invalidf("server name rule %q is not a glob pattern such as *.web.example.com or web-*", p)
		}
	}
	return s.Requests.validate()
}

func (s ProjectSettings) equal(o ProjectSettings) bool {
	return s.CertTTL == o.CertTTL && s.Recording == o.Recording && s.RecordInput == o.RecordInput &&
		s.RecordingFailOpen == o.RecordingFailOpen && s.AllowLocalForward == o.AllowLocalForward &&
		s.AllowRemoteForward == o.AllowRemoteForward && s.AllowAgentForward == o.AllowAgentForward &&
		s.RequireHostCertificate == o.RequireHostCertificate &&
		slices.Equal(s.SharedLogins, o.SharedLogins) && slices.Equal(s.ServerNames, o.ServerNames) &&
		s.IdleTimeout == o.IdleTimeout && s.MaxSessionDuration == o.MaxSessionDuration &&
		s.AllowPersonalKeys == o.AllowPersonalKeys && s.Requests.equal(o.Requests)
}

// Project groups servers under one user CA and one set of grants.
type Project struct {
	Name        string
	Description string
	Settings    ProjectSettings
	CreatedAt   time.Time
	UpdatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

func init() {
	registerTable(tableDef{
		name:   tableProjects,
		newObj: func() any { return new(Project) },
		schema: &memdb.TableSchema{
			Name: tableProjects,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			},
		},
	})
	registerCommand(ProjectUpsertType, func() Command { return new(ProjectUpsert) })
	registerCommand(ProjectDeleteType, func() Command { return new(ProjectDelete) })
}

// ProjectUpsert creates a project or replaces its description and settings.
// CreatedAt and CreateIndex are kept; an upsert that changes nothing writes
// nothing, so watchers do not wake.
type ProjectUpsert struct {
	Project Project
	Now     time.Time
}

func (c *ProjectUpsert) Type() MessageType { return ProjectUpsertType }

func (c *ProjectUpsert) Validate() error {
	p := &c.Project
	if !projectNameRE.MatchString(p.Name) {
		return invalidf("project name %q: want lowercase letters, digits and '-', at most 63, not starting with '-'", p.Name)
	}
	if err := validText("project "+p.Name+" description", p.Description, maxDescriptionLen); err != nil {
		return err
	}
	if err := p.Settings.validate(); err != nil {
		return fmt.Errorf("project %s: %w", p.Name, err)
	}
	return nil
}

func (c *ProjectUpsert) apply(tx *writeTxn) (any, error) {
	p := c.Project
	p.Settings.SharedLogins = sortedSet(p.Settings.SharedLogins)
	p.Settings.ServerNames = lowerSortedSet(p.Settings.ServerNames)
	raw, err := tx.First(tableProjects, "id", p.Name)
	if err != nil {
		return nil, fmt.Errorf("upsert project %s: %w", p.Name, err)
	}
	// A shared login is an account no person owns: one that is a person's
	// unix name (deleted people included, whose names are never given out
	// again) would let every member log in as that person.
	for _, l := range p.Settings.SharedLogins {
		owner, err := tx.First(tableUsers, "unix_name", l)
		if err != nil {
			return nil, fmt.Errorf("upsert project %s: %w", p.Name, err)
		}
		if owner != nil {
			return nil, fmt.Errorf("%w: shared login %s of project %s is the unix name of user %s", ErrConflict, l, p.Name, owner.(*User).Login)
		}
	}
	if raw != nil {
		old := raw.(*Project)
		if old.Description == p.Description && old.Settings.equal(p.Settings) {
			cp := *old
			return &cp, nil // no-op: don't wake watchers
		}
		p.CreatedAt, p.CreateIndex = old.CreatedAt, old.CreateIndex
	} else {
		p.CreatedAt, p.CreateIndex = c.Now, tx.index
	}
	p.UpdatedAt, p.ModifyIndex = c.Now, tx.index
	if err := tx.Insert(tableProjects, &p); err != nil {
		return nil, fmt.Errorf("insert project %s: %w", p.Name, err)
	}
	return &p, tx.bump(tableProjects)
}

// ProjectDelete removes a project with its grants and its enrollment tokens
// (a token must not outlive its project and enroll into a later namesake).
// It is refused with ErrConflict while servers still belong to the project.
type ProjectDelete struct {
	Name string
}

func (c *ProjectDelete) Type() MessageType { return ProjectDeleteType }

func (c *ProjectDelete) Validate() error {
	if !projectNameRE.MatchString(c.Name) {
		return invalidf("project name %q is not valid", c.Name)
	}
	return nil
}

func (c *ProjectDelete) apply(tx *writeTxn) (any, error) {
	raw, err := tx.First(tableProjects, "id", c.Name)
	if err != nil {
		return nil, fmt.Errorf("delete project %s: %w", c.Name, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("project %s: %w", c.Name, ErrNotFound)
	}
	srv, err := tx.First(tableServers, "project", c.Name)
	if err != nil {
		return nil, fmt.Errorf("delete project %s: %w", c.Name, err)
	}
	if srv != nil {
		return nil, fmt.Errorf("%w: project %s still has servers (e.g. %s): delete them first", ErrConflict, c.Name, srv.(*Server).Name)
	}
	if err := tx.Delete(tableProjects, raw); err != nil {
		return nil, fmt.Errorf("delete project %s: %w", c.Name, err)
	}
	changed := []string{tableProjects}
	for _, t := range []string{tableGrants, tableTokens} {
		n, err := tx.DeleteAll(t, "project", c.Name)
		if err != nil {
			return nil, fmt.Errorf("delete %s of project %s: %w", t, c.Name, err)
		}
		if n > 0 {
			changed = append(changed, t)
		}
	}
	return nil, tx.bump(changed...)
}

// ProjectByName returns the project, or nil.
func (s *State) ProjectByName(ws memdb.WatchSet, name string) (uint64, *Project, error) {
	return getOne[Project](s, ws, tableProjects, "id", name)
}

// SharedLoginProject returns the first project (by name) that shares the
// unix account name, or "" when none does.
func (s *State) SharedLoginProject(name string) (string, error) {
	tx := s.ReadTxn()
	defer tx.Abort()
	return sharedLoginProjectTxn(tx, name)
}

// sharedLoginProjectTxn is SharedLoginProject inside a transaction. Projects
// are few, so it walks them rather than keep an index.
func sharedLoginProjectTxn(tx *memdb.Txn, name string) (string, error) {
	it, err := tx.Get(tableProjects, "id")
	if err != nil {
		return "", fmt.Errorf("list projects: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if p := raw.(*Project); slices.Contains(p.Settings.SharedLogins, name) {
			return p.Name, nil
		}
	}
	return "", nil
}

// Projects lists every project by name.
func (s *State) Projects(ws memdb.WatchSet) (uint64, []*Project, error) {
	return getAll[Project](s, ws, tableProjects, "id")
}

// projectExistsTxn reports ErrNotFound unless project exists.
func projectExistsTxn(tx *writeTxn, project string) error {
	raw, err := tx.First(tableProjects, "id", project)
	if err != nil {
		return fmt.Errorf("read project %s: %w", project, err)
	}
	if raw == nil {
		return fmt.Errorf("project %s: %w", project, ErrNotFound)
	}
	return nil
}

// validText refuses free text that is too long or holds control characters
// (which would reach terminals through the admin shell and logs).
func validText(what, s string, maxLen int) error {
	if len(s) > maxLen {
		return invalidf("%s is longer than %d bytes", what, maxLen)
	}
	if hasControlRune(s) {
		return invalidf("%s holds a control character", what)
	}
	return nil
}

// hasControlRune reports whether s holds a control character (newline, tab,
// escape, DEL, C1 controls) or invalid UTF-8.
func hasControlRune(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// sortedSet returns a sorted copy of ss without duplicates, nil when empty.
func sortedSet(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// lowerSortedSet is sortedSet of the lowercased strings.
func lowerSortedSet(in []string) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = strings.ToLower(v)
	}
	return sortedSet(out)
}
