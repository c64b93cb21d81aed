package devidp

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Browser drives the dev IdP's pages over HTTP the way a person at a
// browser does: it opens the verification URL, fills in the login form and
// presses Approve or Deny, carrying cookies and the forms' CSRF tokens. It
// is for tests (this package's, the login tests, e2e) and scripts.
type Browser struct {
	HTTP *http.Client
}

// Page kinds, from <main id="page-KIND">.
const (
	PageCode    = "code"    // enter a user code (also where errors land)
	PageLogin   = "login"   // username and password
	PageConfirm = "confirm" // approve or deny
	PageDone    = "done"    // decision recorded
)

// Page is one page the IdP answered with.
type Page struct {
	URL    *url.URL
	Status int
	Kind   string
	// Error is the page's error message ("" if none).
	Error string
	// Decision is "approved" or "denied" on the done page.
	Decision string
	Body     string

	action, csrf, userCode string
}

// ErrUnexpectedPage is wrapped by Browser errors when the IdP did not
// answer with the page the step expects; the message carries the page's
// error text.
var ErrUnexpectedPage = errors.New("devidp: unexpected page")

// NewBrowser returns a Browser with its own cookie jar.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &Browser{HTTP: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// Approve opens verificationURIComplete, logs in and approves.
func (b *Browser) Approve(ctx context.Context, verificationURIComplete, username, password string) error {
	return b.decide(ctx, verificationURIComplete, username, password, true)
}

// Deny opens verificationURIComplete, logs in and denies.
func (b *Browser) Deny(ctx context.Context, verificationURIComplete, username, password string) error {
	return b.decide(ctx, verificationURIComplete, username, password, false)
}

func (b *Browser) decide(ctx context.Context, uri, username, password string, approve bool) error {
	pg, err := b.Open(ctx, uri)
	if err != nil {
		return err
	}
	if pg, err = b.Login(ctx, pg, username, password); err != nil {
		return err
	}
	if pg, err = b.Decide(ctx, pg, approve); err != nil {
		return err
	}
	want := map[bool]string{true: "approved", false: "denied"}[approve]
	if pg.Decision != want {
		return fmt.Errorf("%w: done page says %q, want %q", ErrUnexpectedPage, pg.Decision, want)
	}
	return nil
}

// Open GETs a page, typically verification_uri_complete.
func (b *Browser) Open(ctx context.Context, rawURL string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("devidp browser: %w", err)
	}
	return b.do(req)
}

// Login submits the login form of pg (a login page) and expects the
// approval page.
func (b *Browser) Login(ctx context.Context, pg *Page, username, password string) (*Page, error) {
	if err := pg.expect(PageLogin); err != nil {
		return nil, err
	}
	next, err := b.post(ctx, pg, url.Values{
		"csrf": {pg.csrf}, "user_code": {pg.userCode},
		"username": {username}, "password": {password},
	})
	if err != nil {
		return nil, err
	}
	return next, next.expect(PageConfirm)
}

// Decide presses Approve or Deny on pg (an approval page) and expects the
// done page.
func (b *Browser) Decide(ctx context.Context, pg *Page, approve bool) (*Page, error) {
	if err := pg.expect(PageConfirm); err != nil {
		return nil, err
	}
	action := "deny"
	if approve {
		action = "approve"
	}
	next, err := b.post(ctx, pg, url.Values{"csrf": {pg.csrf}, "action": {action}})
	if err != nil {
		return nil, err
	}
	return next, next.expect(PageDone)
}

func (b *Browser) post(ctx context.Context, pg *Page, form url.Values) (*Page, error) {
	target, err := pg.URL.Parse(pg.action)
	if err != nil {
		return nil, fmt.Errorf("devidp browser: form action: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("devidp browser: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var (
	reKind     = regexp.MustCompile(`<main id="page-([a-z]+)">`)
	reError    = regexp.MustCompile(`<p class="error" role="alert">([^<]*)</p>`)
	reAction   = regexp.MustCompile(`<form method="[a-z]+" action="([^"]*)">`)
	reCSRF     = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]*)">`)
	reUserCode = regexp.MustCompile(`<input type="hidden" name="user_code" value="([^"]*)">`)
	reDecision = regexp.MustCompile(`data-decision="([a-z]+)"`)
)

func (b *Browser) do(req *http.Request) (*Page, error) {
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("devidp browser: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("devidp browser: read %s: %w", req.URL.Path, err)
	}
	s := string(body)
	first := func(re *regexp.Regexp) string {
		if m := re.FindStringSubmatch(s); m != nil {
			return html.UnescapeString(m[1])
		}
		return ""
	}
	return &Page{
		URL: resp.Request.URL, Status: resp.StatusCode, Body: s,
		Kind: first(reKind), Error: first(reError), Decision: first(reDecision),
		action: first(reAction), csrf: first(reCSRF), userCode: first(reUserCode),
	}, nil
}

func (pg *Page) expect(kind string) error {
	if pg.Kind == kind {
		return nil
	}
	msg := pg.Error
	if msg == "" {
		msg = "no error shown"
	}
	return fmt.Errorf("%w: want the %s page, got %q (HTTP %d): %s", ErrUnexpectedPage, kind, pg.Kind, pg.Status, msg)
}

// ChangeUser posts the users page's form at the dev IdP issuer: action is
// ActionDeactivate, ActionActivate or ActionSetGroups (with groups), as a
// developer does at issuer/dev/users.
func (b *Browser) ChangeUser(ctx context.Context, issuer, username, action string, groups ...string) error {
	form := url.Values{"username": {username}, "action": {action}, "groups": {strings.Join(groups, ",")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(issuer, "/")+usersPath, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("devidp: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("devidp: %s %s: %w", action, username, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="page-users"`) {
		return fmt.Errorf("%w: %s %s: HTTP %d: %s", ErrUnexpectedPage, action, username, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}
