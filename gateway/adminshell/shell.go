// Package adminshell is the command shell behind `ssh admin@bastion`: one
// cobra command tree, run per line (interactive) or per connection (one-shot).
//
// It promises that every change it makes is written to the audit log with
// the admin's identity, that destructive commands are confirmed (a typed
// "yes", or --yes in one-shot mode), and stable exit statuses: 0 done, 1
// refused or failed, 2 misused (unknown command, bad flag or argument).
package adminshell

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// Exit statuses of a command.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Default bounds on how long a command waits for the cluster.
const (
	DefaultReadTimeout  = 5 * time.Second
	DefaultApplyTimeout = 15 * time.Second
)

// rootName is what cobra calls the root command in help and errors; it is the
// SSH user name that opens the shell.
const rootName = "admin"

var (
	// errNeedYes: a destructive command run one-shot without --yes.
	errNeedYes = errors.New("run it again with --yes to confirm")
	// errNotConfirmed: the admin did not type yes.
	errNotConfirmed = errors.New("not confirmed; nothing was changed")
	// errNoRecordings: the node gave the shell no way to read recordings.
	errNoRecordings = errors.New("this node cannot read recordings")
	// errTampered: a recording does not hash to what raft recorded.
	errTampered = errors.New("the recording does not match the SHA-256 recorded when the session closed: it was changed or damaged since; refusing to replay it")
)

// Store is what the shell needs of the replicated store.
type Store interface {
	State() *raftstore.State
	Apply(ctx context.Context, cmd raftstore.Command) (*raftstore.Result, error)
	// ConsistentRead waits until the local replica holds every committed
	// write, so a listing reflects changes just made on another node.
	ConsistentRead(ctx context.Context) error
	// CheckFresh says whether the local copy is within the staleness bound;
	// the shell uses it to word its warning when ConsistentRead fails.
	CheckFresh() error
	Status() (*raftstore.Status, error)
	RemoveServer(ctx context.Context, id string) error
	TransferLeadership() error
	Snapshot() error
}

// Cluster is what the shell needs of the node beyond the store.
type Cluster interface {
	// JoinAddrs are the HTTPS API addresses (host:port) written into
	// enrollment tokens, where a new agent first reaches the cluster.
	JoinAddrs() []string
	// CAPin is the cluster TLS CA's pin ("sha256:<hex>"), written into
	// enrollment tokens so the agent trusts nothing else.
	CAPin() string
}

// CAKeys makes SSH CA keys for rotations. The shell never holds the
// key-encryption key: the node generates the key and seals it, and the shell
// sees only what goes into raft.
type CAKeys interface {
	// NewCAKey generates a CA key of algorithm alg (ca.SSHAlgED25519, the
	// default when alg is "", ca.SSHAlgECDSAP256 or ca.SSHAlgRSA3072) for
	// the CA record id, and returns its authorized_keys line, the private key
	// sealed for that id, and its SSH key type (the record's Algorithm).
	NewCAKey(id, alg string) (publicKey string, sealed []byte, keyAlg string, err error)
}

// Recordings reads session recordings wherever the cluster keeps them.
type Recordings interface {
	// Open returns the asciicast recording of a closed session from the node
	// that carried it: this node's disk, or that node over the cluster's
	// mutual TLS. The caller checks it against session.RecordingSHA256.
	Open(ctx context.Context, session *raftstore.Session) (io.ReadCloser, error)
}

// Actor is the signed-in admin a command runs for.
type Actor struct {
	// Login is the IdP login; it is the audit events' actor.
	Login string
	// UserID is the user's stable id (the IdP subject).
	UserID string
	// Source is where the admin connects from (the SSH remote address).
	Source string
	// AdminGroup, when set, is the group the admin must stay in: a session
	// ends once their ID token's groups no longer hold it.
	AdminGroup string
}

