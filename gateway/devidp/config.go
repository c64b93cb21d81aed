package devidp

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultDeviceCodeTTL = 5 * time.Minute
	DefaultPollInterval  = 5 * time.Second
	DefaultUsernameClaim = "preferred_username"
	DefaultGroupsClaim   = "groups"
)

// ScopeGroups is the scope that releases the groups claim.
const ScopeGroups = "groups"

// Config is the dev IdP's configuration. New fills defaults and validates it,
// listing every problem at once.
type Config struct {
	// Issuer is the IdP's base URL as clients reach it, e.g.
	// http://127.0.0.1:5556. It has no path: zitadel op builds the
	// verification URI from the issuer's host with the page path replacing
	// any path the issuer had.
	Issuer  string   `mapstructure:"issuer"`
	Clients []Client `mapstructure:"clients"`
	Users   []User   `mapstructure:"users"`
	// DeviceCodeTTL is how long a device code and its user code live
	// (default 5m, at least 1s: the protocol carries whole seconds).
	DeviceCodeTTL time.Duration `mapstructure:"device_code_ttl"`
	// PollInterval is the polling interval told to clients (default 5s, a
	// whole number of seconds).
	PollInterval time.Duration `mapstructure:"poll_interval"`
	ClaimNames   ClaimNames    `mapstructure:"claim_names"`
	// SlowDownPolls answers the first N token polls of every device code with
	// slow_down, whatever the code's state. For tests; 0 disables it.
	SlowDownPolls int `mapstructure:"slow_down_polls"`
	// AllowNonLoopback lets Serve accept a listener on a non-loopback
	// address. The dev IdP hands out identities to anyone who knows a
	// password from the dev config; exposing it is rarely what anyone wants.
	AllowNonLoopback bool `mapstructure:"allow_non_loopback"`
	// Now is the clock device codes and browser sessions expire by; nil means
	// time.Now. Tests move it forward to expire a code without waiting. It
	// must not run behind the wall clock: token timestamps and zitadel's own
	// expiry check read time.Now directly.
	Now func() time.Time `mapstructure:"-"`
	// StateFile, when set, keeps the IdP's live refresh tokens and the
	// users page's changes across restarts (mode 0600; persist.go). The
	// node sets it to a file in its data directory.
	StateFile string `mapstructure:"-"`
}

// Client is an OAuth client allowed to use the device grant, and the
// authorization-code grant when it has redirect URIs.
type Client struct {
	ID string `mapstructure:"id"`
	// Secret makes the client confidential (HTTP Basic on the token
	// endpoint); empty makes it public.
	Secret string `mapstructure:"secret"`
	// RedirectURIs are where the authorization-code flow (with PKCE) may
	// send a browser back to; a client without any cannot use that flow.
	RedirectURIs []string `mapstructure:"redirect_uris"`
}

// User is a person who can sign in.
type User struct {
	Username string   `mapstructure:"username"`
	Password string   `mapstructure:"password"`
	Email    string   `mapstructure:"email"`
	Groups   []string `mapstructure:"groups"`
	// Name is the display name (default: Username).
	Name string `mapstructure:"name"`
	// UsernameClaim, when set, is put in the username claim instead of
	// Username. Tests use it to issue names nobody could type into the login
	// form ("root", "../x", names with newlines).
	UsernameClaim string `mapstructure:"username_claim"`
}

// ClaimNames names the ID token claims that carry the username and the
// groups. A dot descends into a nested object: "rampart.groups" yields
// {"rampart":{"groups":[...]}}.
type ClaimNames struct {
	Username string `mapstructure:"username"`
	Groups   string `mapstructure:"groups"`
}

// reservedClaims are set by the provider itself; a configured claim whose
// first path element is one of them would be overwritten or would forge it.
var reservedClaims = []string{
	"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce",
	"acr", "amr", "azp", "at_hash", "c_hash", "sid", "client_id", "act",
	"email", "email_verified", "name",
}

// ErrInvalidConfig is wrapped by the error New returns for a bad Config.
var ErrInvalidConfig = errors.New("devidp: invalid config")

