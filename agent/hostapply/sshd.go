package hostapply

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// hostCert is a validated host certificate and where it goes.
type hostCert struct {
	file string // as sshd sees it
	line []byte
	key  ssh.PublicKey // the certified host key
}

// checkSSHDInputs parses the CA keys and host certificates. Any invalid one
// refuses the whole sshd update: writing part of a CA list could drop the
// key users still hold certificates from.
func (h *Host) checkSSHDInputs(d Desired, rep *Report) (caKeys []string, certs []hostCert, refused bool) {
	for i, k := range d.TrustedCAKeys {
		pub, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(k))
		switch {
		case err != nil:
			err = invalidf("trusted CA key %d: %v", i+1, err)
		case len(opts) > 0:
			err = invalidf("trusted CA key %d has options", i+1)
		case len(bytes.TrimSpace(rest)) > 0:
			err = invalidf("trusted CA key %d holds more than one key", i+1)
		default:
			if _, ok := pub.(*ssh.Certificate); ok {
				err = invalidf("trusted CA key %d is a certificate, not a key", i+1)
			}
		}
		if err != nil {
			rep.problem(KindSSHD, "trusted CA keys", err)
			refused = true
			continue
		}
		// Canonical form, without the comment (which is free text).
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
		if !slices.Contains(caKeys, line) {
			caKeys = append(caKeys, line)
		}
	}
	for i, c := range d.HostCertificates {
		pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(c))
		var cert *ssh.Certificate
		switch {
		case err != nil:
			err = invalidf("host certificate %d: %v", i+1, err)
		case len(bytes.TrimSpace(rest)) > 0:
			err = invalidf("host certificate %d holds more than one key", i+1)
		default:
			var ok bool
			if cert, ok = pub.(*ssh.Certificate); !ok || cert.CertType != ssh.HostCert {
				err = invalidf("host certificate %d is not a host certificate", i+1)
			}
		}
		if err == nil {
			file := path.Join(h.cfg.HostCertDir, "rampart_host_"+fileSafe(cert.Key.Type())+"-cert.pub")
			if slices.ContainsFunc(certs, func(o hostCert) bool { return o.file == file }) {
				err = invalidf("host certificate %d: a second certificate for a %s key", i+1, cert.Key.Type())
			} else {
				certs = append(certs, hostCert{file: file, line: ssh.MarshalAuthorizedKey(cert), key: cert.Key})
			}
		}
		if err != nil {
			rep.problem(KindSSHD, "host certificates", err)
			refused = true
		}
	}
	return caKeys, certs, refused
}

// fileSafe maps a key type to a file name part.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

const (
	blockBegin = "# BEGIN rampart-agent: managed block, edits are overwritten"
	blockEnd   = "# END rampart-agent"
	fileHeader = "# Managed by rampart-agent. Changes are overwritten.\n"
)

// sshdDirectives are the settings the agent gives sshd: trust in the
// project's user CA for everyone, and for the accounts it manages (managed,
// sorted) certificates only.
func (h *Host) sshdDirectives(certFiles, managed []string, personalKeys bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "TrustedUserCAKeys %s\n", h.cfg.TrustedCAKeysFile)
	// One file per managed account, listing exactly its own name: a
	// certificate opens only the account its principal names, and an
	// account without a file (root, anything not managed) no certificate.
	fmt.Fprintf(&b, "AuthorizedPrincipalsFile %s/%%u\n", h.cfg.PrincipalsDir)
	for _, f := range certFiles {
		fmt.Fprintf(&b, "HostCertificate %s\n", f)
	}
	// At INFO, sshd logs no key id or serial for a refused certificate
	// and no connection for a PAM account refusal; the agent's login
	// events need both (agent/events).
	b.WriteString("LogLevel VERBOSE\n")
	b.WriteString(managedBlock(managed, personalKeys))
	return b.String()
}

// matchNames bounds the names on one Match line, keeping lines short for
// the people who read them.
const matchNames = 32

