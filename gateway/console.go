package gateway

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/rampart-ssh/rampart/gateway/console"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/gateway/httpapi"
	"github.com/rampart-ssh/rampart/gateway/recording/archive"
	"github.com/rampart-ssh/rampart/gateway/recording/replica"
	"github.com/rampart-ssh/rampart/raftstore"
)

// consoleRedirectURL is the console's OIDC callback as the IdP knows it.
func (n *Node) consoleRedirectURL() string {
	if n.cfg.Console.RedirectURL != "" {
		return n.cfg.Console.RedirectURL
	}
	return "https://" + n.advertise().API + "/console/callback"
}

// startConsole builds the web console and its search index, starts the
// indexer, and returns the API handler with the console mounted at
// /console/ (next).
func (n *Node) startConsole(api *httpapi.Server, next http.Handler) (http.Handler, error) {
	c := n.cfg.Console
	if !c.Enabled {
		return next, nil
	}
	idx, err := console.OpenIndex(n.dir.path("console-index"))
	if err != nil {
		return nil, err
	}
	n.consoleIndex = idx
	api.SetSearch(idx)
	key, err := n.kek.ConsoleShareKey()
	if err != nil {
		return nil, err
	}
	signInKey, err := n.kek.ConsoleSignInKey()
	if err != nil {
		return nil, err
	}
	o := n.cfg.OIDC
	clientID, secret := c.ClientID, c.ClientSecret
	if clientID == "" {
		clientID, secret = o.ClientID, o.ClientSecret
	}
	recs := consoleRecordings{Archive: n.recordingFiles(), replicas: n.replicas}
	go (&console.Indexer{Index: idx, State: n.store, Recordings: recs, Logger: n.logger, MaxAge: n.cfg.Recording.Retention.MaxAge,
		Now: n.now}).Run(n.bgCtx)
	web := console.New(console.Config{Issuer: o.Issuer, ClientID: clientID, ClientSecret: secret, RedirectURL: n.consoleRedirectURL(),
		Scopes: o.Scopes, UsernameClaim: o.UsernameClaim, GroupsClaim: o.GroupsClaim, AuditorGroup: c.AuditorGroup, AdminGroup: o.AdminGroup,
		IdleTimeout: c.IdleTimeout},
		console.Deps{State: n.store, Applier: n.store, Recordings: recs, Auditor: control.StoreAuditor{Store: n.store, Now: n.now},
			Killer: n.control, Requests: n.control, Search: idx, ShareKey: key, SignInKey: signInKey, Logger: n.logger, Now: n.now})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/console" {
			http.Redirect(w, r, console.Prefix, http.StatusMovedPermanently)
			return
		}
		if strings.HasPrefix(r.URL.Path, console.Prefix) {
			web.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}

// consoleRecordings opens a session's recordings for the console: its
// first through the archive, its later ones ("<id>-2", ...) from the
// replicas' holders.
type consoleRecordings struct {
	*archive.Archive
	replicas *replica.Replicator
}

func (c consoleRecordings) OpenNamed(ctx context.Context, s *raftstore.Session, name string) (io.ReadCloser, error) {
	if c.replicas == nil {
		return nil, replica.ErrNoCopy
	}
	return c.replicas.Open(ctx, s, name)
}

// devIdPWithConsole lets the dev IdP's client of oidc.client_id send
// browsers back to this node's console (authorization code + PKCE), so the
// console works in --dev with no more config.
func (n *Node) devIdPWithConsole() {
	if !n.cfg.Console.Enabled {
		return
	}
	cb := n.consoleRedirectURL()
	cl := slices.Clone(n.cfg.DevIdP.Config.Clients)
	for i := range cl {
		if cl[i].ID == n.cfg.OIDC.ClientID && !slices.Contains(cl[i].RedirectURIs, cb) {
			cl[i].RedirectURIs = append(slices.Clone(cl[i].RedirectURIs), cb)
		}
	}
	n.cfg.DevIdP.Config.Clients = cl
}
