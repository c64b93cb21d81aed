package frontdoor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the front door's instruments (docs/metrics.md). Label values
// come from fixed lists: never a user, a key or an address.
type Metrics struct {
	// Logins counts sign-in outcomes by method: bound_key, device_flow,
	// device_flow_bind; outcome ok, refused (the node said no: a disabled
	// user, a stale replica, a limit), failed (the device flow or
	// provisioning failed), abandoned (the client left).
	Logins *prometheus.CounterVec
	// DeviceFlows is the number of device flows polling the IdP now.
	DeviceFlows prometheus.Gauge
	// Refusals counts connections and sign-ins refused by the pre-auth
	// limits, by the limit that refused: preauth_total, preauth_per_source,
	// device_flows_per_source.
	Refusals *prometheus.CounterVec
}

// NewMetrics makes the front door's metrics and registers them with reg;
// a nil reg registers nothing (tests read them directly).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Logins: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_logins_total",
			Help: "SSH sign-ins by method (bound_key, device_flow, device_flow_bind) and outcome (ok, refused, failed, abandoned)."},
			[]string{"method", "outcome"}),
		DeviceFlows: f.NewGauge(prometheus.GaugeOpts{Name: "rampart_device_flows_pending",
			Help: "OIDC device flows this node is polling the IdP for."}),
		Refusals: f.NewCounterVec(prometheus.CounterOpts{Name: "rampart_ssh_refusals_total",
			Help: "SSH connections and sign-ins refused by the pre-auth limits, by limit (preauth_total, preauth_per_source, device_flows_per_source)."},
			[]string{"limit"}),
	}
}

// Login methods and outcomes, the values of rampart_logins_total's labels.
const (
	methodBoundKey       = "bound_key"
	methodDeviceFlow     = "device_flow"
	methodDeviceFlowBind = "device_flow_bind"

	outcomeOK        = "ok"
	outcomeRefused   = "refused"
	outcomeFailed    = "failed"
	outcomeAbandoned = "abandoned"
)

// Limits that refuse, the values of rampart_ssh_refusals_total's label.
const (
	limitPreauthTotal     = "preauth_total"
	limitPreauthPerSource = "preauth_per_source"
	limitFlowsPerSource   = "device_flows_per_source"
)

func (m *Metrics) login(method, outcome string) { m.Logins.WithLabelValues(method, outcome).Inc() }

// metricMethod is the label value of a sign-in method as the audit log
// names it.
func metricMethod(method string) string {
	if method == "device-flow+bind" {
		return methodDeviceFlowBind
	}
	return methodDeviceFlow
}
