package scim

import (
	"net/http"
	"slices"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	filter "github.com/scim2/filter-parser/v2"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// groups is the /Groups resource. A group's id is its name, which is what
// grants refer to: it cannot be renamed through SCIM. Its members are the
// people SCIM made members; members from ID tokens are not SCIM's to see.
type groups struct{ h *Handler }

func (s groups) resource(g *raftstore.Group) (scim.Resource, error) {
	members, err := s.h.cfg.Store.State().SCIMMembersOf(g.Name)
	if err != nil {
		return scim.Resource{}, err
	}
	ms := make([]any, 0, len(members))
	for _, u := range members {
		ms = append(ms, map[string]any{"value": u.ID, "display": u.Login, "type": "User"})
	}
	res := scim.Resource{ID: g.Name, Attributes: scim.ResourceAttributes{"displayName": g.Name, "members": ms},
		Meta: meta(g.CreatedAt, g.CreatedAt, g.ModifyIndex)}
	if g.ExternalID != "" {
		res.ExternalID = optional.NewString(g.ExternalID)
	}
	return res, nil
}

func (s groups) get(id string) (*raftstore.Group, error) {
	_, g, err := s.h.cfg.Store.State().GroupByName(nil, id)
	if err != nil {
		return nil, err
	}
	if g == nil || !g.SCIM {
		return nil, scimerrors.ScimErrorResourceNotFound(id)
	}
	return g, nil
}

// memberIDs reads the ids of a members list.
func memberIDs(v any) []string {
	list, _ := v.([]any)
	var ids []string
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok {
			if id, _ := mm["value"].(string); id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func (s groups) put(r *http.Request, attrs scim.ResourceAttributes, create bool) (scim.Resource, error) {
	in := control.SCIMGroup{Members: memberIDs(attrs["members"])}
	in.DisplayName, _ = attrs["displayName"].(string)
	in.ExternalID, _ = attrs["externalId"].(string)
	g, err := s.h.cfg.Control.SCIMPutGroup(r.Context(), from(r).actor, in, create)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	res, err := s.resource(g)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	return res, nil
}

func (s groups) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	return s.put(r, attrs, true)
}

func (s groups) Get(r *http.Request, id string) (scim.Resource, error) {
	g, err := s.get(id)
	if err == nil {
		var res scim.Resource
		if res, err = s.resource(g); err == nil {
			return res, nil
		}
	}
	return scim.Resource{}, s.h.scimError(r, err)
}

func (s groups) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	_, all, err := s.h.cfg.Store.State().Groups(nil)
	if err != nil {
		return scim.Page{}, s.h.scimError(r, err)
	}
	var out []scim.Resource
	for _, g := range all {
		if !g.SCIM {
			continue
		}
		res, err := s.resource(g)
		if err != nil {
			return scim.Page{}, s.h.scimError(r, err)
		}
		if p.FilterValidator != nil && p.FilterValidator.PassesFilter(flat(res)) != nil {
			continue
		}
		out = append(out, res)
	}
	return page(out, p), nil
}

// Replace sets the group's members; its displayName must stay its name.
func (s groups) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	if name, _ := attrs["displayName"].(string); name != id {
		return scim.Resource{}, renameRefused
	}
	return s.put(r, attrs, false)
}

var renameRefused = scimerrors.ScimError{Status: http.StatusBadRequest, ScimType: scimerrors.ScimTypeMutability,
	Detail: "A group's name is what grants refer to: it cannot be renamed through SCIM; create a new group instead."}

func (s groups) Delete(r *http.Request, id string) error {
	if err := s.h.cfg.Control.SCIMDeleteGroup(r.Context(), from(r).actor, id); err != nil {
		return s.h.scimError(r, err)
	}
	return nil
}

// Patch applies member operations in order (Okta's
// members[value eq "…"] removes, Entra ID's remove with a value list, add,
// replace), then makes the difference one change.
func (s groups) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	g, err := s.get(id)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	current, err := s.h.cfg.Store.State().SCIMMembersOf(g.Name)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	now := map[string]bool{}
	for _, u := range current {
		now[u.ID] = true
	}
	want := map[string]bool{}
	for id := range now {
		want[id] = true
	}
	for _, op := range ops {
		if op.Path == nil {
			values, _ := op.Value.(map[string]any)
			for key, v := range values {
				switch strings.ToLower(key) {
				case "displayname":
					if name, _ := v.(string); name != g.Name {
						return scim.Resource{}, renameRefused
					}
				case "members":
					applyMembers(want, op.Op, nil, v)
				}
			}
			continue
		}
		switch strings.ToLower(op.Path.AttributePath.AttributeName) {
		case "members":
			applyMembers(want, op.Op, op.Path, op.Value)
		case "displayname":
			if name, _ := op.Value.(string); op.Op == scim.PatchOperationRemove || name != g.Name {
				return scim.Resource{}, renameRefused
			}
		}
	}
	var add, remove []string
	for id := range want {
		if !now[id] {
			add = append(add, id)
		}
	}
	for id := range now {
		if !want[id] {
			remove = append(remove, id)
		}
	}
	slices.Sort(add)
	slices.Sort(remove)
	stored, err := s.h.cfg.Control.SCIMPatchGroupMembers(r.Context(), from(r).actor, g.Name, add, remove)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	res, err := s.resource(stored)
	if err != nil {
		return scim.Resource{}, s.h.scimError(r, err)
	}
	return res, nil
}

// applyMembers applies one members operation to the set want.
func applyMembers(want map[string]bool, op string, path *filter.Path, v any) {
	switch op {
	case scim.PatchOperationAdd:
		for _, id := range memberIDs(v) {
			want[id] = true
		}
	case scim.PatchOperationReplace:
		clear(want)
		for _, id := range memberIDs(v) {
			want[id] = true
		}
	case scim.PatchOperationRemove:
		switch {
		case path != nil && path.ValueExpression != nil:
			// members[value eq "id"]
			if e, ok := path.ValueExpression.(*filter.AttributeExpression); ok &&
				strings.EqualFold(e.AttributePath.AttributeName, "value") && e.Operator == filter.EQ {
				if id, ok := e.CompareValue.(string); ok {
					delete(want, id)
				}
			}
		case v != nil:
			for _, id := range memberIDs(v) {
				delete(want, id)
			}
		default:
			clear(want) // remove "members": all of them
		}
	}
}
