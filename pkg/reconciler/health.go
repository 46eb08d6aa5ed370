package reconciler

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// health is what /healthz reports: when the loop last finished a resync (Unix nanoseconds).
type health struct{ lastResync atomic.Int64 }

func goVersion() string { return runtime.Version() }

// Healthy reports whether the running loop is doing its work: nil once Run has finished a
// resync (every key listed, fed and reconciled) within the last three resync periods, else an
// error saying since when it has not. Before Run's first resync it is healthy for three periods
// from New (the boot pass may take a while).
func (c *Controller) Healthy() error {
	last := time.Unix(0, c.health.lastResync.Load())
	limit := 3 * c.settings().resyncPeriod
	if since := time.Since(last); since > limit {
		return fmt.Errorf("no resync finished for %s (limit %s, three resync periods): the loop is wedged", since.Round(time.Millisecond), limit)
	}
	return nil
}
