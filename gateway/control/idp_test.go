package control

import (
	"context"
	"testing"

	"github.com/rampart-ssh/rampart/raftstore"
)

// The IdP's deactivation disables the person as the IdP's, revokes every
// binding and is audited once; a repeat changes nothing; the IdP's
// re-activation restores the same account, but never one an administrator
// disabled.
func TestIdPDeactivation(t *testing.T) {
	ctx := context.Background()
	idp := Actor{Name: "scim:okta"}
	h := newHarness(t)
	n, err := h.svc.DeactivateFromIdP(ctx, idp, "sub-bob", raftstore.ViaSCIM, "scim active=false")
	if err != nil || n != 1 {
		t.Fatalf("deactivate: %d bindings, %v; want 1", n, err)
	}
	_, u, _ := h.store.State().UserByID(nil, "sub-bob")
	if u.Status != raftstore.UserDisabled || !u.DisabledByIdP {
		t.Fatalf("after deactivation: %+v", u)
	}
	wantBindings(t, h, 0)
	evs := h.audit.all()
	if len(evs) != 1 || evs[0].Type != EventUserDeactivate || evs[0].Actor != "scim:okta" ||
		evs[0].Fields["reason"] != "scim active=false" || evs[0].Fields["bindings_revoked"] != "1" {
		t.Fatalf("audit %+v", evs)
	}
	if n, err := h.svc.DeactivateFromIdP(ctx, idp, "sub-bob", raftstore.ViaSCIM, "again"); err != nil || n != 0 || len(h.audit.all()) != 1 {
		t.Fatalf("repeat: %d, %v, %d events", n, err, len(h.audit.all()))
	}
	uid := u.UID
	if ok, err := h.svc.ReactivateFromIdP(ctx, idp, "sub-bob"); !ok || err != nil {
		t.Fatalf("reactivate: %v %v", ok, err)
	}
	_, u, _ = h.store.State().UserByID(nil, "sub-bob")
	if u.Status != raftstore.UserActive || u.DisabledByIdP || u.UID != uid {
		t.Fatalf("after re-activation: %+v (uid was %d)", u, uid)
	}
	if evs := h.audit.all(); len(evs) != 2 || evs[1].Type != EventUserReactivate {
		t.Fatalf("audit %+v", evs)
	}
	// carol was disabled by an administrator: the IdP cannot undo that.
	if ok, err := h.svc.ReactivateFromIdP(ctx, idp, "sub-carol"); ok || err != nil {
		t.Fatalf("reactivate admin-disabled: %v %v", ok, err)
	}
	wantUserStatus(t, h, "sub-carol", raftstore.UserDisabled)
	if _, err := h.svc.DeactivateFromIdP(ctx, idp, "sub-nobody", raftstore.ViaSCIM, "x"); err == nil {
		t.Fatal("deactivated an unknown person")
	}
}

// SCIM's active=true undoes only SCIM's own deactivation: not one a refused
// re-validation made, and not an administrator's disable that a later SCIM
// active=false met (the IdP takes over no one else's disable). An
// administrator's enable undoes a re-validation's.
func TestIdPReactivationUndoesOnlyItsOwn(t *testing.T) {
	ctx := context.Background()
	scim, reval := Actor{Name: "scim:okta"}, Actor{Name: "idp:revalidation"}
	admin := Actor{Name: "root"}
	t.Run("fail/scim-undoes-revalidation", func(t *testing.T) {
		h := newHarness(t)
		if _, err := h.svc.DeactivateFromIdP(ctx, reval, "sub-bob", raftstore.ViaRevalidation, "re-validation: invalid_grant"); err != nil {
			t.Fatal(err)
		}
		if ok, err := h.svc.ReactivateFromIdP(ctx, scim, "sub-bob"); ok || err != nil {
			t.Fatalf("SCIM re-activated a person re-validation deactivated: %v %v", ok, err)
		}
		wantUserStatus(t, h, "sub-bob", raftstore.UserDisabled)
		if _, err := h.svc.SetUserStatus(ctx, admin, "sub-bob", raftstore.UserActive); err != nil {
			t.Fatal(err)
		}
		wantUserStatus(t, h, "sub-bob", raftstore.UserActive)
	})
	t.Run("fail/scim-undoes-admin-disable", func(t *testing.T) {
		h := newHarness(t)
		if _, err := h.svc.SetUserStatus(ctx, admin, "sub-bob", raftstore.UserDisabled); err != nil {
			t.Fatal(err)
		}
		if _, err := h.svc.DeactivateFromIdP(ctx, scim, "sub-bob", raftstore.ViaSCIM, "scim active=false"); err != nil {
			t.Fatal(err)
		}
		if ok, err := h.svc.ReactivateFromIdP(ctx, scim, "sub-bob"); ok || err != nil {
			t.Fatalf("SCIM re-activated a person an administrator disabled: %v %v", ok, err)
		}
		wantUserStatus(t, h, "sub-bob", raftstore.UserDisabled)
	})
}
