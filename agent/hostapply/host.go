package hostapply

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// Applier makes the server match a desired state. The agent's pull loop
// depends on this interface only.
type Applier interface {
	// Apply reconciles the server with d and reports what it changed and
	// what it refused. Per-item problems (a conflict, a rejected sudo rule)
	// are in the Report; the error is for a pass that could not run (the
	// state file or the account database unreadable, ctx done).
	Apply(ctx context.Context, d Desired) (Report, error)
}

// Host is the Applier for the server it runs on.
type Host struct {
	cfg           Config
	run           Runner
	extraReserved map[string]bool
	reload        func(context.Context) error
	killUser      func(context.Context, uint32) error
	processUIDs   func() (map[uint32]bool, error)
	// realSystem: commands change this machine (ExecRunner), so the
	// Linux-only helpers that read /proc may run.
	realSystem bool

	// mu serialises passes: a pass reads the account database, decides and
	// changes it, and two at once would decide on stale reads.
	mu sync.Mutex
}

var _ Applier = (*Host)(nil)

// New returns a Host for cfg (defaults filled in), or every problem of cfg.
func New(cfg Config) (*Host, error) {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		return nil, err
	}
	_, real := cfg.Runner.(ExecRunner)
	h := &Host{cfg: cfg, run: cfg.Runner, extraReserved: toSet(cfg.Reserved...), realSystem: real}
	h.reload = cfg.Reload
	if h.reload == nil {
		h.reload = h.defaultReload
	}
	h.killUser = cfg.KillUser
	if h.killUser == nil {
		h.killUser = h.defaultKillUser
	}
	h.processUIDs = cfg.ProcessUIDs
	if h.processUIDs == nil && real {
		h.processUIDs = procUIDs
	}
	return h, nil
}

// path maps a path as the system sees it to the file the agent opens.
func (h *Host) path(p string) string { return filepath.Join(h.cfg.Root, p) }

// pass is one Apply.
type pass struct {
	h   *Host
	ctx context.Context
	now time.Time
	st  *managedState
	rep *Report
	w   *wantState
	// usableGroups are managed groups present with their recorded gid.
	usableGroups map[string]bool
	// membersOK are usable groups whose members are exactly the managed
	// accounts given them, and which no other account has as its primary
	// group: only these may appear in sudoers as %group.
	membersOK map[string]bool
	// activeUsers are managed accounts that are active and present as
	// recorded after the users stage.
	activeUsers map[string]bool
	// managedGroupOK: ManagedGroup exists, and lists given to usermod -G
	// carry it.
	managedGroupOK bool
	// restriction is what the sshd stage found of the certificates-only
	// block; applyPrincipals gives access by it.
	restriction restriction
	// procUIDs caches ProcessUIDs for the pass.
	procUIDs map[uint32]bool
	// db is the last snapshot; dbStale says an account tool ran since.
	db      *hostDB
	dbStale bool
}

// accountTools change the account database (and make a snapshot stale).
var accountTools = toSet("useradd", "usermod", "userdel", "groupadd", "groupmod", "groupdel", "gpasswd")

// Apply implements Applier.
func (h *Host) Apply(ctx context.Context, d Desired) (Report, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var rep Report
	st, err := h.loadState()
	if err != nil {
		return rep, err
	}
	if h.cfg.SingleUser != "" {
		d = h.singleUserDesired(d)
	}
	p := &pass{h: h, ctx: ctx, now: h.cfg.Now(), st: st, rep: &rep, w: h.validate(d, &rep)}
	type stage struct {
		name string
		do   func() error
	}
	stages := []stage{
		{"groups", p.applyGroups},
		{"users", p.applyUsers},
		{"group members", p.applyGroupMembers},
		{"sudo", p.applySudo},
		// sshd before principals: a certificate opens an account only
		// once sshd holds it to certificates only (applyPrincipals).
		{"sshd", p.applySSHD},
		{"principals", p.applyPrincipals},
	}
	if h.cfg.SingleUser != "" {
		if err := st.checkSingleUser(h.cfg.StateFile); err != nil {
			return rep, err
		}
		stages = []stage{{"sshd files", p.makeSingleUserDirs}, {"sshd", p.applySSHD}, {"principals", p.applySingleUserPrincipals}}
	}
	for _, stage := range stages {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("apply: %w", err)
		}
		if err := stage.do(); err != nil {
			return rep, fmt.Errorf("apply %s: %w", stage.name, err)
		}
	}
	return rep, nil
}

// runCmd runs argv and logs it.
func (p *pass) runCmd(argv ...string) ([]byte, error) {
	if accountTools[argv[0]] {
		p.dbStale = true
	}
	out, err := p.h.run.Run(p.ctx, argv)
	if err != nil {
		p.h.cfg.Logger.Debug("hostapply: command failed", "argv", argv, "err", err)
	}
	return out, err
}

func (p *pass) logChange(kind Kind, name, action, detail string) {
	p.rep.change(kind, name, action, detail)
	p.h.cfg.Logger.Info("hostapply: "+action, string(kind), name, "detail", detail)
}

func (p *pass) saveState() error { return p.h.saveState(p.st) }
