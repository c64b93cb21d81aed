package gateway

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// applyMemory sets the garbage collector from the memory section, unless
// GOGC or GOMEMLIMIT in the environment already did (the operator's
// explicit choice wins, as for any Go program).
func applyMemory(m Memory, logger *slog.Logger) {
	if v := os.Getenv("GOGC"); v != "" {
		logger.Info("GOGC is set in the environment; memory.gc_percent is not applied", "GOGC", v)
	} else {
		debug.SetGCPercent(m.GCPercent)
	}
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		logger.Info("GOMEMLIMIT is set in the environment; memory.soft_limit_mib is not applied", "GOMEMLIMIT", v)
	} else if m.SoftLimitMiB > 0 {
		debug.SetMemoryLimit(int64(m.SoftLimitMiB) << 20)
	}
}