// managedBlock closes every way into a managed account except a
// certificate from the project's user CA: without it, anyone who reached
// the account through the bastion could add a line to
// ~/.ssh/authorized_keys and come back directly, with no per-hop
// certificate and no recording. It matches the accounts by name, from the
// state file, rather than by a group: the state file is the one authority
// on what the agent manages, and a group membership can be edited, or
// emptied by deprovisioning, without the agent noticing. Values in a Match
// block win over the global ones whatever their order, so a drop-in that
// sshd reads before this one cannot turn passwords back on for these
// accounts. The block ends with "Match all": settings after it (the rest
// of sshd_config, when the block is at its top) apply to everyone again.
// With personalKeys the accounts keep the global authorized-keys settings.
func managedBlock(managed []string, personalKeys bool) string {
	if len(managed) == 0 {
		return ""
	}
	var settings string
	if !personalKeys {
		settings = "\tAuthorizedKeysFile none\n\tAuthorizedKeysCommand none\n"
	}
	settings += "\tAuthenticationMethods publickey\n\tPasswordAuthentication no\n\tKbdInteractiveAuthentication no\n"
	var b strings.Builder
	for chunk := range slices.Chunk(managed, matchNames) {
		fmt.Fprintf(&b, "Match User %s\n%s", strings.Join(chunk, ","), settings)
	}
	b.WriteString("Match all\n")
	return b.String()
}

// includesDropIn reports whether sshd_config includes the drop-in (before
// any Match block, where an Include would only apply to that block).
func (h *Host) includesDropIn(config []byte) bool {
	for _, line := range strings.Split(string(config), "\n") {
		key, value := splitDirective(line)
		if strings.EqualFold(key, "Match") {
			return false
		}
		if !strings.EqualFold(key, "Include") {
			continue
		}
		for _, pat := range strings.Fields(value) {
			pat = strings.Trim(pat, `"`)
			if !path.IsAbs(pat) {
				pat = path.Join(path.Dir(h.cfg.SSHDConfig), pat)
			}
			if ok, _ := path.Match(pat, h.cfg.SSHDDropIn); ok {
				return true
			}
		}
	}
	return false
}

// splitDirective splits "Keyword value" or "Keyword=value".
func splitDirective(line string) (string, string) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", ""
	}
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	return line[:i], strings.TrimLeft(line[i:], " \t=")
}

// withBlock returns config with the agent's marked block set to directives
// (at the top: sshd keeps the first value it reads, and directives after a
// Match belong to it), or removed when directives is "".
func withBlock(config []byte, directives string) ([]byte, error) {
	lines := strings.SplitAfter(string(config), "\n")
	begin, end := -1, -1
	for i, l := range lines {
		switch strings.TrimRight(l, "\r\n") {
		case blockBegin:
			if begin >= 0 {
				return nil, errors.New("sshd_config holds two rampart-agent blocks")
			}
			begin = i
		case blockEnd:
			if begin >= 0 && end < 0 {
				end = i
			}
		}
	}
	if begin >= 0 && end < 0 {
		return nil, errors.New("sshd_config holds a rampart-agent block without its end line")
	}
	if begin >= 0 {
		lines = append(lines[:begin:begin], lines[end+1:]...)
	}
	rest := strings.Join(lines, "")
	if directives == "" {
		return []byte(rest), nil
	}
	return []byte(blockBegin + "\n" + directives + blockEnd + "\n" + rest), nil
}