// Deps is what a Shell runs on.
type Deps struct {
	Store Store
	// Control makes the shell's changes (validated and audited there). Nil
	// means one over Store, Cluster, Now and Rand that audits through Store,
	// with no target rule and no raft membership changes beyond Store's.
	Control *control.Service
	// Cluster may be nil: token creation is then refused.
	Cluster Cluster
	// CAKeys goes to the Control made when Control is nil (a given Control
	// has its own, control.Deps.CAKeys); nil: `ca rotate ... begin` is
	// refused.
	CAKeys CAKeys
	// Recordings may be nil: `sessions replay` is then refused.
	Recordings Recordings
	// MaxRecordingBytes bounds what `sessions replay` copies and checks (the
	// node's recording.max_session_bytes); 0 means DefaultMaxRecordingBytes.
	MaxRecordingBytes int64
	// NodeID names this node in whoami and messages; may be empty.
	NodeID string
	// AuditKey checks the audit log's checkpoint (`audit verify`); nil:
	// a pruned log cannot be verified.
	AuditKey ed25519.PublicKey
	// Logger receives one event per command; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of token secrets and ids; nil means crypto/rand.
	Rand io.Reader
	// ReadTimeout bounds the wait for a consistent read; 0 means
	// DefaultReadTimeout. When it passes, the shell shows the local copy with
	// a warning.
	ReadTimeout time.Duration
	// ApplyTimeout bounds each write; 0 means DefaultApplyTimeout.
	ApplyTimeout time.Duration
}

// Shell runs admin commands. It holds no per-command state: each command runs
// on a command tree built for it, so a Shell serves any number of sessions.
type Shell struct {
	store        Store
	control      *control.Service
	cluster      Cluster
	recordings   Recordings
	maxRecording int64
	nodeID       string
	auditKey     ed25519.PublicKey
	logger       *slog.Logger
	now          func() time.Time
	rand         io.Reader
	readTimeout  time.Duration
	applyTimeout time.Duration
}

// New returns a Shell over deps.
func New(deps Deps) *Shell {
	s := &Shell{store: deps.Store, cluster: deps.Cluster, recordings: deps.Recordings, maxRecording: deps.MaxRecordingBytes, nodeID: deps.NodeID, auditKey: deps.AuditKey, logger: deps.Logger,
		now: deps.Now, rand: deps.Rand, readTimeout: deps.ReadTimeout, applyTimeout: deps.ApplyTimeout}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.maxRecording <= 0 {
		s.maxRecording = DefaultMaxRecordingBytes
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.readTimeout <= 0 {
		s.readTimeout = DefaultReadTimeout
	}
	if s.applyTimeout <= 0 {
		s.applyTimeout = DefaultApplyTimeout
	}
	s.control = deps.Control
	if s.control == nil {
		cd := control.Deps{Store: deps.Store, Members: deps.Store, Auditor: control.StoreAuditor{Store: deps.Store, Now: s.now},
			Logger: s.logger, Now: s.now, Rand: s.rand, ApplyTimeout: s.applyTimeout, CAKeys: deps.CAKeys}
		if deps.Cluster != nil {
			cd.Cluster = deps.Cluster
		}
		s.control = control.New(cd)
	}
	return s
}

// RunCommand runs one command (`ssh admin@bastion servers ls --json`) and
// returns its exit status. Output goes to stdout, errors to stderr.
// Destructive commands need --yes: there is no one to ask.
func (s *Shell) RunCommand(ctx context.Context, actor Actor, args []string, stdout, stderr io.Writer) int {
	return s.RunCommandInput(ctx, actor, args, nil, stdout, stderr)
}

// RunCommandInput is RunCommand with the session's standard input, which
// `audit verify --file -` reads (an exported log piped through ssh). A nil
// stdin means there is none.
func (s *Shell) RunCommandInput(ctx context.Context, actor Actor, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	v := &invocation{sh: s, ctx: ctx, actor: actor, in: stdin, out: stdout, raw: stdout, errOut: stderr}
	return v.run(args)
}

// RunLine runs one command given as the raw line the SSH client sent (`ssh
// admin@bastion 'projects set web --shared-logins "a,b"'`), split like a
// shell would without any expansion.
func (s *Shell) RunLine(ctx context.Context, actor Actor, line string, stdin io.Reader, stdout, stderr io.Writer) int {
	args, err := splitWords(line)
	if err != nil {
		fmt.Fprintln(stderr, "error:", err)
		return ExitUsage
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "error: no command given")
		return ExitUsage
	}
	return s.RunCommandInput(ctx, actor, args, stdin, stdout, stderr)
}

