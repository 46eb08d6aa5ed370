package reconciler

import (
	"errors"
	"time"

	"github.com/hermes/profile-controller/pkg/s6"
)

// settings are the parts of the configuration that may change while Run runs: one immutable
// value per configuration generation. Each reconcile, pass and status report reads it once
// (Controller.settings) and uses that value throughout, so a reconfiguration never mixes two
// generations within one look.
type settings struct {
	// gen is the configuration generation: 1 for the configuration New was given, one more
	// for each Reconfigure.
	gen      int64
	renderer *Renderer
	owner    *s6.Owner
	rules    Rules
	exec     *Executor
	// resyncPeriod and heartbeatTimeout are defaulted (Options.defaults).
	resyncPeriod, heartbeatTimeout time.Duration
}

// newSettings builds generation gen from defaulted options. count is the service count every
// generation's executor shares, so the servicesMax check sees every create.
func newSettings(o Options, gen int64, count *serviceCount) *settings {
	return &settings{
		gen: gen, renderer: o.Renderer, owner: o.Owner, rules: o.Rules,
		exec: &Executor{
			Scandir: o.Scandir, Services: o.Services, Scanner: o.Scanner, Owner: o.Owner,
			CleanStale: o.CleanStale, ServicesMax: o.ServicesMax, count: count,
		},
		resyncPeriod: o.ResyncPeriod, heartbeatTimeout: o.HeartbeatTimeout,
	}
}

// settings returns the configuration generation in use.
func (c *Controller) settings() *settings { return c.live.Load() }

// Generation returns the configuration generation in use: 1 for the configuration New was
// given, one more for each Reconfigure. Safe for concurrent use.
func (c *Controller) Generation() int64 { return c.settings().gen }

// Reconfigure makes the live fields of o the configuration in use, as a new generation, and
// returns that generation. The live fields are Renderer, Owner, Rules, ResyncPeriod,
// UnregisterTimeout, HeartbeatTimeout, Services and Scanner (both, or neither: nil keeps the
// ones in use) and ServicesMax, defaulted as New defaults them; every other field is fixed at
// New and ignored here.
//
// It is safe to call while Run runs: a look or a batch in flight finishes with the generation
// it started with, and every later one uses the new one. Run then restarts its resync ticker
// with the new period and resyncs at once, so every key is looked at: slot files known to match
// the old rendering are compared again (the knowledge is keyed by Renderer.Generation), drifted
// ones are rewritten in place by update (no restart; s6 runs the new run script at the
// gateway's next start), and with a newly set Owner existing slots get the supervise skeleton.
// changed names the configuration fields that changed, for the record status shows.
//
// It returns an error, and changes nothing, when o.Renderer is nil.
func (c *Controller) Reconfigure(o Options, changed []string) (int64, error) {
	if o.Renderer == nil {
		return 0, errors.New("reconfigure: no renderer")
	}
	c.reconfMu.Lock()
	defer c.reconfMu.Unlock()
	next := c.opts
	next.Renderer, next.Owner, next.Rules = o.Renderer, o.Owner, o.Rules
	next.ResyncPeriod, next.UnregisterTimeout, next.HeartbeatTimeout = o.ResyncPeriod, o.UnregisterTimeout, o.HeartbeatTimeout
	if o.Services != nil && o.Scanner != nil {
		next.Services, next.Scanner = o.Services, o.Scanner
	}
	next.ServicesMax = o.ServicesMax
	next.defaults()
	s := newSettings(next, c.settings().gen+1, c.services)
	c.live.Store(s)
	c.configState.applied(s, changed, c.opts.Now())
	c.saveConfigState()
	select {
	case c.reconfigured <- struct{}{}:
	default:
	}
	return s.gen, nil
}

// ConfigRefused records that a new configuration was refused (err says why, on one line), for
// status; the configuration in use does not change.
func (c *Controller) ConfigRefused(err error) {
	c.reconfMu.Lock()
	defer c.reconfMu.Unlock()
	c.configState.refused(err, c.opts.Now())
	c.saveConfigState()
}
