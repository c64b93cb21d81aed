package e2e

// What a target trusts and serves: its host keys and certificate, the user
// CAs it trusts, its users and their principals, and its sshd_config.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	gossh "golang.org/x/crypto/ssh"
)

// generateHostKeys makes fresh host keys inside the target.
func (tg *Target) generateHostKeys() error {
	ctx := context.Background()
	if len(tg.cfg.HostKeyTypes) == 0 {
		_, err := tg.Exec(ctx, "ssh-keygen", "-A")
		return err
	}
	types := tg.cfg.HostKeyTypes
	if !slices.Contains(types, "ed25519") {
		types = append(slices.Clone(types), "ed25519")
	}
	for _, typ := range types {
		path := "/etc/ssh/ssh_host_" + typ + "_key"
		if _, err := tg.Exec(ctx, "ssh-keygen", "-q", "-t", typ, "-N", "", "-C", "root@"+tg.cfg.Name, "-f", path); err != nil {
			return err
		}
	}
	return nil
}

// hostKeyPaths are the private host keys the target has.
func (tg *Target) hostKeyPaths() ([]string, error) {
	all, err := filepath.Glob(filepath.Join(tg.Dir, "etc", "ssh", "ssh_host_*_key"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range all {
		out = append(out, "/etc/ssh/"+filepath.Base(p))
	}
	return out, nil
}

// HostKey returns the target's ed25519 host public key (the one a host
// certificate from SetHostCertificate certifies).
func (tg *Target) HostKey() gossh.PublicKey {
	tg.t.Helper()
	b, err := os.ReadFile(tg.Path(targetHostKey + ".pub"))
	fatalIf(tg.t, err, "target "+tg.cfg.Name+": host key")
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	fatalIf(tg.t, err, "target "+tg.cfg.Name+": host key")
	return pub
}

// SetHostCertificate installs cert (authorized_keys format, as
// gossh.MarshalAuthorizedKey makes it) as the certificate of the ed25519 host
// key and names it in sshd_config. A running sshd is reloaded.
func (tg *Target) SetHostCertificate(cert []byte) error {
	pub, _, _, _, err := gossh.ParseAuthorizedKey(cert)
	if err != nil {
		return fmt.Errorf("host certificate: %w", err)
	}
	c, ok := pub.(*gossh.Certificate)
	if !ok || c.CertType != gossh.HostCert {
		return errors.New("host certificate: not a host certificate")
	}
	if !bytes.Equal(c.Key.Marshal(), tg.HostKey().Marshal()) {
		return fmt.Errorf("host certificate certifies %s, not the target's host key %s", gossh.FingerprintSHA256(c.Key), gossh.FingerprintSHA256(tg.HostKey()))
	}
	if err := os.WriteFile(tg.Path(targetHostCertFile), cert, 0o644); err != nil {
		return err
	}
	tg.mu.Lock()
	tg.hostCert = cert
	tg.mu.Unlock()
	if err := tg.writeSSHDConfig(); err != nil {
		return err
	}
	if tg.Running() {
		return tg.Reload()
	}
	return nil
}

// TrustCA replaces the target's TrustedUserCAKeys with keys. sshd reads the
// file on every authentication, so no reload is needed.
func (tg *Target) TrustCA(keys ...gossh.PublicKey) error {
	var b []byte
	for _, k := range keys {
		b = append(b, gossh.MarshalAuthorizedKey(k)...)
	}
	return writeFileAtomic(tg.Path(targetTrustedCAFile), b, 0o644)
}

// AddUser creates a unix account inside the target the way the agent will:
// useradd -m, password field '*' (neither locked nor usable: see DESIGN's
// pitfalls), and a principals file listing principals (default: the name
// itself).
func (tg *Target) AddUser(name string, principals ...string) error {
	ctx := context.Background()
	if _, err := tg.Exec(ctx, "useradd", "-m", "-s", "/bin/bash", name); err != nil {
		return err
	}
	if _, err := tg.Exec(ctx, "usermod", "-p", "*", name); err != nil {
		return err
	}
	if len(principals) == 0 {
		principals = []string{name}
	}
	return tg.SetPrincipals(name, principals...)
}

// SetPrincipals writes the AuthorizedPrincipalsFile of user: the
// certificate principals that may log in as user. None removes the file.
func (tg *Target) SetPrincipals(user string, principals ...string) error {
	path := tg.Path(targetPrincipalsDir + "/" + user)
	if len(principals) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeFileAtomic(path, []byte(strings.Join(principals, "\n")+"\n"), 0o644)
}

// sshdConfig renders the target's sshd_config.
func (tg *Target) sshdConfig() (string, error) {
	keys, err := tg.hostKeyPaths()
	if err != nil {
		return "", err
	}
	tg.mu.Lock()
	withCert := tg.hostCert != nil
	tg.mu.Unlock()
	yesNo := map[bool]string{true: "yes", false: "no"}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the rampart e2e target harness for %s.\n", tg.cfg.Name)
	// As Debian's: drop-ins first, so that what they set wins.
	fmt.Fprintf(&b, "Include %s/*.conf\n", targetSSHDDropInDir)
	if tg.cfg.ExtraConfig != "" {
		b.WriteString(strings.TrimRight(tg.cfg.ExtraConfig, "\n") + "\n")
	}
	fmt.Fprintf(&b, "ListenAddress %s\n", tg.Addr())
	for _, k := range keys {
		fmt.Fprintf(&b, "HostKey %s\n", k)
	}
	if withCert {
		fmt.Fprintf(&b, "HostCertificate %s\n", targetHostCertFile)
	}
	fmt.Fprintf(&b, "PidFile %s\n", targetPidFile)
	fmt.Fprintf(&b, "UsePAM %s\n", yesNo[tg.cfg.UsePAM])
	b.WriteString("PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n")
	fmt.Fprintf(&b, "TrustedUserCAKeys %s\n", targetTrustedCAFile)
	fmt.Fprintf(&b, "AuthorizedPrincipalsFile %s/%%u\n", targetPrincipalsDir)
	b.WriteString("LogLevel VERBOSE\nPrintMotd no\nX11Forwarding no\nAcceptEnv LANG LC_*\n")
	b.WriteString("Subsystem sftp /usr/lib/openssh/sftp-server\n")
	return b.String(), nil
}

// writeSSHDConfig writes sshd_config and checks it with sshd -t inside the
// target; a config sshd refuses is restored to the previous one.
func (tg *Target) writeSSHDConfig() error {
	cfg, err := tg.sshdConfig()
	if err != nil {
		return err
	}
	path := tg.Path(targetSSHDConfig)
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := tg.CheckConfig(); err != nil {
		if rerr := writeFileAtomic(path, old, 0o644); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("%w\nsshd_config:\n%s", err, cfg)
	}
	return nil
}

// CheckConfig runs sshd -t inside the target; its error carries what sshd
// printed.
func (tg *Target) CheckConfig() error {
	_, err := tg.Exec(context.Background(), "/usr/sbin/sshd", "-t", "-f", targetSSHDConfig)
	if err != nil {
		return fmt.Errorf("sshd -t: %w", err)
	}
	return nil
}
