package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/raftstore"
)

// A share link is /console/share/<payload>.<signature>: the payload names
// the share, its session and its expiry; the signature is HMAC-SHA256 with
// the cluster's share key. The share's record in raft makes it revocable
// on every node: a link opens its recording only while its signature
// holds, it has not expired, and its record exists unrevoked.

// sharePayload is what a link carries.
type sharePayload struct {
	ID      string `json:"i"`
	Session string `json:"s"`
	Expires int64  `json:"e"`
	// By is the IdP subject of who made it: the link works only while
	// their Rampart account, if they have one, is active (creatorActive).
	By string `json:"b,omitempty"`
}

// errShareInvalid is every refusal of a link: whoever holds a bad one
// learns nothing about why.
var errShareInvalid = errors.New("this link is not valid: it expired, was revoked, or was never issued")

func (c *Console) signShare(p sharePayload) string {
	b, _ := json.Marshal(p)
	payload := base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, c.deps.ShareKey)
	m.Write([]byte("rampart console share v1\x00" + payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// openShare checks a link and returns its share and session.
func (c *Console) openShare(token string) (*raftstore.ConsoleShare, *raftstore.Session, error) {
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || len(c.deps.ShareKey) == 0 || len(token) > 1024 {
		return nil, nil, errShareInvalid
	}
	m := hmac.New(sha256.New, c.deps.ShareKey)
	m.Write([]byte("rampart console share v1\x00" + payload))
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, m.Sum(nil)) {
		return nil, nil, errShareInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	var p sharePayload
	if err != nil || json.Unmarshal(raw, &p) != nil {
		return nil, nil, errShareInvalid
	}
	now := c.now()
	if !now.Before(time.Unix(p.Expires, 0)) {
		return nil, nil, errShareInvalid
	}
	st := c.deps.State.State()
	_, sh, err := st.ConsoleShareByID(nil, p.ID)
	if err != nil || sh == nil || sh.Session != p.Session || !sh.Live(now) || !creatorActive(st, p.By) {
		return nil, nil, errShareInvalid
	}
	_, s, err := st.SessionByID(nil, p.Session)
	if err != nil || s == nil {
		return nil, nil, errShareInvalid
	}
	return sh, s, nil
}

// shareTTLs are the lifetimes the share form offers.
var shareTTLs = map[string]time.Duration{
	"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": raftstore.ConsoleShareMaxTTL,
}

// createShare is POST /console/sessions/{id}/share.
func (c *Console) createShare(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	ttl, ok := shareTTLs[r.PostForm.Get("ttl")]
	if !ok {
		c.fail(w, r, http.StatusBadRequest, "Choose how long the link lives: 1h, 24h, 7d or 30d.")
		return
	}
	note := strings.TrimSpace(r.PostForm.Get("note"))
	if len(note) > 200 {
		c.fail(w, r, http.StatusBadRequest, "The note is at most 200 characters.")
		return
	}
	id := r.PathValue("id")
	_, s, err := c.deps.State.State().SessionByID(nil, id)
	if err != nil || s == nil || s.RecordingPath == "" || s.Status != raftstore.SessionClosed {
		c.fail(w, r, http.StatusNotFound, "Only a finished, recorded session can be shared.")
		return
	}
	now := c.now()
	// Whole seconds: the link carries its expiry in seconds.
	exp := now.Add(ttl).Truncate(time.Second)
	sh := raftstore.ConsoleShare{ID: "sh-" + randomString(12), Session: id, CreatedBy: who.User, ExpiresAt: exp, Note: note}
	if _, err := c.deps.Applier.Apply(r.Context(), &raftstore.ConsoleShareCreate{Share: sh, Now: now}); err != nil {
		c.log.Warn("console: share not created", "session", id, "user", who.User, "err", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The link could not be created. Try again in a minute.")
		return
	}
	// A link nobody can account for is none: when its creation cannot be
	// audited it is revoked at once and the person told.
	if err := c.audit(r.Context(), EventShareCreate, who.User, map[string]string{"share": sh.ID, "session": id,
		"expires": exp.UTC().Format(time.RFC3339), "source": r.RemoteAddr}); err != nil {
		if _, rerr := c.deps.Applier.Apply(context.WithoutCancel(r.Context()), &raftstore.ConsoleShareRevoke{ID: sh.ID, By: who.User, Now: c.now()}); rerr != nil {
			c.log.Error("console: unaudited share not revoked", "share", sh.ID, "session", id, "err", rerr)
		}
		c.fail(w, r, http.StatusServiceUnavailable, "The link could not be created. Try again in a minute.")
		return
	}
	link := Prefix + "share/" + c.signShare(sharePayload{ID: sh.ID, Session: id, Expires: exp.Unix(), By: who.Subject})
	http.Redirect(w, r, Prefix+"sessions/"+url.PathEscape(id)+"?shared="+url.QueryEscape(link), http.StatusSeeOther)
}

// sharesPage is GET /console/shares: every link, newest first.
func (c *Console) sharesPage(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	_, all, err := c.deps.State.State().ConsoleShares(nil)
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The links cannot be read right now.")
		return
	}
	slices.SortFunc(all, func(a, b *raftstore.ConsoleShare) int { return b.CreatedAt.Compare(a.CreatedAt) })
	type shareRow struct {
		*raftstore.ConsoleShare
		Live bool
	}
	rows := make([]shareRow, 0, len(all))
	now := c.now()
	for _, s := range all {
		rows = append(rows, shareRow{s, s.Live(now)})
	}
	c.render(w, http.StatusOK, "shares", view{Title: "Share links", Who: who, Data: rows})
}

// revokeShare is POST /console/shares/{id}/revoke.
func (c *Console) revokeShare(w http.ResponseWriter, r *http.Request, who *consoleSession) {
	id := r.PathValue("id")
	if _, err := c.deps.Applier.Apply(r.Context(), &raftstore.ConsoleShareRevoke{ID: id, By: who.User, Now: c.now()}); err != nil {
		if errors.Is(err, raftstore.ErrNotFound) {
			c.fail(w, r, http.StatusNotFound, "There is no such link.")
			return
		}
		c.log.Warn("console: share not revoked", "share", id, "user", who.User, "err", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The link could not be revoked. Try again in a minute.")
		return
	}
	// Revoking again is harmless: a revocation that could not be audited
	// is reported, and the person's retry writes the event.
	if err := c.audit(r.Context(), EventShareRevoke, who.User, map[string]string{"share": id, "source": r.RemoteAddr}); err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The link was revoked, but the revocation could not be written to the audit log. Revoke it again in a minute.")
		return
	}
	http.Redirect(w, r, Prefix+"shares", http.StatusSeeOther)
}

// sharePage is GET /console/share/{token}: the player alone, for someone
// without an account.
func (c *Console) sharePage(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	sh, s, err := c.openShare(token)
	if err != nil {
		c.render(w, http.StatusForbidden, "error", view{Title: "Link not valid", Data: "This link is not valid: it expired, was revoked, or was never issued."})
		return
	}
	c.render(w, http.StatusOK, "shared", view{Title: "Shared session", Data: struct {
		S       row
		Expires time.Time
		CastURL string
	}{newNames(c.deps.State.State()).row(s), sh.ExpiresAt, Prefix + "share/" + token + "/cast"}})
}

// shareCast is GET /console/share/{token}/cast: one recording.view event
// per view (serveCast), at most as often as shareLimits allow.
func (c *Console) shareCast(w http.ResponseWriter, r *http.Request) {
	sh, s, err := c.openShare(r.PathValue("token"))
	if err != nil {
		http.Error(w, errShareInvalid.Error(), http.StatusForbidden)
		return
	}
	// Nobody signs in to use a link: each view writes to the audit log
	// through raft, so a link (or one address) may not be played faster
	// than shareLimits allow.
	now := c.now()
	if !c.shareLimit.allow("share:"+sh.ID, now) || !c.shareLimit.allow("source:"+sourceHost(r.RemoteAddr), now) {
		w.Header().Set("Retry-After", "10")
		http.Error(w, "this link was played too often; try again in a minute", http.StatusTooManyRequests)
		return
	}
	fields := map[string]string{"share": sh.ID, "source": r.RemoteAddr, "shared_by": sh.CreatedBy}
	c.serveCast(w, r, s.ID, "share:"+sh.ID, fields, r.URL.Query().Get("download") == "1")
}

// justShared returns link when it is a share link of session that user
// made within shareShownFor: the only link the session page shows in its
// "copy it now" box, so a crafted ?shared= cannot put another there.
func (c *Console) justShared(link, session, user string) string {
	token, ok := strings.CutPrefix(link, Prefix+"share/")
	if !ok {
		return ""
	}
	sh, s, err := c.openShare(token)
	if err != nil || s.ID != session || sh.CreatedBy != user || c.now().Sub(sh.CreatedAt) > shareShownFor {
		return ""
	}
	return Prefix + "share/" + token
}

// shareShownFor is how long after making a link its maker is shown it.
const shareShownFor = 10 * time.Minute

// Share link views: each key (a share, a source address) may play a burst
// of shareBurst, then one every shareRefill.
const (
	shareBurst  = 20
	shareRefill = 10 * time.Second
	// shareKeys bounds the limiter's memory: past it, keys whose bucket
	// has refilled are forgotten.
	shareKeys = 10_000
)

// shareLimiter is a token bucket per key.
type shareLimiter struct {
	mu      sync.Mutex
	buckets map[string]*shareBucket
}

type shareBucket struct {
	tokens float64
	at     time.Time
}

// allow takes a token from key's bucket, if it has one.
func (l *shareLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*shareBucket{}
	}
	refill := func(b *shareBucket) {
		b.tokens = min(shareBurst, b.tokens+now.Sub(b.at).Seconds()/shareRefill.Seconds())
		b.at = now
	}
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= shareKeys {
			for k, o := range l.buckets {
				if refill(o); o.tokens >= shareBurst {
					delete(l.buckets, k)
				}
			}
		}
		b = &shareBucket{tokens: shareBurst, at: now}
		l.buckets[key] = b
	}
	refill(b)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sourceHost is the address of r.RemoteAddr without its port.
func sourceHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
