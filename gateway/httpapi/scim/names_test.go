package scim_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
)

// A name SCIM writes reads as what it is in listings and the audit log:
// control characters (C0, DEL, C1) and Unicode format characters (bidi
// overrides, zero-width ones) are refused in userName, externalId, e-mail
// and group names; other letters of any script are names like any.
func TestSCIMRefusesUnprintableNames(t *testing.T) {
	n := newNode(t)
	for i, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"ok/latin", "josé", true},
		{"ok/cjk", "名前", true},
		{"fail/rlo-bidi-override", "eve\u202egnp.exe", false},
		{"fail/zero-width-space", "ad\u200bmin", false},
		{"fail/zero-width-joiner", "ad\u200dmin", false},
		{"fail/c1-csi", "bob\u009b31m", false},
		{"fail/c1-nel", "bob\u0085", false},
		{"fail/c0-escape", "bob\x1b[31m", false},
		{"fail/del", "bob\x7f", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := json.Marshal(tc.value)
			v := string(raw)
			// A new userName must make a unix name (ASCII): a rename need not.
			id := n.do("POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "u-`+strconv.Itoa(i)+`"}`).want(t, http.StatusCreated).str("id")
			for _, req := range []struct{ method, path, body string }{
				{"PUT", "/scim/v2/Users/" + id, `{` + userSchema + `, "userName": ` + v + `}`},
				{"PATCH", "/scim/v2/Users/" + id, patch(`{"op": "replace", "path": "userName", "value": ` + v + `}`)},
				{"POST", "/scim/v2/Users", `{` + userSchema + `, "userName": "x-` + strconv.Itoa(i) + `", "externalId": ` + v + `}`},
				{"POST", "/scim/v2/Users", `{` + userSchema + `, "userName": "y-` + strconv.Itoa(i) + `", "emails": [{"value": ` + v + `}]}`},
			} {
				r := n.do(req.method, req.path, req.body)
				switch {
				case tc.ok && r.status >= 300:
					t.Fatalf("%s %s: %d %s", req.method, req.path, r.status, r.raw)
				case !tc.ok:
					r.scimError(t, http.StatusBadRequest, "invalidValue")
				}
			}
			if !tc.ok && n.user(id).Login != "u-"+strconv.Itoa(i) {
				t.Fatalf("renamed to %q", n.user(id).Login)
			}
			r := n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": `+v+`}`)
			if tc.ok {
				r.want(t, http.StatusCreated)
			} else {
				r.scimError(t, http.StatusBadRequest, "invalidValue")
			}
		})
	}
}
