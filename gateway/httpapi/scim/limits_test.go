package scim_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/httpapi/scim"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/raftstore"
	"github.com/rampart-ssh/rampart/raftstore/raftstoretest"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// guard is a Guard whose verdict the test sets.
type guard struct{ tooMany bool }

func (g *guard) TooMany(*http.Request) bool   { return g.tooMany }
func (g *guard) Failed(*http.Request, string) {}

// newHandlerNode serves the SCIM handler alone (no API around it) on a
// clock the test moves, with creates bounded to createsPerMinute.
func newHandlerNode(t *testing.T, createsPerMinute int, g *guard) (*node, *clock) {
	t.Helper()
	store := raftstoretest.New(t)
	clk := &clock{t: now}
	logger := slog.New(slog.DiscardHandler)
	ctl := control.New(control.Deps{Store: store, Auditor: control.StoreAuditor{Store: store, Now: clk.Now}, Logger: logger, Now: clk.Now, AdminGroup: adminGroup})
	var gd scim.Guard
	if g != nil {
		gd = g
	}
	h, err := scim.New(scim.Config{Store: store, Control: ctl, Auditor: control.StoreAuditor{Store: store, Now: clk.Now}, Guard: gd,
		Logger: logger, Now: clk.Now, CreatesPerMinute: createsPerMinute})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/scim", h))
	t.Cleanup(srv.Close)
	secret, _, err := ctl.CreateProvisioningToken(context.Background(), control.Actor{Name: "alice"}, "okta", 0)
	if err != nil {
		t.Fatal(err)
	}
	return &node{t: t, store: store, ctl: ctl, srv: srv, token: secret}, clk
}

// count is how many audit events of type typ there are.
func (n *node) count(typ string) int { return len(n.events(typ)) }

// Every SCIM request leaves an audit event: a change its own (by control),
// any other request — a read, a refusal, a PUT or PATCH that changes
// nothing — scim.request.
func TestSCIMAuditsRequestsThatChangeNothing(t *testing.T) {
	n := newNode(t)
	id := n.do("POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "erin", "externalId": "x-erin"}`).want(t, http.StatusCreated).str("id")
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		event                    string // the one event the request leaves
	}{
		{"noop/put-same", "PUT", "/scim/v2/Users/" + id, `{` + userSchema + `, "userName": "erin", "externalId": "x-erin", "active": true}`, 200, scim.EventRequest},
		{"noop/patch-active-already", "PATCH", "/scim/v2/Users/" + id, patch(`{"op": "replace", "value": {"active": true}}`), 200, scim.EventRequest},
		{"noop/patch-group-no-members", "PATCH", "/scim/v2/Groups/ops", patch(`{"op": "add", "path": "members", "value": []}`), 200, scim.EventRequest},
		{"read/get", "GET", "/scim/v2/Users/" + id, "", 200, scim.EventRequest},
		{"change/rename", "PUT", "/scim/v2/Users/" + id, `{` + userSchema + `, "userName": "erin2", "externalId": "x-erin"}`, 200, control.EventUserUpdate},
		{"change/deactivate", "PATCH", "/scim/v2/Users/" + id, patch(`{"op": "replace", "value": {"active": false}}`), 200, control.EventUserDeactivate},
	} {
		if tc.name == "noop/patch-group-no-members" {
			n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": "ops"}`).want(t, http.StatusCreated)
		}
		t.Run(tc.name, func(t *testing.T) {
			types := []string{scim.EventRequest, control.EventUserUpdate, control.EventUserDeactivate}
			before := map[string]int{}
			for _, typ := range types {
				before[typ] = n.count(typ)
			}
			n.do(tc.method, tc.path, tc.body).want(t, tc.status)
			for _, typ := range types {
				want := before[typ]
				if typ == tc.event {
					want++
				}
				if got := n.count(typ); got != want {
					t.Errorf("%s events: %d, want %d", typ, got, want)
				}
			}
		})
	}
}

