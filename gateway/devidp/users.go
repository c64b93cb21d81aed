package devidp

import (
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// usersPath is the users page: it lists the dev users and lets a developer
// deactivate or activate one, or change their groups, as an administrator
// would in a real IdP, so that re-validation can be watched (and tested)
// ending a person's access. Changes live in memory until the IdP stops.
const usersPath = "/dev/users"

// Actions of the users page's form.
const (
	ActionDeactivate = "deactivate"
	ActionActivate   = "activate"
	ActionSetGroups  = "set-groups"
)

type usersPage struct {
	store  *storage
	log    *slog.Logger
	issuer string
}

type userRow struct {
	Username, Groups string
	Active           bool
}

var usersTmpl = template.Must(template.New("users").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dev users · Rampart dev IdP</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem}td,th{padding:.3rem .8rem;text-align:left}form{display:inline}</style></head>
<body><main id="page-users"><h1>Dev users</h1>
<p>Changes act as an IdP administrator's would: a deactivated user can no longer sign in, and their refresh tokens stop working at once (Rampart's next re-validation deactivates them); new groups reach Rampart at the next re-validation.</p>
<table><tr><th>user</th><th>status</th><th>groups</th><th></th></tr>
{{range .}}<tr><td>{{.Username}}</td><td>{{if .Active}}active{{else}}deactivated{{end}}</td>
<td><form method="post" action="/dev/users"><input type="hidden" name="username" value="{{.Username}}"><input type="hidden" name="action" value="set-groups">
<input type="text" name="groups" value="{{.Groups}}"><button type="submit">Set groups</button></form></td>
<td><form method="post" action="/dev/users"><input type="hidden" name="username" value="{{.Username}}">
{{if .Active}}<button type="submit" name="action" value="deactivate">Deactivate</button>{{else}}<button type="submit" name="action" value="activate">Activate</button>{{end}}</form></td></tr>
{{end}}</table><p class="note">Rampart development identity provider. Not for production use.</p></main></body></html>
`))

func (p *usersPage) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		var rows []userRow
		for _, cu := range p.store.cfg.Users {
			u, _ := p.store.lookupUser(cu.Username)
			rows = append(rows, userRow{Username: u.Username, Groups: strings.Join(p.store.userGroups(u), ","), Active: !p.store.isDeactivated(u.subject)})
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		_ = usersTmpl.Execute(w, rows)
	case http.MethodPost:
		p.change(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// change applies one form. A form posted from another site is refused: the
// page has no login (it is the developer's own machine), so a browser's
// cross-site request is the one thing to keep out.
func (p *usersPage) change(w http.ResponseWriter, r *http.Request) {
	if !p.sameOrigin(r) {
		http.Error(w, "cross-site form refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	u, ok := p.store.lookupUser(r.PostForm.Get("username"))
	if !ok {
		http.Error(w, "no such user", http.StatusNotFound)
		return
	}
	switch action := r.PostForm.Get("action"); action {
	case ActionDeactivate, ActionActivate:
		p.store.setActive(u, action == ActionActivate)
		p.log.Info("dev IdP user "+action+"d", "user", u.Username)
	case ActionSetGroups:
		p.store.setGroups(u, strings.Split(r.PostForm.Get("groups"), ","))
		p.log.Info("dev IdP user's groups set", "user", u.Username, "groups", p.store.userGroups(u))
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, usersPath, http.StatusSeeOther)
}

func (p *usersPage) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	o, err1 := url.Parse(origin)
	i, err2 := url.Parse(p.issuer)
	return err1 == nil && err2 == nil && o.Scheme == i.Scheme && o.Host == i.Host
}
