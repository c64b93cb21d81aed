package control

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// projects and their grants.

// project returns the project named name, or a 404.
func project(st *raftstore.State, name string) (*raftstore.Project, error) {
	_, p, err := st.ProjectByName(nil, name)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, notFound("project %q: not found", name)
	}
	return p, nil
}

// CreateProject creates p; a project of that name must not exist.
func (s *Service) CreateProject(ctx context.Context, a Actor, p raftstore.Project) (*raftstore.Project, error) {
	if _, old, err := s.state(ctx).ProjectByName(nil, p.Name); err != nil {
		return nil, err
	} else if old != nil {
		return nil, conflict("project %s already exists: %v (change it with projects set)", p.Name, raftstore.ErrConflict)
	}
	return s.saveProject(ctx, a, EventProjectCreate, p)
}

// UpdateProject changes the project named name: edit gets a copy of it to
// change (its slices its own), and an error from edit is returned as it is.
func (s *Service) UpdateProject(ctx context.Context, a Actor, name string, edit func(p *raftstore.Project) error) (*raftstore.Project, error) {
	old, err := project(s.state(ctx), name)
	if err != nil {
		return nil, err
	}
	p := cloneProject(old)
	if err := edit(&p); err != nil {
		return nil, err
	}
	p.Name = old.Name
	return s.saveProject(ctx, a, EventProjectUpdate, p)
}

// PutProject creates or replaces the project named name with what build
// returns; build gets the current project (nil: it does not exist yet).
// The audit event says which of the two it was.
func (s *Service) PutProject(ctx context.Context, a Actor, name string, build func(cur *raftstore.Project) (raftstore.Project, error)) (*raftstore.Project, error) {
	_, cur, err := s.state(ctx).ProjectByName(nil, name)
	if err != nil {
		return nil, err
	}
	var arg *raftstore.Project
	typ := EventProjectCreate
	if cur != nil {
		c := cloneProject(cur)
		arg, typ = &c, EventProjectUpdate
	}
	p, err := build(arg)
	if err != nil {
		return nil, err
	}
	p.Name = name
	return s.saveProject(ctx, a, typ, p)
}

func cloneProject(p *raftstore.Project) raftstore.Project {
	c := *p
	c.Settings.SharedLogins = slices.Clone(p.Settings.SharedLogins)
	c.Settings.ServerNames = slices.Clone(p.Settings.ServerNames)
	c.Settings.Requests = p.Settings.Requests.Clone()
	return c
}

func (s *Service) saveProject(ctx context.Context, a Actor, typ string, p raftstore.Project) (*raftstore.Project, error) {
	var stored raftstore.Project
	if err := s.applyDecode(ctx, &raftstore.ProjectUpsert{Project: p, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, typ, map[string]string{"project": p.Name})
}

// DeleteProject deletes a project with its grants and enrollment tokens; it
// must have no servers.
func (s *Service) DeleteProject(ctx context.Context, a Actor, name string, c Confirm) error {
	p, err := project(s.state(ctx), name)
	if err != nil {
		return err
	}
	if err := confirm(c, "delete project "+p.Name+" with its grants and enrollment tokens"); err != nil {
		return err
	}
	if _, err := s.apply(ctx, &raftstore.ProjectDelete{Name: p.Name}); err != nil {
		return err
	}
	return s.audit(ctx, a, EventProjectDelete, map[string]string{"project": p.Name})
}

// Grant gives a group access to a project with a role (empty: user) and
// sudo entitlements, replacing its earlier grant there. The group need not
// exist yet; the project and the entitlements must.
func (s *Service) Grant(ctx context.Context, a Actor, g raftstore.Grant) (*raftstore.Grant, error) {
	if g.Role == "" {
		g.Role = raftstore.GrantUser
	}
	if g.Role != raftstore.GrantUser && g.Role != raftstore.GrantAdmin {
		return nil, invalid("role %q is not user or admin", g.Role)
	}
	if _, err := project(s.state(ctx), g.Project); err != nil {
		return nil, err
	}
	var stored raftstore.Grant
	if err := s.applyDecode(ctx, &raftstore.GrantUpsert{Grant: g, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, EventGrantCreate, map[string]string{"project": g.Project, "group": g.Group, "role": string(g.Role),
		"sudo": strings.Join(g.Sudo, ",")})
}

// RevokeGrant takes a group's access to a project away.
func (s *Service) RevokeGrant(ctx context.Context, a Actor, projectName, group string) error {
	_, err := s.apply(ctx, &raftstore.GrantDelete{Project: projectName, Group: group})
	if status, _ := fault.StatusOf(err); status == http.StatusNotFound {
		return notFound("group %s has no grant in project %s: %v", group, projectName, raftstore.ErrNotFound)
	}
	if err != nil {
		return err
	}
	return s.audit(ctx, a, EventGrantRevoke, map[string]string{"project": projectName, "group": group})
}
