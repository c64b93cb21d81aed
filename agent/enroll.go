package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/client"
)

// Identity is what enrollment gave this agent, kept in its data dir.
type Identity struct {
	ServerID   string   `json:"server_id"`
	Project    string   `json:"project"`
	Cluster    []string `json:"cluster"`
	MachineID  string   `json:"machine_id"`
	HostCerts  []string `json:"host_certs"`
	UserCAKeys []string `json:"user_ca_keys"`
	// HostCertsObtained is when the agent received HostCerts: their
	// lifetime is counted from there (their start is backdated).
	HostCertsObtained time.Time `json:"host_certs_obtained,omitzero"`
}

const (
	identityFile = "identity.json"
	certFile     = "agent.crt"
	keyFile      = "agent.key"
	caFile       = "ca.crt"
)

// LoadIdentity returns the stored identity, or nil when not enrolled yet.
func LoadIdentity(dataDir string) (*Identity, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("%s: %w", identityFile, err)
	}
	return &id, nil
}

// machineID reads the machine id the cluster binds the credential to.
func machineID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("machine id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("machine id file %s is empty", path)
	}
	return id, nil
}

// credential is what an agent enrolls with: a token's secret or its cloud
// identity, and whom it trusts (the cluster CA's pin, the nodes to ask).
type credential struct {
	method string
	pin    string
	addrs  []string
	// tokenFile is deleted once the token is spent.
	tokenFile    string
	secret       string
	awsDocument  string
	awsSignature string
	awsPKCS7     string
	gcpToken     string
}

// tokenCredential reads the enrollment token in cfg.TokenFile.
func tokenCredential(cfg *Config) (*credential, error) {
	raw, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("enrollment token: %w", err)
	}
	tok, err := api.ParseToken(string(raw))
	if err != nil {
		return nil, fmt.Errorf("enrollment token %s: %w", cfg.TokenFile, err)
	}
	if tok.Kind != api.TokenEnroll {
		return nil, fmt.Errorf("enrollment token %s: this is a %s token, not an enrollment token", cfg.TokenFile, tok.Kind)
	}
	return &credential{method: api.EnrollToken, pin: tok.CAPin, addrs: tok.Addrs, tokenFile: cfg.TokenFile, secret: tok.Secret}, nil
}

// Enroll enrolls the server with the token in cfg.TokenFile (deleted after
// use) or, with auto_enroll, with its cloud identity, and stores the
// credential in the data dir.
func Enroll(ctx context.Context, cfg *Config, logger *slog.Logger) (*Identity, error) {
	var cred *credential
	var err error
	if cfg.AutoEnroll == "" {
		cred, err = tokenCredential(cfg)
	} else {
		cred, err = cloudCredential(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	mid, err := machineID(cfg.MachineIDFile)
	if err != nil {
		return nil, err
	}
	var hostKeys []string
	for _, f := range cfg.HostKeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("host key: %w", err)
		}
		hostKeys = append(hostKeys, strings.TrimSpace(string(b)))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	req := &api.EnrollRequest{Method: cred.method, Secret: cred.secret, MachineID: mid, Name: cfg.Name, AltNames: cfg.AltNames,
		Addr: cfg.Addr, SSHPort: cfg.SSHPort, Labels: cfg.Labels, HostKeys: hostKeys,
		PublicKey:   string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
		AWSDocument: cred.awsDocument, AWSSignature: cred.awsSignature, AWSPKCS7: cred.awsPKCS7, GCPToken: cred.gcpToken}
	// The token's CA pin is the only trust: the client checks it at the
	// handshake and against the CA the answer hands over.
	cl, err := client.New(dedup(append(append([]string(nil), cred.addrs...), cfg.Cluster...)), client.WithPin(cred.pin))
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	// Enrollment is one request: leave no idle connection holding a
	// descriptor on the node.
	defer cl.CloseIdleConnections()
	resp, err := cl.Enroll(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	keyPEM, err := api.EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	id := &Identity{ServerID: resp.ServerID, Project: resp.Project, Cluster: cred.addrs, MachineID: mid, HostCerts: resp.HostCerts, UserCAKeys: resp.UserCAKeys,
		HostCertsObtained: time.Now().UTC()}
	idJSON, _ := json.MarshalIndent(id, "", "  ")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{certFile: []byte(resp.CertPEM), keyFile: keyPEM, caFile: []byte(resp.CAPEM), identityFile: idJSON} {
		if err := writePrivate(filepath.Join(cfg.DataDir, name), data); err != nil {
			return nil, err
		}
	}
	if cred.tokenFile != "" {
		if err := os.Remove(cred.tokenFile); err != nil {
			logger.Warn("could not delete the used enrollment token", "path", cred.tokenFile, "err", err)
		}
	}
	logger.Info("enrolled", "server_id", id.ServerID, "project", id.Project, "method", cred.method)
	return id, nil
}

// clusterRoots is the cluster CA from the data dir, the agent's only trust
// once it has enrolled.
func clusterRoots(dataDir string) (*x509.CertPool, error) {
	caPEM, err := os.ReadFile(filepath.Join(dataDir, caFile))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("cluster CA in the data dir is not PEM")
	}
	return pool, nil
}

func writePrivate(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// dedup keeps the first of each address, in order.
func dedup(addrs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range addrs {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}