// usageError marks a misuse: wrong arguments, an unknown command or flag.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// invocation is the state of one command: its flags, its streams, and how it
// asks for confirmation. Command builders are its methods so that each tree
// closes over exactly one invocation.
type invocation struct {
	sh    *Shell
	ctx   context.Context
	actor Actor
	in    io.Reader
	out   io.Writer
	// raw is where a replay writes the recorded terminal output untouched:
	// out itself in one-shot mode, the channel under the line editor in
	// interactive mode (which would otherwise rewrite line ends).
	raw    io.Writer
	errOut io.Writer
	// watch, when set, is the interactive session's Ctrl-C watcher (see
	// interruptible); nil in one-shot mode.
	watch func(ctx context.Context) (context.Context, context.CancelFunc)
	// ask, when set, asks the admin a question and returns the answer
	// (interactive mode); nil means nobody can be asked.
	ask func(question string) (string, error)
	// interactive adds the exit command.
	interactive bool

	args    []string
	jsonOut bool
	quiet   bool
	// path is the running command's path without the root ("projects set").
	path string
	// started is set once flags and arguments are accepted: an error before
	// it is a misuse.
	started bool
	// readDone records that the consistent read was made (or warned about).
	readDone bool
	// exit is set by the interactive exit command.
	exit bool
}

// run executes args on a fresh tree and returns the exit status.
func (v *invocation) run(args []string) int {
	v.args = append([]string{}, args...) // never nil: cobra would read os.Args
	root := v.newRoot()
	root.SetArgs(v.args)
	var cmd *cobra.Command
	var err error
	if len(v.args) > 0 && strings.HasPrefix(v.args[0], "__") {
		// cobra's hidden completion commands serve Tab, not the admin.
		err = fmt.Errorf("unknown command %q for %q", v.args[0], rootName)
	} else {
		cmd, err = root.ExecuteContextC(v.ctx)
	}
	code := v.exitCode(err)
	if err != nil {
		fmt.Fprintf(v.errOut, "Error: %s\n", err)
		if code == ExitUsage {
			fmt.Fprintf(v.errOut, "Run '%s' for usage.\n", helpHint(cmd))
		}
	}
	level := slog.LevelInfo
	if code != ExitOK {
		level = slog.LevelWarn
	}
	s := v.sh
	s.logger.Log(context.Background(), level, "admin command", "user", v.actor.Login, "remote", v.actor.Source,
		"command", displayArgs(v.args), "exit", code)
	return code
}

func (v *invocation) exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue) || !v.started:
		return ExitUsage
	default:
		return ExitError
	}
}

// helpHint names the help of the command an error came from.
func helpHint(cmd *cobra.Command) string {
	if cmd == nil || !cmd.HasParent() {
		return "help"
	}
	return strings.TrimPrefix(cmd.CommandPath(), rootName+" ") + " --help"
}

func (v *invocation) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   rootName,
		Short: "Rampart admin shell",
		Long: "Rampart admin shell: manage users, projects, servers, tokens, sudo entitlements,\n" +
			"sessions and their recordings, the audit log, CA keys and the cluster.\n" +
			"Every change is audited.\n\n" +
			"Listings and show take --json (for scripts) and --quiet (ids only).",
		Args:              unknownSubcommand,
		RunE:              func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: v.preRun,
		SilenceErrors:     true,
		SilenceUsage:      true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentFlags().BoolVar(&v.jsonOut, "json", false, "print JSON (for scripts)")
	root.PersistentFlags().BoolVarP(&v.quiet, "quiet", "q", false, "print ids only")
	root.AddCommand(v.whoamiCmd(), v.usersCmd(), v.groupsCmd(), v.projectsCmd(), v.entitlementsCmd(),
		v.serversCmd(), v.tokensCmd(), v.serviceTokensCmd(), v.scimCmd(), v.bindingsCmd(), v.sessionsCmd(), v.requestsCmd(),
		v.auditCmd(), v.caCmd(), v.clusterCmd())
	if v.interactive {
		root.AddCommand(&cobra.Command{
			Use: "exit", Aliases: []string{"quit"}, Short: "Leave the shell", Args: cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error { v.exit = true; return nil },
		})
	}
	root.SetOut(v.out)
	root.SetErr(v.errOut)
	if v.in != nil {
		root.SetIn(v.in)
	}
	return root
}

func (v *invocation) preRun(cmd *cobra.Command, _ []string) error {
	if v.jsonOut && v.quiet {
		return usagef("--json and --quiet cannot be used together")
	}
	v.path = strings.TrimPrefix(cmd.CommandPath(), rootName+" ")
	v.started = true
	return nil
}