// applySSHD writes the CA keys, host certificates and sshd settings,
// validates them with sshd -t and sshd -T (putting the old host
// certificates and settings back if either fails) and reloads sshd when
// what it reads at start changed.
func (p *pass) applySSHD() error {
	if p.w.sshdRefused {
		return nil
	}
	cfg := &p.h.cfg
	hostKeys, err := p.hostKeys()
	if err != nil {
		p.rep.problem(KindSSHD, "host keys", err)
	}
	var certFiles []string
	want := map[string][]byte{} // host certificate files
	for _, c := range p.w.hostCerts {
		if !hostKeys[string(c.key.Marshal())] {
			p.rep.problem(KindSSHD, "host certificates", fmt.Errorf("%w: the certificate for %s %s certifies none of this host's keys; skipped", ErrInvalid, c.key.Type(), ssh.FingerprintSHA256(c.key)))
			continue
		}
		certFiles = append(certFiles, c.file)
		want[c.file] = c.line
	}
	confFile := p.h.path(cfg.SSHDConfig)
	conf, err := readFileState(confFile)
	if err != nil || !conf.exists {
		p.rep.problem(KindSSHD, cfg.SSHDConfig, fmt.Errorf("read sshd config: %v", errors.Join(err, errors.New("missing"))))
		return nil
	}
	managed := sortedKeys(p.st.Users)
	directives := p.h.sshdDirectives(certFiles, managed, p.w.personalKeys)
	var dropIn, newConf []byte
	if p.h.includesDropIn(conf.data) {
		dropIn = []byte(fileHeader + directives)
		newConf, err = withBlock(conf.data, "")
	} else {
		newConf, err = withBlock(conf.data, directives)
	}
	if err != nil {
		p.rep.problem(KindSSHD, cfg.SSHDConfig, fmt.Errorf("%w: %w", ErrConflict, err))
		return nil
	}
	var ca strings.Builder
	ca.WriteString(fileHeader)
	for _, k := range p.w.caKeys {
		ca.WriteString(k + "\n")
	}

	// startChanged: a file sshd reads when it starts (or reloads) changed.
	startChanged := false
	set := func(txn *fileTxn, file string, data []byte, mode os.FileMode) bool {
		n := len(txn.done)
		if err := txn.set(p.h.path(file), data, mode); err != nil {
			p.rep.problem(KindSSHD, file, err)
			return false
		}
		if len(txn.done) > n {
			startChanged = startChanged || file != cfg.TrustedCAKeysFile
			action := "write"
			if data == nil {
				action = "remove"
			}
			p.logChange(KindSSHD, file, action, "")
		}
		return true
	}
	p.removeStaleTemps()
	// The CA keys file is read at every authentication and plays no part
	// in sshd -t: it is written on its own and never put back, so that a CA
	// the cluster dropped stops being trusted even while sshd's config is
	// broken by something else.
	set(&fileTxn{}, cfg.TrustedCAKeysFile, []byte(ca.String()), 0o644)

	var txn fileTxn
	ok := true
	stale, _ := filepath.Glob(p.h.path(path.Join(cfg.HostCertDir, "rampart_host_*-cert.pub")))
	for _, s := range stale {
		inside := path.Join(cfg.HostCertDir, filepath.Base(s))
		if want[inside] == nil {
			ok = ok && set(&txn, inside, nil, 0)
		}
	}
	for _, f := range certFiles {
		ok = ok && set(&txn, f, want[f], 0o644)
	}
	if dropIn != nil {
		if err := ensureDir(p.h.path(path.Dir(cfg.SSHDDropIn)), 0o755); err != nil {
			p.rep.problem(KindSSHD, cfg.SSHDDropIn, err)
			ok = false
		}
	}
	ok = ok && set(&txn, cfg.SSHDDropIn, dropIn, 0o644)
	ok = ok && set(&txn, cfg.SSHDConfig, newConf, conf.mode)
	if !ok {
		if err := txn.rollback(); err != nil {
			p.rep.problem(KindSSHD, "rollback", err)
		}
		return nil
	}
	if txn.changed() {
		if err := p.checkSSHD(certFiles, managed); err != nil {
			if rerr := txn.rollback(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			p.rep.problem(KindSSHD, cfg.SSHDConfig, fmt.Errorf("%w; the previous files were put back", err))
			return nil
		}
	}
	if !startChanged && !p.st.SSHDReloadPending {
		return nil
	}
	// Remember the reload until it succeeds: the next pass finds the files
	// already right and would otherwise never retry it.
	p.st.SSHDReloadPending = true
	if err := p.saveState(); err != nil {
		return err
	}
	if err := p.h.reload(p.ctx); err != nil {
		p.rep.problem(KindSSHD, "reload", err)
		return nil
	}
	p.st.SSHDReloadPending = false
	p.rep.Reloaded = true
	p.logChange(KindSSHD, "sshd", "reload", "")
	return p.saveState()
}

// removeStaleTemps removes the temporary files a pass that died may have
// left beside the sshd files (writeFileAtomic's ".name.tmp*").
func (p *pass) removeStaleTemps() {
	cfg := &p.h.cfg
	for _, pat := range []string{
		path.Join(cfg.HostCertDir, ".rampart_host_*-cert.pub.tmp*"),
		path.Join(path.Dir(cfg.TrustedCAKeysFile), "."+path.Base(cfg.TrustedCAKeysFile)+".tmp*"),
		path.Join(path.Dir(cfg.SSHDDropIn), "."+path.Base(cfg.SSHDDropIn)+".tmp*"),
		path.Join(path.Dir(cfg.SSHDConfig), "."+path.Base(cfg.SSHDConfig)+".tmp*"),
	} {
		files, _ := filepath.Glob(p.h.path(pat))
		for _, f := range files {
			_ = os.Remove(f)
		}
	}
}

// checkSSHD runs sshd -t, then sshd -T to see that the agent's settings are
// the ones in effect (an earlier line of sshd_config would win over them),
// for everyone and, with -C, for a managed account.
func (p *pass) checkSSHD(certFiles, managed []string) error {
	cfg := &p.h.cfg
	if out, err := p.runCmd(cfg.SSHD, "-t", "-f", cfg.SSHDConfig); err != nil {
		return fmt.Errorf("%w: sshd -t: %w%s", ErrRejected, err, outputTail(out))
	}
	got, err := p.effectiveSSHD()
	if err != nil {
		return err
	}
	want := map[string]string{
		"trustedusercakeys":        cfg.TrustedCAKeysFile,
		"authorizedprincipalsfile": cfg.PrincipalsDir + "/%u",
	}
	if err := settingsAre(got, want, cfg.SSHDConfig); err != nil {
		return err
	}
	for _, f := range certFiles {
		if !slices.Contains(got["hostcertificate"], f) {
			return fmt.Errorf("%w: sshd -T does not show hostcertificate %s", ErrRejected, f)
		}
	}
	if len(managed) == 0 {
		return nil
	}
	// Every managed account is in the same blocks with the same settings:
	// the first one stands for all.
	got, err = p.effectiveSSHD("-C", "user="+managed[0]+",host=rampart-agent-check,addr=127.0.0.1")
	if err != nil {
		return err
	}
	want = map[string]string{"authenticationmethods": "publickey", "passwordauthentication": "no", "kbdinteractiveauthentication": "no"}
	if !p.w.personalKeys {
		want["authorizedkeysfile"], want["authorizedkeyscommand"] = "none", "none"
	}
	return settingsAre(got, want, cfg.SSHDConfig+" (for managed account "+managed[0]+")")
}

// effectiveSSHD runs sshd -T with extra arguments and returns its settings.
func (p *pass) effectiveSSHD(extra ...string) (map[string][]string, error) {
	cfg := &p.h.cfg
	out, err := p.runCmd(append(append([]string{cfg.SSHD, "-T"}, extra...), "-f", cfg.SSHDConfig)...)
	if err != nil {
		return nil, fmt.Errorf("%w: sshd -T %s: %w", ErrRejected, strings.Join(extra, " "), err)
	}
	got := map[string][]string{}
	for _, l := range lines(out) {
		k, v, _ := strings.Cut(l, " ")
		got[k] = append(got[k], v)
	}
	return got, nil
}

// settingsAre checks that sshd -T showed each wanted setting with exactly
// its value.
func settingsAre(got map[string][]string, want map[string]string, where string) error {
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if v := want[k]; len(got[k]) != 1 || got[k][0] != v {
			return fmt.Errorf("%w: sshd -T shows %s %q, not %q: an earlier setting in %s wins over the agent's", ErrRejected, k, strings.Join(got[k], " "), v, where)
		}
	}
	return nil
}

