package gateway

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/adminshell"
	"github.com/rampart-ssh/rampart/gateway/devidp"
	"github.com/rampart-ssh/rampart/gateway/frontdoor"
	jumpproxy "github.com/rampart-ssh/rampart/gateway/jump"
	"github.com/rampart-ssh/rampart/gateway/login"
	"github.com/rampart-ssh/rampart/gateway/targetaddr"
)

// startDevIdP starts the embedded development identity provider.
func (n *Node) startDevIdP(ctx context.Context) error {
	n.devIdPWithConsole()
	cfg := n.cfg.DevIdP.Config
	cfg.AllowNonLoopback = cfg.AllowNonLoopback || n.cfg.DevIdP.ForceNonLoopback
	cfg.StateFile = n.dir.path("devidp-state.json")
	idp, err := devidp.New(cfg, n.logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", n.cfg.DevIdP.Listen)
	if err != nil {
		return fmt.Errorf("listen for the dev IdP on %s: %w", n.cfg.DevIdP.Listen, err)
	}
	go func() {
		if err := idp.Serve(ctx, ln); err != nil {
			n.logger.Error("dev IdP stopped", "err", err)
		}
	}()
	return nil
}

// printDevWelcome tells a newcomer what to type next.
func (n *Node) printDevWelcome() {
	host, port, _ := net.SplitHostPort(n.cfg.Listen.SSH)
	host = friendlyHost(host)
	fmt.Fprintf(n.out, "\nRampart dev node is up.\n\n  Sign in:        ssh -p %s alice@%s\n  Dev IdP:        %s\n  Dev users:     ", port, host, n.cfg.DevIdP.Config.Issuer)
	for _, u := range n.cfg.DevIdP.Config.Users {
		fmt.Fprintf(n.out, " %s (password %q, groups %s)", u.Username, u.Password, strings.Join(u.Groups, ","))
	}
	fmt.Fprintf(n.out, "\n  Admin API:      https://%s (token in %s)\n\nssh prints a link and a code: open the link, sign in as a dev user, approve.\nPress Ctrl-C to stop.\n", n.advertise().API, n.dir.path("bootstrap-token"))
}

// startFrontDoor starts sign-in and the SSH server.
func (n *Node) startFrontDoor(ctx context.Context) error {
	if err := n.store.WaitForLeader(60 * time.Second); err != nil {
		return fmt.Errorf("start SSH: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	hostKey, err := n.loadHostKey()
	if err != nil {
		return fmt.Errorf("start SSH: %w", err)
	}
	signers, err := n.keys.HostSigners(sctx, hostKey)
	if err != nil {
		return fmt.Errorf("start SSH: %w", err)
	}
	o := n.cfg.OIDC
	provider := login.NewProvider(login.OIDCConfig{
		Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, Scopes: o.Scopes, OfflineAccess: o.OfflineAccessMode(),
		Claims: login.ClaimMapping{Username: o.UsernameClaim, Email: o.EmailClaim, EmailVerified: o.EmailVerifiedClaim,
			Groups: o.GroupsClaim, AdminGroup: o.AdminGroup},
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: n.metrics.login.Transport(nil)},
	}, n.logger)
	svc := login.NewService(n.store, n.cfg.Login.BindingTTL, n.logger)
	svc.SetAuditor(n.audit)
	svc.SetExternalIDIsSubject(o.ExternalIDIsSubject)
	// Re-validation: refresh tokens sealed under the KEK, redeemed by the
	// raft leader every revalidate_interval.
	svc.SetRefreshTokens(n.kek, o.UnverifiedBindingMax)
	n.revalidation = login.NewRevalidator(login.RevalidatorConfig{Interval: o.RevalidateInterval, Store: n.store, IdP: provider,
		Sealer: n.kek, Control: n.control, Users: svc, Now: n.now, Logger: n.logger})
	go n.revalidation.Run(n.bgCtx)
	jump := n.jumpHost()
	agentWait := n.cfg.Jump.AgentWait
	if agentWait == 0 {
		agentWait = -1 // configured off
	}
	n.jump = jumpproxy.New(jumpproxy.Config{
		NodeID: n.id, EgressIPs: n.egressIPs(), Targets: n.targetRule(), Ciphers: n.cfg.SSH.Ciphers, AgentWait: agentWait,
		Metrics: n.metrics.jump, RequestCommand: frontdoor.SSHCommand(jump),
	}, n.store, n.keys, n.audit, n.startRecording, n.logger)
	go n.jump.Run(n.bgCtx)
	n.ssh = frontdoor.New(frontdoor.Config{
		Addr: n.cfg.Listen.SSH, HostSigners: signers, JumpHost: jump,
		HandshakeTimeout: n.cfg.SSH.HandshakeTimeout, AuthTimeout: n.cfg.SSH.AuthTimeout,
		MaxPreauth: n.cfg.SSH.MaxPreauth, MaxPreauthPerIP: n.cfg.SSH.MaxPreauthPerIP, MaxDeviceFlowsPerIP: n.cfg.SSH.MaxDeviceFlowsPerIP,
		AdminGroup: o.AdminGroup, Jump: n.jump, Ciphers: n.cfg.SSH.Ciphers, Metrics: n.metrics.door, Requests: n.control,
		Admin: adminshell.New(adminshell.Deps{Store: n.store, Control: n.control, Cluster: adminCluster{n}, CAKeys: n.keys, Recordings: n.recordingFiles(), MaxRecordingBytes: n.cfg.Recording.MaxSessionBytes,
			NodeID: n.id, Logger: n.logger, AuditKey: n.auditKey.Public().(ed25519.PublicKey)}),
	}, svc, provider, n.store.State, n.audit, n.logger)
	// A revoked binding closes the connections that signed in with it.
	go n.ssh.Run(n.bgCtx)
	// A node host CA rotation re-signs the front door's certificate on
	// every node.
	if cert, ok := signers[len(signers)-1].PublicKey().(*gossh.Certificate); ok {
		go n.keys.WatchHostCA(n.bgCtx, signers[0], string(gossh.MarshalAuthorizedKey(cert.SignatureKey)), n.ssh.SetHostCertificate)
	}
	ln, err := net.Listen("tcp", n.cfg.Listen.SSH)
	if err != nil {
		return fmt.Errorf("listen for SSH on %s: %w", n.cfg.Listen.SSH, err)
	}
	go func() {
		if err := n.ssh.Serve(ln); err != nil {
			n.logger.Error("SSH server stopped", "err", err)
		}
	}()
	return nil
}

// friendlyHost writes 127.0.0.1 and ::1 as localhost, which is what people
// type; any other address stays as it is.
func friendlyHost(host string) string {
	if host == "127.0.0.1" || host == "::1" {
		return "localhost"
	}
	return host
}

// egressIPs are the addresses connections to targets leave from.
func (n *Node) egressIPs() []net.IP {
	var out []net.IP
	for _, a := range n.cfg.Jump.EgressAddrs {
		out = append(out, net.ParseIP(a))
	}
	if len(out) > 0 {
		return out
	}
	for _, addr := range []string{n.cfg.Listen.SSH, n.advertise().SSH} {
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return []net.IP{ip}
		}
	}
	return nil
}

// targetRule is where targets may be: never this node's own addresses
// (every one it listens on or advertises), loopback only when
// jump.allow_loopback_targets says so. The jump and every registration
// apply it.
func (n *Node) targetRule() targetaddr.Rule {
	a := n.advertise()
	addrs := []string{n.cfg.Listen.SSH, n.cfg.Listen.API, n.cfg.Listen.Raft, a.SSH, a.API, a.Raft, n.cfg.Log.PprofListen, n.cfg.Metrics.Listen}
	if n.cfg.DevIdP.Enabled {
		addrs = append(addrs, n.cfg.DevIdP.Listen)
	}
	return targetaddr.Rule{AllowLoopback: n.cfg.Jump.AllowLoopbackTargets, Listeners: targetaddr.ParseListeners(addrs...)}
}

// adminCluster tells the admin shell what enrollment tokens carry: the
// cluster's API addresses and its CA pin. The shell's other node hooks are
// the authority (CA keys for rotations, sealed with the KEK it never sees) and
// recordingFiles (recordings from whichever node holds them).
type adminCluster struct{ n *Node }

func (a adminCluster) JoinAddrs() []string {
	_, nodes, err := a.n.store.State().Nodes(nil)
	if err != nil || len(nodes) == 0 {
		return []string{a.n.advertise().API}
	}
	var out []string
	for _, node := range nodes {
		if node.APIAddr != "" {
			out = append(out, node.APIAddr)
		}
	}
	return out
}

func (a adminCluster) CAPin() string {
	if a.n.tls == nil || a.n.tls.Pool == nil {
		return ""
	}
	caPEM, err := a.n.dir.readFile("tls", "ca.crt")
	if err != nil {
		return ""
	}
	cert, err := api.ParseCertPEM(caPEM)
	if err != nil {
		return ""
	}
	return api.Pin(cert)
}
