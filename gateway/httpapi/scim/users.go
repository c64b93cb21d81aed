package scim

import (
	"net/http"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	filter "github.com/scim2/filter-parser/v2"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// users is the /Users resource. What Rampart keeps of a person is userName
// (their login), one e-mail address, externalId and active; other
// attributes are accepted and not kept.
type users struct{ h *Handler }

// userResource is u as SCIM shows them; active is always there (Entra ID
// reads it from every GET and filter response).
func userResource(u *raftstore.User) scim.Resource {
	attrs := scim.ResourceAttributes{
		"userName": u.Login,
		"active":   u.Status == raftstore.UserActive,
	}
	if u.Email != "" {
		attrs["emails"] = []any{map[string]any{"value": u.Email, "type": "work", "primary": true}}
	}
	if len(u.SCIMGroups) > 0 {
		gs := make([]any, len(u.SCIMGroups))
		for i, g := range u.SCIMGroups {
			gs[i] = map[string]any{"value": g, "display": g}
		}
		attrs["groups"] = gs
	}
	res := scim.Resource{ID: u.ID, Attributes: attrs, Meta: meta(u.CreatedAt, u.UpdatedAt, u.ModifyIndex)}
	if u.ExternalID != "" {
		res.ExternalID = optional.NewString(u.ExternalID)
	}
	return res
}

// fromAttributes reads a person out of a POST or PUT body.
func fromAttributes(attrs scim.ResourceAttributes) control.SCIMUser {
	var in control.SCIMUser
	in.UserName, _ = attrs["userName"].(string)
	in.ExternalID, _ = attrs["externalId"].(string)
	in.Email = pickEmail(attrs["emails"])
	if a, ok := attrs["active"].(bool); ok {
		in.Active = &a
	}
	return in
}

// pickEmail chooses one address of a SCIM emails list: the primary one,
// else the work one, else the first.
func pickEmail(v any) string {
	list, _ := v.([]any)
	var first, work string
	for _, e := range list {
		m, _ := e.(map[string]any)
		val, _ := m["value"].(string)
		if val == "" {
			continue
		}
		if p, _ := m["primary"].(bool); p {
			return val
		}
		if t, _ := m["type"].(string); strings.EqualFold(t, "work") && work == "" {
			work = val
		}
		if first == "" {
			first = val
		}
	}
	if work != "" {
		return work
	}
	return first
}

func (s users) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	u, err := s.h.cfg.Control.SCIMCreateUser(r.Context(), from(r).actor, fromAttributes(attrs))
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	return userResource(u), nil
}

func (s users) get(id string) (*raftstore.User, error) {
	_, u, err := s.h.cfg.Store.State().UserByID(nil, id)
	if err != nil {
		return nil, err
	}
	if u == nil || !control.SCIMVisible(u) {
		return nil, scimerrors.ScimErrorResourceNotFound(id)
	}
	return u, nil
}

func (s users) Get(r *http.Request, id string) (scim.Resource, error) {
	u, err := s.get(id)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	return userResource(u), nil
}

// GetAll lists the people SCIM sees, in id order, filtered by the
// library's validated filter (userName eq, externalId eq, …) and paged.
func (s users) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	_, all, err := s.h.cfg.Store.State().Users(nil)
	if err != nil {
		return scim.Page{}, s.h.scimError(r, err)
	}
	var out []scim.Resource
	for _, u := range all {
		if !control.SCIMVisible(u) {
			continue
		}
		res := userResource(u)
		if p.FilterValidator != nil && p.FilterValidator.PassesFilter(flat(res)) != nil {
			continue
		}
		out = append(out, res)
	}
	return page(out, p), nil
}

// flat is a resource as the filter sees it: its attributes with id and
// externalId.
func flat(res scim.Resource) map[string]any {
	m := make(map[string]any, len(res.Attributes)+2)
	for k, v := range res.Attributes {
		m[k] = v
	}
	m["id"] = res.ID
	if res.ExternalID.Present() {
		m["externalId"] = res.ExternalID.Value()
	}
	return m
}

func (s users) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	return s.update(r, id, fromAttributes(attrs))
}

func (s users) update(r *http.Request, id string, in control.SCIMUser) (scim.Resource, error) {
	u, err := s.h.cfg.Control.SCIMUpdateUser(r.Context(), from(r).actor, id, in)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	return userResource(u), nil
}

func (s users) Delete(r *http.Request, id string) error {
	if err := s.h.cfg.Control.SCIMDeleteUser(r.Context(), from(r).actor, id); err != nil {
		return s.h.scimError(r, err)
	}
	return nil
}

// Patch applies the operations to the person as they are, then makes the
// result one change. It takes Okta's path-less {"active": false}, Entra
// ID's capitalised ops, dotted keys (name.givenName) and
// emails[type eq "work"].value paths.
func (s users) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	u, err := s.get(id)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	in := control.SCIMUser{UserName: u.Login, ExternalID: u.ExternalID, Email: u.Email}
	for _, op := range ops {
		if op.Path == nil {
			values, _ := op.Value.(map[string]any)
			for key, v := range values {
				path, err := filter.ParsePath([]byte(key))
				if err != nil {
					continue // an extension's container (its URI as key): nothing Rampart keeps
				}
				if err := applyUserOp(&in, op.Op, &path, v); err != nil {
					return scim.Resource{}, err
				}
			}
			continue
		}
		if err := applyUserOp(&in, op.Op, op.Path, op.Value); err != nil {
			return scim.Resource{}, err
		}
	}
	return s.update(r, id, in)
}

// applyUserOp applies one validated operation on path to in.
func applyUserOp(in *control.SCIMUser, op string, path *filter.Path, v any) error {
	if uri := path.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, "urn:ietf:params:scim:schemas:core:2.0:User") {
		return nil // an extension's attribute: not kept
	}
	remove := op == scim.PatchOperationRemove
	switch name := strings.ToLower(path.AttributePath.AttributeName); name {
	case "username":
		if remove {
			return scimerrors.ScimErrorMutability
		}
		in.UserName, _ = v.(string)
	case "externalid":
		if remove {
			return scimerrors.ScimErrorMutability
		}
		in.ExternalID, _ = v.(string)
	case "active":
		a, ok := v.(bool)
		if remove || !ok {
			return scimerrors.ScimErrorInvalidValue
		}
		in.Active = &a
	case "emails":
		switch {
		case remove:
			in.Email = ""
		case path.ValueExpression != nil || path.SubAttributeName() != "" || path.AttributePath.SubAttributeName() != "":
			// emails[type eq "work"].value: the address itself.
			if s, ok := v.(string); ok {
				in.Email = s
			} else if m, ok := v.(map[string]any); ok {
				in.Email, _ = m["value"].(string)
			}
		default:
			if e := pickEmail(v); e != "" || op == scim.PatchOperationReplace {
				in.Email = e
			}
		}
	default:
		// name.*, displayName, title, phoneNumbers, …: accepted, not kept.
	}
	return nil
}
