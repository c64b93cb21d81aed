package jump

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/rampart-ssh/rampart/gateway/targetaddr"
)

// Metrics are the jump's instruments (docs/metrics.md). Label values come
// from fixed lists: never a user, a server or an address.
type Metrics struct {
	// Decisions counts each hop's final answer: outcome allowed (reason
	// ok) or refused, with the reason (decisionReason).
	Decisions *prometheus.CounterVec
	// SessionsLive is the number of sessions this node carries now;
	// SessionsOpened and SessionsClosed count them as they come and go.
	SessionsLive   prometheus.Gauge
	SessionsOpened prometheus.Counter
	SessionsClosed prometheus.Counter
	// BytesRelayed counts the bytes of ended sessions, by direction: in
	// (person to target) and out (target to person).
	BytesRelayed *prometheus.CounterVec
	// RecordingFailures counts recordings that failed (to start, or while
	// running), by the project's policy: fail_open or fail_closed.
	RecordingFailures *prometheus.CounterVec
}

// NewMetrics makes the jump's metrics and registers them with reg; a nil
// reg registers nothing.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Decisions: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_jump_decisions_total",
			Help: "Jump hops by outcome (allowed, refused) and reason (ok, or why it was refused)."},
			[]string{"outcome", "reason"}),
		SessionsLive: f.NewGauge(prometheus.GaugeOpts{Name: "rampart_sessions_live",
			Help: "Proxied sessions this node carries now."}),
		SessionsOpened: f.NewCounter(prometheus.CounterOpts{Name: "rampart_sessions_opened_total",
			Help: "Proxied sessions opened on this node."}),
		SessionsClosed: f.NewCounter(prometheus.CounterOpts{Name: "rampart_sessions_closed_total",
			Help: "Proxied sessions ended on this node."}),
		BytesRelayed: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_relayed_bytes_total",
			Help: "Bytes relayed by sessions that have ended, by direction (in: person to target, out: target to person)."},
			[]string{"direction"}),
		RecordingFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_recording_failures_total",
			Help: "Session recordings that failed, by the project's policy (fail_open, fail_closed)."},
			[]string{"policy"}),
	}
}

// Reasons of rampart_jump_decisions_total: one per refusal the jump can
// give, each from an error it knows.
const (
	reasonOK = "ok"
	// reasonStale: the node cannot vouch for its replica.
	reasonStale = "stale_replica"
	// reasonOther: an error none of the below names (an internal one).
	reasonOther = "other"
)

// reasons maps the jump's sentinel errors to their reason label.
var reasons = []struct {
	err    error
	reason string
}{
	{ErrNotEnrolled, "not_enrolled"},
	{targetaddr.ErrForbidden, "forbidden_address"},
	{ErrNotInProject, "not_in_project"},
	{ErrLoginDenied, "login_denied"},
	{ErrUserInactive, "user_inactive"},
	{ErrWrongPort, "wrong_port"},
	{ErrBindingRevoked, "binding_revoked"},
	{ErrAgentBehind, "agent_behind"},
	{ErrTargetIdentity, "target_identity"},
	{ErrNoHostCert, "no_host_certificate"},
	{errMint, "mint_failed"},
	{errUnreachable, "target_unreachable"},
	{errTargetRefused, "target_refused_login"},
}

// decisionReason is err's reason label.
func decisionReason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return reasonOther
}

func (m *Metrics) refused(err error) {
	m.Decisions.WithLabelValues("refused", decisionReason(err)).Inc()
}

// Errors of dialTarget that carry their reason label; their messages are
// made where they occur (reasonedf).
var (
	errMint          = errors.New("the bastion could not issue a certificate for this hop")
	errUnreachable   = errors.New("target unreachable")
	errTargetRefused = errors.New("target refused the login")
)

// reasoned is an error shown as msg that is its reason (errors.Is).
type reasoned struct {
	msg    string
	reason error
}

func (e *reasoned) Error() string        { return e.msg }
func (e *reasoned) Is(target error) bool { return target == e.reason }
