package httpapi

import (
	"net/http"
	"time"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/httpapi/scim"
)

// MountSCIM serves SCIM 2.0 at /scim/v2/ with c making its changes (the
// node's control.Service): provisioning tokens only, failures counted by
// the API's limiter, requests audited through the store, each token's
// creates bounded to createsPerMinute (0: scim.DefaultCreatesPerMinute).
func (s *Server) MountSCIM(c scim.Control, createsPerMinute int) error {
	now := func() time.Time { return s.now() }
	h, err := scim.New(scim.Config{Store: s.store, Control: c, Auditor: control.StoreAuditor{Store: s.store, Now: now},
		Guard: scimGuard{s}, Logger: s.logger, Now: now, CreatesPerMinute: createsPerMinute})
	if err != nil {
		return err
	}
	s.mux.Handle("/scim/v2/", http.StripPrefix("/scim", h))
	s.patterns = append(s.patterns, scim.Routes...)
	return nil
}

// scimGuard is the API's failed-authentication limiter for SCIM, which
// answers its own (SCIM) error bodies.
type scimGuard struct{ s *Server }

func (g scimGuard) TooMany(r *http.Request) bool {
	if !g.s.authFail.lim.exhausted(authKey(r), g.s.now()) {
		return false
	}
	g.s.authFail.count.Add(1)
	g.s.authFail.suppressed.Add(1)
	return true
}

func (g scimGuard) Failed(r *http.Request, why string) {
	g.s.authFail.count.Add(1)
	if g.s.authFail.lim.allow(authKey(r), g.s.now()) {
		g.s.logger.Warn("refused SCIM credentials", "reason", why, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
			"failures_total", g.s.authFail.count.Load(), "not_logged", g.s.authFail.suppressed.Swap(0))
	} else {
		g.s.authFail.suppressed.Add(1)
	}
}
