package raftstore

import (
	"errors"
	"testing"
)

// Only UserSetStatus moves a person's status. An upsert built from a read
// made before a deactivation (a sign-in's Provision, re-validation's
// Reconfirm) keeps the deactivation; an IdP disable takes over no one
// else's; a conditional enable (IfDisabledVia) undoes only the channel's
// own deactivation.
func TestUserStatusOnlyBySetStatus(t *testing.T) {
	signIn := &UserUpsert{User: User{ID: "s1", Subject: "s1", Login: "bob", UnixName: "bob", Status: UserActive, Groups: []string{"eng"}, Sources: []string{SourceSignIn}}, Now: testNow}
	adminDisable := &UserSetStatus{ID: "s1", Status: UserDisabled, Now: testNow}
	adminEnable := &UserSetStatus{ID: "s1", Status: UserActive, Now: testNow}
	scimDisable := &UserSetStatus{ID: "s1", Status: UserDisabled, ByIdP: true, Via: ViaSCIM, Now: testNow}
	revalDisable := &UserSetStatus{ID: "s1", Status: UserDisabled, ByIdP: true, Via: ViaRevalidation, Now: testNow}
	legacyDisable := &UserSetStatus{ID: "s1", Status: UserDisabled, ByIdP: true, Now: testNow}
	scimEnable := &UserSetStatus{ID: "s1", Status: UserActive, IfDisabledVia: ViaSCIM, Now: testNow}
	staleUpsert := &UserUpsert{User: User{ID: "s1", Login: "bob", UnixName: "bob", Status: UserActive, Groups: []string{"ops"}, Sources: []string{SourceSignIn}}, Now: testNow}

	type want struct {
		status UserStatus
		byIdP  bool
		via    DisabledVia
	}
	cases := []struct {
		name    string
		steps   []Command
		last    Command
		wantErr error
		want    want
	}{
		{name: "ok/stale-upsert-keeps-idp-disable", steps: []Command{revalDisable}, last: staleUpsert, want: want{UserDisabled, true, ViaRevalidation}},
		{name: "ok/stale-upsert-keeps-admin-disable", steps: []Command{adminDisable}, last: staleUpsert, want: want{UserDisabled, false, ""}},
		{name: "ok/upsert-never-disables", last: &UserUpsert{User: User{ID: "s1", Login: "bob", UnixName: "bob", Status: UserDisabled}, Now: testNow}, want: want{UserActive, false, ""}},
		{name: "ok/idp-disable-keeps-admin-disable", steps: []Command{adminDisable}, last: scimDisable, want: want{UserDisabled, false, ""}},
		{name: "ok/idp-disable-keeps-first-channel", steps: []Command{revalDisable}, last: scimDisable, want: want{UserDisabled, true, ViaRevalidation}},
		{name: "ok/scim-enables-its-own", steps: []Command{scimDisable}, last: scimEnable, want: want{UserActive, false, ""}},
		{name: "ok/scim-enables-legacy-idp-disable", steps: []Command{legacyDisable}, last: scimEnable, want: want{UserActive, false, ""}},
		{name: "ok/admin-enables-revalidation-disable", steps: []Command{revalDisable}, last: adminEnable, want: want{UserActive, false, ""}},
		{name: "ok/admin-disable-takes-over-idp-disable", steps: []Command{scimDisable}, last: adminDisable, want: want{UserDisabled, false, ""}},
		{name: "fail/scim-enable-of-revalidation-disable", steps: []Command{revalDisable}, last: scimEnable, wantErr: ErrConflict, want: want{UserDisabled, true, ViaRevalidation}},
		{name: "fail/scim-enable-of-admin-disable", steps: []Command{adminDisable}, last: scimEnable, wantErr: ErrConflict, want: want{UserDisabled, false, ""}},
		{name: "fail/scim-enable-of-active", last: scimEnable, wantErr: ErrConflict, want: want{UserActive, false, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM(t)
			mustApply(t, f, signIn)
			for _, c := range tc.steps {
				mustApply(t, f, c)
			}
			res := apply(t, f, tc.last)
			if !errors.Is(res.Err, tc.wantErr) || (tc.wantErr == nil) != (res.Err == nil) {
				t.Fatalf("last command: err %v, want %v", res.Err, tc.wantErr)
			}
			_, u, err := f.State().UserByID(nil, "s1")
			if err != nil || u == nil {
				t.Fatalf("user: %v %v", u, err)
			}
			if got := (want{u.Status, u.DisabledByIdP, u.DisabledVia}); got != tc.want {
				t.Fatalf("status %+v, want %+v", got, tc.want)
			}
		})
	}
}
