package cloudidtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is an OpenID issuer standing in for https://accounts.google.com: it
// serves discovery and its keys, and signs tokens with RS256.
type Issuer struct {
	// URL is the issuer; set it (to where the handler is served) before the
	// first request.
	URL string
	key *rsa.PrivateKey
	kid string
}

// NewIssuer makes an issuer with a fresh RSA key.
func NewIssuer() (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Issuer{key: key, kid: hex.EncodeToString(b)}, nil
}

// ServeHTTP serves /.well-known/openid-configuration and /jwks.
func (i *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": i.URL, "jwks_uri": i.URL + "/jwks",
			"authorization_endpoint": i.URL + "/auth", "token_endpoint": i.URL + "/token",
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case "/jwks":
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: i.key.Public(), KeyID: i.kid, Algorithm: "RS256", Use: "sig"}}})
	default:
		http.NotFound(w, r)
	}
}

// Sign signs claims as a JWT with the issuer's key.
func (i *Issuer) Sign(claims any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: i.key, KeyID: i.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// GCPInstance is what a Compute Engine instance identity token says about
// its instance.
type GCPInstance struct {
	ProjectID     string
	ProjectNumber int64
	InstanceID    string
	InstanceName  string
	Zone          string
	// CreatedAt is the instance's creation
	// (instance_creation_timestamp); zero means a minute before the token
	// is issued.
	CreatedAt time.Time
}

// GCPToken signs an instance identity token as the metadata server returns
// it: for audience, issued at iat, expiring an hour later unless exp is
// given, with the google.compute_engine claim when full (its
// instance_creation_timestamp from inst.CreatedAt).
func (i *Issuer) GCPToken(inst GCPInstance, audience string, iat, exp time.Time, full bool) (string, error) {
	if exp.IsZero() {
		exp = iat.Add(time.Hour)
	}
	claims := map[string]any{
		"iss": i.URL, "aud": audience, "azp": "1122334455", "sub": "1122334455",
		"email": "1234-compute@developer.gserviceaccount.com", "email_verified": true,
		"iat": iat.Unix(), "exp": exp.Unix(),
	}
	created := inst.CreatedAt
	if created.IsZero() {
		created = iat.Add(-time.Minute)
	}
	if full {
		claims["google"] = map[string]any{"compute_engine": map[string]any{
			"instance_creation_timestamp": created.Unix(), "instance_id": inst.InstanceID,
			"instance_name": inst.InstanceName, "project_id": inst.ProjectID, "project_number": inst.ProjectNumber, "zone": inst.Zone,
		}}
	}
	return i.Sign(claims)
}

// RandomGCPInstanceID is a Compute Engine style numeric instance id.
func RandomGCPInstanceID() string {
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return fmt.Sprintf("%d", n+1_000_000_000_000_000)
}

// GCPMetadata plays the instance identity endpoint of the Compute Engine
// metadata server: GET
// /computeMetadata/v1/instance/service-accounts/default/identity?audience=A&format=F
// with the header Metadata-Flavor: Google.
type GCPMetadata struct {
	mu    sync.Mutex
	token func(audience, format string) (string, error)
	asked []string
}

// SetToken sets what mints the token for an audience and format.
func (m *GCPMetadata) SetToken(f func(audience, format string) (string, error)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.token = f
}

// Audiences lists the audiences asked for so far.
func (m *GCPMetadata) Audiences() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.asked...)
}

func (m *GCPMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/identity" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
		return
	}
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		http.Error(w, "non-empty audience parameter required", http.StatusBadRequest)
		return
	}
	m.asked = append(m.asked, aud)
	if m.token == nil {
		http.NotFound(w, r)
		return
	}
	tok, err := m.token(aud, r.URL.Query().Get("format"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Metadata-Flavor", "Google")
	fmt.Fprint(w, tok)
}
