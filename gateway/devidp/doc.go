// Package devidp is the embedded development identity provider: a real
// OpenID Provider, built on zitadel/oidc's op package, that signs people in
// through the OAuth 2.0 device grant (RFC 8628) against users from the dev
// config, with its own code-entry, login and approve/deny pages.
//
// It serves discovery (/.well-known/openid-configuration), the JWKS (/keys),
// the device authorization endpoint (/device_authorization), the token
// endpoint (/oauth/token: the device_code grant, and refresh_token for
// sign-ins that asked for offline_access; each refresh rotates the token),
// userinfo, the pages under /device, and the users page (/dev/users), where
// a developer deactivates or re-activates a dev user or changes their groups
// as an IdP administrator would: a deactivated user's tokens are dropped and
// their sign-ins and refreshes refused (invalid_grant), and a refreshed ID
// token carries the user's current groups.
//
// Claims are released by scope, as Dex and Okta do: "openid" gives sub (a
// stable hash of the user name), "profile" gives name and the username
// claim, "email" gives email and email_verified, "groups" gives the groups
// claim. Claim names are configurable, and a dotted name ("rampart.groups")
// nests the value ({"rampart":{"groups":[...]}}).
//
// Client authentication follows zitadel's device grant: a client without a
// secret is public and must send client_id in the form
// (oauth2.AuthStyleInParams); a client with a secret must send it with HTTP
// Basic (oauth2.AuthStyleInHeader) on the token endpoint, while the device
// authorization endpoint takes client_id alone.
//
// Knobs for tests: Config.SlowDownPolls answers the first polls of every
// device code with slow_down; Config.Now moves the clock that device codes
// and browser sessions expire by; the deny button is on the approval page;
// Browser drives the pages over HTTP as a person would; and
// GET /device/polls?user_code=... says how many token requests a pending
// code has had; Browser.ChangeUser posts the users page's form.
//
// It is for development and tests only: everything lives in memory, the
// signing key is made at start, and Serve refuses a non-loopback listener
// unless Config.AllowNonLoopback is set.
package devidp
