package control

import (
	"context"

	"github.com/rampart-ssh/rampart/raftstore"
)

// sudo entitlements: named, structured sudo rules that grants reference.

// CreateEntitlement creates a sudo entitlement; one of that name must not
// exist. Its rule is checked by the store (raftstore.EntitlementUpsert).
func (s *Service) CreateEntitlement(ctx context.Context, a Actor, e raftstore.Entitlement) (*raftstore.Entitlement, error) {
	if len(e.Commands) == 0 {
		return nil, invalid("entitlement %s: give at least one command", e.Name)
	}
	if _, old, err := s.state(ctx).EntitlementByName(nil, e.Name); err != nil {
		return nil, err
	} else if old != nil {
		return nil, conflict("entitlement %s already exists: %v (delete it first)", e.Name, raftstore.ErrConflict)
	}
	var stored raftstore.Entitlement
	if err := s.applyDecode(ctx, &raftstore.EntitlementUpsert{Entitlement: e, Now: s.now().UTC()}, &stored); err != nil {
		return nil, err
	}
	return &stored, s.audit(ctx, a, EventEntitlementCreate, map[string]string{"entitlement": e.Name})
}

// DeleteEntitlement deletes a sudo entitlement; no grant may use it.
func (s *Service) DeleteEntitlement(ctx context.Context, a Actor, name string, c Confirm) error {
	_, e, err := s.state(ctx).EntitlementByName(nil, name)
	if err != nil {
		return err
	}
	if e == nil {
		return notFound("entitlement %q: not found", name)
	}
	if err := confirm(c, "delete entitlement "+e.Name); err != nil {
		return err
	}
	if _, err := s.apply(ctx, &raftstore.EntitlementDelete{Name: e.Name}); err != nil {
		return err
	}
	return s.audit(ctx, a, EventEntitlementDelete, map[string]string{"entitlement": e.Name})
}