// hostKeys reads the host public keys HostKeyGlob finds.
func (p *pass) hostKeys() (map[string]bool, error) {
	files, err := filepath.Glob(p.h.path(p.h.cfg.HostKeyGlob))
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	var errs []error
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Base(f), err))
			continue
		}
		keys[string(pub.Marshal())] = true
	}
	return keys, errors.Join(errs...)
}

// applyPrincipals gives every active managed account, and every usable
// shared account (shared.go), a principals file listing exactly its own
// name, and removes every other file in the directory, which the agent owns.
func (p *pass) applyPrincipals() error {
	dirInside := p.h.cfg.PrincipalsDir
	dir := p.h.path(dirInside)
	if err := ensureDir(dir, 0o755); err != nil {
		p.rep.problem(KindPrincipals, dirInside, err)
		return nil
	}
	keep := p.sharedAccounts()
	for name := range p.activeUsers {
		keep[name] = true
	}
	for _, name := range sortedKeys(keep) {
		file := path.Join(dir, name)
		old, err := readFileState(file)
		if err == nil && !old.same([]byte(name+"\n"), 0o644) {
			err = writeFileAtomic(file, []byte(name+"\n"), 0o644)
			if err == nil {
				p.logChange(KindPrincipals, name, "write", "")
			}
		}
		if err != nil {
			p.rep.problem(KindPrincipals, name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		p.rep.problem(KindPrincipals, dirInside, err)
		return nil
	}
	for _, e := range entries {
		if keep[e.Name()] {
			continue
		}
		if err := os.Remove(path.Join(dir, e.Name())); err != nil {
			p.rep.problem(KindPrincipals, safeName(e.Name()), err)
			continue
		}
		p.logChange(KindPrincipals, safeName(e.Name()), "remove", "")
	}
	return nil
}

// removePrincipals removes name's principals file at once (deprovisioning
// does not wait for the principals stage).
func (p *pass) removePrincipals(name string) {
	file := p.h.path(path.Join(p.h.cfg.PrincipalsDir, name))
	err := os.Remove(file)
	switch {
	case err == nil:
		p.logChange(KindPrincipals, name, "remove", "")
	case !errors.Is(err, os.ErrNotExist):
		p.rep.problem(KindPrincipals, name, err)
	}
}
