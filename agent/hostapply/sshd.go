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
// project's user CA for everyone, and for the accounts it manages
// certificates only. They name no account, so that a new person changes no
// sshd file and costs no reload.
func (h *Host) sshdDirectives(certFiles []string, personalKeys bool) string {
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
	if h.cfg.SingleUser != "" {
		// No account of the agent's: no group to hold to certificates.
		return b.String()
	}
	b.WriteString(managedBlock(personalKeys))
	return b.String()
}

// managedBlock closes every way into a managed account except a
// certificate from the project's user CA: without it, anyone who reached
// the account through the bastion could add a line to
// ~/.ssh/authorized_keys and come back directly, with no per-hop
// certificate and no recording. It matches ManagedGroup, which the agent
// keeps every account it manages in (the state file decides which) and
// repairs on every pass; an account that is not in it gets no principals
// file (applyPrincipals). Values in a Match block win over the global ones
// whatever their order, so a drop-in that sshd reads later cannot turn
// passwords back on for these accounts; a Match block sshd reads earlier
// can, which checkRestriction catches. The block ends with "Match all":
// settings after it (the rest of sshd_config, when the block is at its top)
// apply to everyone again. With personalKeys the accounts keep the global
// authorized-keys settings.
func managedBlock(personalKeys bool) string {
	var b strings.Builder
	b.WriteString("Match Group " + ManagedGroup + "\n")
	if !personalKeys {
		b.WriteString("\tAuthorizedKeysFile none\n\tAuthorizedKeysCommand none\n")
	}
	b.WriteString("\tAuthenticationMethods publickey\n\tPasswordAuthentication no\n\tKbdInteractiveAuthentication no\n")
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

// restriction is what a pass found of the certificates-only block.
type restriction int

const (
	// restrictionUnverified: sshd -T -C did not show the block's settings
	// for a member of ManagedGroup, or there was no member to ask about.
	restrictionUnverified restriction = iota
	// restrictionNotLoaded: sshd's files hold the block, verified, but
	// sshd has not loaded them (its reload failed).
	restrictionNotLoaded
	// restrictionInEffect: verified and loaded.
	restrictionInEffect
)

// applySSHD writes sshd's files (applySSHDFiles) and then finds whether
// the certificates-only block is in effect for ManagedGroup, whatever
// became of the files: written, put back after a failed check, or left as
// they were. applyPrincipals gives certificate access by what it found.
func (p *pass) applySSHD() error {
	in, err := p.inManagedGroup()
	if err != nil {
		return err
	}
	// Every member is in the same block: the first managed one stands
	// for all (membership itself is read from the account database).
	member := ""
	for _, name := range sortedKeys(p.st.Users) {
		if in[name] {
			member = name
			break
		}
	}
	verified, err := p.applySSHDFiles(member)
	if err != nil || member == "" {
		return err
	}
	if !verified {
		if err := p.checkRestriction(member); err != nil {
			if len(p.rep.ProblemsFor(KindSSHD, p.h.cfg.SSHDConfig)) == 0 {
				p.rep.problem(KindSSHD, p.h.cfg.SSHDConfig, err)
			}
			return nil
		}
	}
	p.restriction = restrictionInEffect
	if p.st.SSHDReloadPending {
		p.restriction = restrictionNotLoaded
	}
	return nil
}

// applySSHDFiles writes the CA keys, host certificates and sshd settings,
// validates them with sshd -t and sshd -T (putting the old host
// certificates and settings back if either fails) and reloads sshd when
// what it reads at start changed. verified: it changed sshd's files and
// checked the block for member.
func (p *pass) applySSHDFiles(member string) (verified bool, err error) {
	if p.w.sshdRefused {
		return false, nil
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
		return false, nil
	}
	directives := p.h.sshdDirectives(certFiles, p.w.personalKeys)
	var dropIn, newConf []byte
	if p.h.includesDropIn(conf.data) {
		dropIn = []byte(fileHeader + directives)
		newConf, err = withBlock(conf.data, "")
	} else {
		newConf, err = withBlock(conf.data, directives)
	}
	if err != nil {
		p.rep.problem(KindSSHD, cfg.SSHDConfig, fmt.Errorf("%w: %w", ErrConflict, err))
		return false, nil
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
	// Older agents wrote rampart.conf, which sorts after 10-*.conf.
	if legacy := path.Join(path.Dir(cfg.SSHDDropIn), legacyDropIn); ok && legacy != cfg.SSHDDropIn {
		if old, err := readFileState(p.h.path(legacy)); err == nil && old.exists && bytes.HasPrefix(old.data, []byte(fileHeader)) {
			ok = set(&txn, legacy, nil, 0)
		}
	}
	ok = ok && set(&txn, cfg.SSHDConfig, newConf, conf.mode)
	if !ok {
		if err := txn.rollback(); err != nil {
			p.rep.problem(KindSSHD, "rollback", err)
		}
		return false, nil
	}
	if txn.changed() {
		if err := p.checkSSHD(certFiles, member); err != nil {
			if rerr := txn.rollback(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			p.rep.problem(KindSSHD, cfg.SSHDConfig, fmt.Errorf("%w; the previous files were put back", err))
			return false, nil
		}
		verified = member != ""
	}
	if !startChanged && !p.st.SSHDReloadPending {
		return verified, nil
	}
	// Remember the reload until it succeeds: the next pass finds the files
	// already right and would otherwise never retry it.
	p.st.SSHDReloadPending = true
	if err := p.saveState(); err != nil {
		return verified, err
	}
	if err := p.h.reload(p.ctx); err != nil {
		p.rep.problem(KindSSHD, "reload", err)
		return verified, nil
	}
	p.st.SSHDReloadPending = false
	p.rep.Reloaded = true
	p.logChange(KindSSHD, "sshd", "reload", "")
	return verified, p.saveState()
}

// legacyDropIn is the drop-in's name before it had to sort first.
const legacyDropIn = "rampart.conf"

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
// for everyone and, with -C, for member, a member of ManagedGroup ("": none
// to check with).
func (p *pass) checkSSHD(certFiles []string, member string) error {
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
	if member == "" {
		return nil
	}
	return p.checkRestriction(member)
}

// checkAddrs are the client addresses checkRestriction asks sshd -T -C
// about: an earlier Match Address block (a site's "Match Address
// 10.0.0.0/8" that turns authorized_keys back on) wins for the addresses it
// names only. Loopback, each private and shared range, and a public-looking
// documentation address, for IPv4 and IPv6. A block for another, narrower
// range can still go unseen; the drop-in sorting first (00-rampart.conf)
// is what keeps the usual drop-ins from winning.
var checkAddrs = []string{"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "100.64.0.1", "192.0.2.1", "::1", "fd00::1", "2001:db8::1"}

// checkRestriction runs sshd -T -C for member from each of checkAddrs and
// checks that the certificates-only settings are the ones sshd would use.
func (p *pass) checkRestriction(member string) error {
	cfg := &p.h.cfg
	want := map[string]string{"authenticationmethods": "publickey", "passwordauthentication": "no", "kbdinteractiveauthentication": "no"}
	if !p.w.personalKeys {
		want["authorizedkeysfile"], want["authorizedkeyscommand"] = "none", "none"
	}
	for _, addr := range checkAddrs {
		got, err := p.effectiveSSHD("-C", "user="+member+",host=rampart-agent-check,addr="+addr)
		if err != nil {
			return err
		}
		if err := settingsAre(got, want, cfg.SSHDConfig+" (for managed account "+member+" from "+addr+")"); err != nil {
			return err
		}
	}
	return nil
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
	if len(p.h.cfg.HostKeyFiles) > 0 {
		files = files[:0]
		for _, f := range p.h.cfg.HostKeyFiles {
			files = append(files, p.h.path(f))
		}
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
