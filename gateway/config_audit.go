package gateway

import (
	"fmt"
	"time"
)

// Audit bounds the audit log: the node's spill, and the retention the
// cluster's leader applies (docs/audit-events.md).
type Audit struct {
	// SpillMaxBytes bounds the queue on disk (<data_dir>/audit-spill)
	// that takes events while the cluster cannot; past it, callers wait.
	SpillMaxBytes int64 `mapstructure:"spill_max_bytes"`
	// Retention is what the log keeps; the leader's applies.
	Retention AuditRetention `mapstructure:"retention"`
}

// AuditRetention bounds the log by age and by count; 0 is no bound. Events
// past either are pruned behind a signed checkpoint.
type AuditRetention struct {
	MaxAge    time.Duration `mapstructure:"max_age"`
	MaxEvents int64         `mapstructure:"max_events"`
	// Interval is how often the leader looks for events to prune.
	Interval time.Duration `mapstructure:"interval"`
}

func init() {
	defaults["audit.spill_max_bytes"] = int64(256 << 20)
	defaults["audit.retention.max_age"] = "0s"
	defaults["audit.retention.max_events"] = int64(0)
	defaults["audit.retention.interval"] = "1h"
}

// Bounds of the audit settings.
const (
	minAuditSpill        = 1 << 20
	minAuditRetainAge    = 24 * time.Hour
	minAuditRetainEvents = 10000
)

func (a *Audit) problems() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if a.SpillMaxBytes < minAuditSpill {
		bad("audit.spill_max_bytes %d: must be at least %d (1 MiB)", a.SpillMaxBytes, minAuditSpill)
	}
	r := a.Retention
	if r.MaxAge != 0 && r.MaxAge < minAuditRetainAge {
		bad("audit.retention.max_age %s: must be 0 (no bound) or at least %s", r.MaxAge, minAuditRetainAge)
	}
	if r.MaxEvents != 0 && r.MaxEvents < minAuditRetainEvents {
		bad("audit.retention.max_events %d: must be 0 (no bound) or at least %d", r.MaxEvents, minAuditRetainEvents)
	}
	if r.Interval < time.Minute || r.Interval > 24*time.Hour {
		bad("audit.retention.interval %s: must be between 1m and 24h", r.Interval)
	}
	return errs
}