// withDefaults returns cfg with zero fields filled.
func (cfg Config) withDefaults() Config {
	if cfg.DeviceCodeTTL == 0 {
		cfg.DeviceCodeTTL = DefaultDeviceCodeTTL
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ClaimNames.Username == "" {
		cfg.ClaimNames.Username = DefaultUsernameClaim
	}
	if cfg.ClaimNames.Groups == "" {
		cfg.ClaimNames.Groups = DefaultGroupsClaim
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Users = slices.Clone(cfg.Users)
	for i := range cfg.Users {
		if cfg.Users[i].Name == "" {
			cfg.Users[i].Name = cfg.Users[i].Username
		}
	}
	return cfg
}

// Validate reports every problem in cfg (after defaults) as one error
// wrapping ErrInvalidConfig, or nil. Messages never include secrets.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if msg := issuerProblem(cfg.Issuer); msg != "" {
		add("issuer: %s", msg)
	}

	if len(cfg.Clients) == 0 {
		add("clients: at least one client is required")
	}
	clientIDs := map[string]bool{}
	for i, c := range cfg.Clients {
		switch {
		case c.ID == "":
			add("clients[%d]: id is required", i)
		case clientIDs[c.ID]:
			add("clients[%d]: id %q is used twice", i, c.ID)
		case !printable(c.ID):
			add("clients[%d]: id must be printable text without spaces", i)
		}
		clientIDs[c.ID] = true
		for j, u := range c.RedirectURIs {
			if pu, err := url.Parse(u); err != nil || pu.Scheme == "" || pu.Host == "" {
				add("clients[%d].redirect_uris[%d]: %q is not an absolute URL", i, j, u)
			}
		}
	}

	if len(cfg.Users) == 0 {
		add("users: at least one user is required")
	}
	usernames := map[string]bool{}
	for i, u := range cfg.Users {
		switch {
		case u.Username == "":
			add("users[%d]: username is required", i)
		case usernames[strings.ToLower(u.Username)]:
			add("users[%d]: username %q is used twice (user names are case-insensitive)", i, u.Username)
		case !typeable(u.Username):
			add("users[%d]: username %q cannot be typed into the login form (control characters or surrounding spaces); put odd names in username_claim", i, u.Username)
		}
		usernames[strings.ToLower(u.Username)] = true
		if u.Password == "" {
			add("users[%d] (%s): password is required", i, u.Username)
		}
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
			add("users[%d] (%s): email %q is not a plain address like alice@example.com", i, u.Username, u.Email)
		}
		for j, g := range u.Groups {
			if g == "" {
				add("users[%d] (%s): groups[%d] is empty", i, u.Username, j)
			}
		}
	}

	if cfg.DeviceCodeTTL < time.Second {
		add("device_code_ttl: %s is below the minimum of 1s", cfg.DeviceCodeTTL)
	}
	if cfg.PollInterval < time.Second || cfg.PollInterval%time.Second != 0 {
		add("poll_interval: %s must be a whole number of seconds, at least 1s (the protocol carries seconds)", cfg.PollInterval)
	}
	if cfg.SlowDownPolls < 0 {
		add("slow_down_polls: %d is negative", cfg.SlowDownPolls)
	}

	un, gr := cfg.ClaimNames.Username, cfg.ClaimNames.Groups
	if msg := claimPathProblem(un); msg != "" {
		add("claim_names.username: %s", msg)
	}
	if msg := claimPathProblem(gr); msg != "" {
		add("claim_names.groups: %s", msg)
	}
	if un == gr || strings.HasPrefix(un, gr+".") || strings.HasPrefix(gr, un+".") {
		add("claim_names: username claim %q and groups claim %q overlap", un, gr)
	}

	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n  - %s", ErrInvalidConfig, strings.Join(p, "\n  - "))
}

func issuerProblem(issuer string) string {
	if issuer == "" {
		return "is required (e.g. http://127.0.0.1:5556)"
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Sprintf("%q is not a URL", issuer)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("%q must start with http:// or https://", issuer)
	case u.Host == "":
		return fmt.Sprintf("%q has no host", issuer)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Sprintf("%q must be scheme://host[:port] only, with no path (not even a trailing slash), query or user", issuer)
	}
	return ""
}

func claimPathProblem(path string) string {
	parts := strings.Split(path, ".")
	for _, part := range parts {
		if part == "" || !printable(part) {
			return fmt.Sprintf("%q is not a claim name or dotted path of names", path)
		}
	}
	if slices.Contains(reservedClaims, parts[0]) {
		return fmt.Sprintf("%q collides with the standard claim %q", path, parts[0])
	}
	return ""
}

// printable reports whether s is non-empty and has only printable,
// non-space characters.
func printable(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// typeable reports whether s could come out of an <input type="text">.
func typeable(s string) bool {
	if strings.TrimSpace(s) != s || len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
