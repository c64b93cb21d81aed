package gateway

import (
	"context"

	"github.com/rampart-ssh/rampart/gateway/auditexport"
)

// startAuditExport runs the audit exporter of audit_export's sinks; it
// exports only while this node leads (docs/audit-export.md).
func (n *Node) startAuditExport(ctx context.Context) error {
	ae := n.cfg.AuditExport
	if len(ae.Sinks) == 0 {
		return nil
	}
	targets, err := auditexport.Build(ae.Sinks, n.id, n.now)
	if err != nil {
		return err
	}
	e := auditexport.New(auditexport.Config{Store: n.store, Auditor: n.audit, Targets: targets, NodeID: n.id,
		Logger: n.logger, Metrics: n.metrics.export, BatchSize: ae.BatchSize, RetryMin: ae.RetryMin, RetryMax: ae.RetryMax, Now: n.now})
	go e.Run(ctx)
	return nil
}

// exportSinkNames are the configured sinks' names: audit retention keeps
// what any of them has not yet taken.
func (n *Node) exportSinkNames() []string {
	var names []string
	for _, s := range n.cfg.AuditExport.Sinks {
		names = append(names, s.Name)
	}
	return names
}
