package devidp

import (
	"bytes"
	"html/template"
	"net/http"
)

// pageData feeds every page; each page uses the fields it needs.
type pageData struct {
	Error    string
	Typed    string // what was typed on the code page, shown again
	CSRF     string
	UserCode string // display form, BCDF-GHJK
	ClientID string
	Scopes   []string
	Username string
	Approved bool
	// RequestID is the authorization request a sign-in page is for.
	RequestID string
	// FormTargets are origins, besides the IdP's own, that a form on the
	// page may end up at: an authorization request's redirect goes back to
	// its client (browsers apply form-action to redirects too).
	FormTargets []string
}

// The pages are plain HTML with inline style and no script, so the
// Content-Security-Policy below can forbid everything else. The markup that
// Browser reads is stable: <main id="page-KIND">, <p class="error">, the
// first <form>'s action, and hidden inputs named csrf and user_code.
const layoutHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{template "title" .}} · Rampart dev IdP</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}
main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.3rem;margin-top:0}
label{display:block;margin:.8rem 0 .2rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
.code{font-family:ui-monospace,monospace;font-size:1.4rem;letter-spacing:.15rem}
button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem;cursor:pointer}
.deny{background:#fff;border:1px solid #b00;color:#b00}
.error{background:#fde8e8;color:#8a1010;padding:.6rem;border-radius:.3rem}
.note{color:#667;font-size:.85rem}
</style>
</head>
<body>
<main id="page-{{template "kind" .}}">
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{template "body" .}}
<p class="note">Rampart development identity provider. Not for production use.</p>
</main>
</body>
</html>
`

const codeHTML = `{{define "kind"}}code{{end}}{{define "title"}}Enter code{{end}}{{define "body"}}
<h1>Sign in to a device</h1>
<form method="get" action="/device">
<label for="user_code">Enter the code shown in your terminal</label>
<input type="text" id="user_code" name="user_code" value="{{.Typed}}" placeholder="BCDF-GHJK" autocomplete="off" autocapitalize="characters" spellcheck="false" autofocus required>
<button type="submit">Continue</button>
</form>
{{end}}`

const loginHTML = `{{define "kind"}}login{{end}}{{define "title"}}Sign in{{end}}{{define "body"}}
<h1>Sign in</h1>
<p><b>{{.ClientID}}</b> is asking to sign you in. Check that your terminal shows this code:</p>
<p class="code">{{.UserCode}}</p>
<form method="post" action="/device/login">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="user_code" value="{{.UserCode}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{{end}}`

const confirmHTML = `{{define "kind"}}confirm{{end}}{{define "title"}}Approve sign-in{{end}}{{define "body"}}
<h1>Approve this sign-in?</h1>
<p>Signed in as <b>{{.Username}}</b>. <b>{{.ClientID}}</b> asks for your identity{{if .Scopes}} ({{range $i, $s := .Scopes}}{{if $i}}, {{end}}{{$s}}{{end}}){{end}} for the device showing code <span class="code">{{.UserCode}}</span>.</p>
<p>Approve only if you started this sign-in yourself.</p>
<form method="post" action="/device/confirm">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny" class="deny">Deny</button>
</form>
{{end}}`

const doneHTML = `{{define "kind"}}done{{end}}{{define "title"}}{{if .Approved}}Approved{{else}}Denied{{end}}{{end}}{{define "body"}}
{{if .Approved}}<h1>Approved</h1>
<p id="decision" data-decision="approved">{{.Username}} is signed in to {{.ClientID}}. You can close this page and return to your terminal.</p>
{{else}}<h1>Denied</h1>
<p id="decision" data-decision="denied">The sign-in was denied. Nothing was shared with {{.ClientID}}.</p>
{{end}}{{end}}`

const signinHTML = `{{define "kind"}}signin{{end}}{{define "title"}}Sign in{{end}}{{define "body"}}
<h1>Sign in</h1>
{{if .RequestID}}<p><b>{{.ClientID}}</b> is asking you to sign in.</p>
<form method="post" action="/device/signin?id={{.RequestID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="signin">Sign in</button>
</form>{{end}}
{{end}}`

var (
	signinPage  = page(signinHTML)
	layout      = template.Must(template.New("layout").Parse(layoutHTML))
	codePage    = page(codeHTML)
	loginPage   = page(loginHTML)
	confirmPage = page(confirmHTML)
	donePage    = page(doneHTML)
)

func page(body string) *template.Template {
	return template.Must(template.Must(layout.Clone()).Parse(body))
}

// render writes a page with headers that keep it out of frames, caches and
// Referer headers (the URL carries the user code).
func render(w http.ResponseWriter, status int, t *template.Template, d pageData) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		// Templates are fixed and tested; this is a programming error.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	formAction := "'self'"
	for _, o := range d.FormTargets {
		formAction += " " + o
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