// Requests refused before their token is known — 401, and 429 once the
// source is over its failure limit — are audited as scim.request of actor
// scim:unauthenticated, with the reason; at most a burst of them at once,
// and the next one written says how many were not.
func TestSCIMAuditsRefusedCredentials(t *testing.T) {
	g := &guard{}
	n, clk := newHandlerNode(t, 0, g)
	refused := func() []*raftstore.AuditEvent {
		var out []*raftstore.AuditEvent
		for _, e := range n.events(scim.EventRequest) {
			if e.Actor == "scim:unauthenticated" {
				out = append(out, e)
			}
		}
		return out
	}
	n.doAs("", "GET", "/scim/v2/Users", "").want(t, http.StatusUnauthorized)
	n.doAs("not-a-token", "GET", "/scim/v2/Users", "").want(t, http.StatusUnauthorized)
	g.tooMany = true
	n.doAs("not-a-token", "POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "x"}`).want(t, http.StatusTooManyRequests)
	got := refused()
	if len(got) != 3 {
		t.Fatalf("refused requests audited: %d, want 3", len(got))
	}
	for i, want := range []struct{ status, reason string }{
		{"401", "no bearer token"}, {"401", "unknown or expired token"}, {"429", "too many failed authentications"},
	} {
		if f := got[i].Fields; f["status"] != want.status || f["reason"] != want.reason || f["path"] == "" || f["source"] == "" {
			t.Errorf("event %d: %v, want status %s reason %q", i, f, want.status, want.reason)
		}
	}
	// A flood is bounded: the burst (less the three above) is written,
	// the rest counted into the next event.
	g.tooMany = false
	for range 40 {
		n.doAs("not-a-token", "GET", "/scim/v2/Users", "").want(t, http.StatusUnauthorized)
	}
	if c := len(refused()); c != 20 {
		t.Fatalf("after a flood of 40: %d refused requests audited, want the burst of 20", c)
	}
	clk.add(time.Second)
	n.doAs("not-a-token", "GET", "/scim/v2/Users", "").want(t, http.StatusUnauthorized)
	all := refused()
	if last := all[len(all)-1].Fields; len(all) != 21 || last["not_audited"] != "23" {
		t.Fatalf("the event after the flood: %d events, last %v; want 21, not_audited 23", len(all), last)
	}
}

// One provisioning token creates at most creates_per_minute users and
// groups a minute (429 with Retry-After beyond, audited); reads and
// updates are not bounded so; the rate refills.
func TestSCIMBoundsCreatesPerToken(t *testing.T) {
	n, clk := newHandlerNode(t, 3, nil)
	n.do("POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "u1"}`).want(t, http.StatusCreated)
	n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": "g1"}`).want(t, http.StatusCreated)
	n.do("POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "u2"}`).want(t, http.StatusCreated)
	before := n.count(scim.EventRequest)
	for _, body := range []struct{ path, body string }{
		{"/scim/v2/Users", `{` + userSchema + `, "userName": "u3"}`},
		{"/scim/v2/Groups", `{` + groupSchema + `, "displayName": "g2"}`},
	} {
		r := n.do("POST", body.path, body.body)
		r.scimError(t, http.StatusTooManyRequests, "")
	}
	if got := n.count(scim.EventRequest); got != before+2 {
		t.Fatalf("refused creates audited: %d, want 2", got-before)
	}
	n.do("GET", "/scim/v2/Users", "").want(t, http.StatusOK)
	n.do("PATCH", "/scim/v2/Groups/g1", patch(`{"op": "add", "path": "members", "value": []}`)).want(t, http.StatusOK)
	if _, users, _ := n.store.State().Users(nil); len(users) != 2 {
		t.Fatalf("users after the bound: %d, want 2", len(users))
	}
	clk.add(20 * time.Second) // one create a 20 s
	n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": "g2"}`).want(t, http.StatusCreated)
	n.do("POST", "/scim/v2/Users", `{`+userSchema+`, "userName": "u3"}`).scimError(t, http.StatusTooManyRequests, "")
}

// A filter costs with its length: a query or filter longer than the
// bounds is refused before it is parsed.
func TestSCIMBoundsFilters(t *testing.T) {
	n := newNode(t)
	long := `userName eq "` + strings.Repeat("a", scim.MaxFilter) + `"`
	nested := strings.Repeat("(", 400) + `userName eq "a"` + strings.Repeat(")", 400)
	n.do("GET", "/scim/v2/Users?filter="+q(long), "").scimError(t, http.StatusBadRequest, "invalidFilter")
	n.do("GET", "/scim/v2/Groups?filter="+q(nested), "").scimError(t, http.StatusBadRequest, "invalidFilter")
	n.do("GET", "/scim/v2/Users?count=1&x="+strings.Repeat("b", scim.MaxQuery), "").scimError(t, http.StatusBadRequest, "invalidFilter")
	n.do("GET", "/scim/v2/Users?filter="+q(`userName eq "`+strings.Repeat("a", 900)+`"`), "").want(t, http.StatusOK)
}

// SCIM never takes the last uids and gids of the cluster's ranges: a
// provisioning token that creates groups (or people) until refused leaves
// room for sign-ins, whose ID tokens name new groups.
func TestSCIMKeepsIDsForSignIns(t *testing.T) {
	n, clk := newHandlerNode(t, 100000, nil)
	_, m, err := n.store.State().Meta(nil)
	if err != nil {
		t.Fatal(err)
	}
	free := int(m.GIDEnd - m.GIDNext + 1)
	made := 0
	for i := range free {
		clk.add(time.Second)
		r := n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": "junk-`+strconv.Itoa(i)+`"}`)
		if r.status != http.StatusCreated {
			r.scimError(t, http.StatusForbidden, "")
			break
		}
		made++
	}
	if made != free-control.SCIMIDReserve {
		t.Fatalf("SCIM made %d groups of %d free gids, want all but the reserve of %d", made, free, control.SCIMIDReserve)
	}
	lg := login.NewService(n.store, time.Hour, slog.New(slog.DiscardHandler))
	if _, err := lg.Provision(context.Background(), &login.Identity{Subject: "sub-new", Login: "newhire", Groups: []string{"eng", "ops"}}); err != nil {
		t.Fatalf("a new hire's sign-in after SCIM's flood: %v", err)
	}
	// An existing group is still linked: it takes no gid.
	n.do("POST", "/scim/v2/Groups", `{`+groupSchema+`, "displayName": "eng"}`).want(t, http.StatusCreated)
}