// group returns a command that only holds subcommands: alone it prints its
// help; with an unknown subcommand it is a misuse.
func group(use, short string, aliases []string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use: use, Short: short, Aliases: aliases,
		Args: unknownSubcommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// unknownSubcommand refuses arguments to a command that only has
// subcommands, with cobra's suggestions.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	cmd.SuggestionsMinimumDistance = 2
	if sugg := cmd.SuggestionsFor(args[0]); len(sugg) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(sugg, "\n\t")
	}
	return &usageError{errors.New(msg)}
}

// confirm asks before a destructive change: --yes answers for the admin;
// one-shot mode without it refuses; interactive mode wants a typed "yes".
func (v *invocation) confirm(yes bool, what string) error {
	if yes {
		return nil
	}
	if v.ask == nil {
		return fmt.Errorf("refusing to %s without confirmation: %w", what, errNeedYes)
	}
	answer, err := v.ask(fmt.Sprintf("This will %s. Type yes to confirm: ", what))
	if err != nil {
		return errNotConfirmed
	}
	if strings.TrimSpace(answer) != "yes" {
		return errNotConfirmed
	}
	return nil
}

// state returns the replica to read, first making sure (once per command)
// that it holds every committed write. When the leader cannot confirm that in
// time, the local copy is shown with a warning: an admin debugging a broken
// cluster needs to see what this node has.
func (v *invocation) state() *raftstore.State {
	if !v.readDone {
		v.readDone = true
		ctx, cancel := context.WithTimeout(v.ctx, v.sh.readTimeout)
		err := v.sh.store.ConsistentRead(ctx)
		cancel()
		if err != nil {
			stale := ""
			if v.sh.store.CheckFresh() != nil {
				stale = ", which may be stale"
			}
			fmt.Fprintf(v.errOut, "warning: cannot confirm with the leader that this listing is current (%v); showing this node's copy%s\n", err, stale)
		}
	}
	return v.sh.store.State()
}

// localState is the replica as it is, for tab completion.
func (v *invocation) localState() *raftstore.State { return v.sh.store.State() }

// controlActor is the admin as the service layer sees them: their login,
// and the command line, source and admin id every audit event carries.
func (v *invocation) controlActor() control.Actor {
	return control.Actor{Name: v.actor.Login, UserID: v.actor.UserID, Fields: v.auditContext()}
}

// auditContext is what the shell adds to each of its audit events.
func (v *invocation) auditContext() map[string]string {
	return map[string]string{"command": displayArgs(v.args), "source": v.actor.Source, "admin_id": v.actor.UserID}
}

// confirmer asks before a destructive change the service has validated
// (confirm).
func (v *invocation) confirmer(yes bool) control.Confirm {
	return func(what string) error { return v.confirm(yes, what) }
}

// applyOnly makes one change of a command the shell audits itself (CA
// rotations, cluster maintenance): it is audited once at the end with record.
func (v *invocation) applyOnly(cmd raftstore.Command) (*raftstore.Result, error) {
	ctx, cancel := v.writeContext()
	defer cancel()
	return v.sh.store.Apply(ctx, cmd)
}

// writeContext bounds one write to the cluster.
func (v *invocation) writeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(v.ctx, v.sh.applyTimeout)
}

// record writes the audit event typ of the running command, after its
// change.
func (v *invocation) record(typ string, fields map[string]string) error {
	if err := v.audit(typ, fields); err != nil {
		v.sh.logger.Error("admin change not audited", "user", v.actor.Login, "command", v.path, "err", err)
		return fmt.Errorf("the change was made, but its audit event could not be written: %w", err)
	}
	return nil
}

// audit writes the audit event typ of the running command: its fields are
// the command line, source and admin id, and fields.
func (v *invocation) audit(typ string, fields map[string]string) error {
	f := v.auditContext()
	for k, val := range fields {
		f[k] = val
	}
	ev := raftstore.AuditEventInput{Time: v.sh.now().UTC(), Type: typ, Actor: v.actor.Login, Fields: f}
	_, err := v.applyOnly(&raftstore.AuditAppend{Events: []raftstore.AuditEventInput{ev}})
	return err
}

// displayArgs renders args as one shell-quoted line.
func displayArgs(args []string) string {
	args = redactArgs(args)
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = quoteWord(a)
	}
	return strings.Join(q, " ")
}

// quoteWord quotes s for the shell's line splitter when it needs it.
func quoteWord(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-^", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
