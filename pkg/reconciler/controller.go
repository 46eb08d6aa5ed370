package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/s6"
)

// BootMarker is the file in the runtime dir whose presence means the boot pass is done.
const BootMarker = "boot-done"

// BootLogger appends the boot pass's lines to the boot log.
type BootLogger func(lines []string) error

// Options configure a Controller. Zero durations take the defaults.
type Options struct {
	HermesHome, Scandir, RuntimeDir string
	// Services and Scanner drive s6 (usually the same *s6.Client).
	Services Services
	Scanner  Scanner
	Renderer *Renderer
	// Owner, when set, owns the supervise skeleton of new slots.
	Owner *s6.Owner
	Rules Rules
	// ResyncPeriod is the periodic full resync (default 10 s).
	ResyncPeriod time.Duration
	// UnregisterTimeout is how long the gateway of a deleted profile may take to go down before
	// it is killed (default 10 s); it sets Rules.UnregisterTimeout.
	UnregisterTimeout time.Duration
	// CleanStale and BootLog write the two things the controller writes under HERMES_HOME.
	CleanStale StaleCleaner
	BootLog    BootLogger
	// Log receives structured logs; Now is the clock.
	Log logr.Logger
	Now func() time.Time
	// ServicesMax is s6-svscan's service limit, loggers included (0: unchecked).
	ServicesMax int
	// Metrics, when set, receives the controller's Prometheus metrics.
	Metrics prometheus.Registerer
	// Workers is the number of keys reconciled in parallel (default 4); a key never runs twice at once.
	Workers int
	// HeartbeatTimeout: a gateway s6 says is up whose heartbeat is older is reported Stale
	// (default 120 s; never acted on).
	HeartbeatTimeout time.Duration
	// Version is the build's version, for profile_controller_build_info.
	Version string
	// Topology says which gateway serves which profile (default PerProfile); Fallback is what
	// Multiplex does for a folded profile the root does not serve (default FallbackNone).
	Topology Topology
	Fallback Fallback
	// OnReady, when set, is called once by Run when the boot pass (if any) is done and the loop
	// is watching: the moment to tell a supervisor the controller is ready (s6 notification-fd).
	OnReady func()
	// Lease makes the controller act only while it holds the volume lease
	// (HERMES_HOME/.profile-controller.lease, see lease.go); false (lease: off) acts always and
	// touches no lease file. Standby (role: standby) never acts, lease or not.
	Lease, Standby bool
}

func (o *Options) defaults() {
	if o.ResyncPeriod <= 0 {
		o.ResyncPeriod = 10 * time.Second
	}
	if o.UnregisterTimeout <= 0 {
		o.UnregisterTimeout = 10 * time.Second
	}
	o.Rules.UnregisterTimeout = o.UnregisterTimeout
	if o.Rules.SettlePeriod <= 0 {
		o.Rules.SettlePeriod = 15 * time.Second
	}
	if o.Rules.MinUptime <= 0 {
		o.Rules.MinUptime = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 120 * time.Second
	}
	if o.Topology == "" {
		o.Topology = PerProfile
	}
	if o.Fallback == "" {
		o.Fallback = FallbackNone
	}
}

// Controller reconciles profiles into s6 slots.
type Controller struct {
	opts   Options
	loader desired.Loader
	// live is the configuration generation in use (reconfigure.go); services the service count
	// its executors share.
	live     atomic.Pointer[settings]
	services *serviceCount
	// reconfMu serialises reconfigurations and guards configState and what Run published of it.
	reconfMu     sync.Mutex
	configState  ConfigStatus
	publishing   bool
	savedConfig  []byte
	reconfigured chan struct{} // signalled by Reconfigure: Run resets its ticker and resyncs

	mu       sync.Mutex
	keys     map[string]*keyState // every key with a profile or a slot; never junk names
	reported map[reportKey]string // last problem logged per what and key, to log changes only
	store    *store
	metrics  *metrics
	guard    *volumeGuard
	health   health
	rootsMu  sync.Mutex
	shared   *roots           // the loop's roots of the current resync (nil outside Run)
	busy     atomic.Int32     // workers in a reconcile
	keyLogs  keyLogs          // opts.Log for one key (see keyLogs)
	topo     *topo            // Multiplex bookkeeping (topology.go)
	enqueue  func(key string) // the loop's queue (nil outside Run)
	// watcher is Run's file watcher while it runs (nil otherwise); watchEpoch counts its
	// event overflows. Both decide whether a watch-verified slot may be reused (slotwatch.go).
	watcher    atomic.Pointer[watcher]
	watchEpoch atomic.Uint64

	lockMu   sync.Mutex
	lockFile *os.File // the runtime dir's lock, held from Lock until its release
	scanLock *os.File // the scandir's lock (nil when the scandir did not exist)

	bootOnce sync.Once
	bootTime time.Time

	own ownership // whether this controller may act on the volume (lease.go)
}

// containerBoot is when this container booted: the start of PID 1 (s6-svscan under s6-overlay)
// in the controller's PID namespace, from /proc. Zero when it cannot be told.
func (c *Controller) containerBoot() time.Time {
	c.bootOnce.Do(func() { c.bootTime = pid1Start() })
	return c.bootTime
}

// New returns a Controller. It does not touch the file system.
func New(opts Options) *Controller {
	opts.defaults()
	c := &Controller{
		opts:         opts,
		loader:       desired.Loader{Home: opts.HermesHome},
		services:     &serviceCount{},
		reconfigured: make(chan struct{}, 1),
		keys:         map[string]*keyState{},
		reported:     map[reportKey]string{},
		store:        newStore(opts.RuntimeDir),
		guard:        newVolumeGuard(),
		topo:         newTopo(),
	}
	s := newSettings(opts, 1, c.services)
	c.live.Store(s)
	c.configState.applied(s, nil, opts.Now())
	c.keyLogs = newKeyLogs(opts.Log)
	c.initOwnership()
	c.metrics = c.registerMetrics(opts.Metrics)
	c.health.lastResync.Store(time.Now().UnixNano())
	return c
}

// BootPending reports whether the boot pass has not run since the runtime dir was created.
func (c *Controller) BootPending() bool {
	_, err := os.Lstat(filepath.Join(c.opts.RuntimeDir, BootMarker))
	return errors.Is(err, os.ErrNotExist)
}

// state returns a copy of what the controller keeps about key (zero when nothing). The copy
// is O(1): the maps inside are never modified, only replaced.
func (c *Controller) state(key string) keyState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ks := c.keys[key]; ks != nil {
		return *ks
	}
	return keyState{}
}

// commit stores what one look learnt and the memory the applied actions leave behind, records
// the key's events (and logs each once, at the default level), and marks the key's durable
// memory for the store when it changed. A key that is gone is forgotten. It touches only this
// key: its cost does not grow with the number of profiles.
func (c *Controller) commit(log logr.Logger, lk look, d Decision, res Result, now time.Time) {
	name := lk.Name
	if lk.gone {
		c.mu.Lock()
		_, had := c.keys[name]
		delete(c.keys, name)
		c.mu.Unlock()
		if had {
			c.store.forget(name)
		}
		return
	}
	c.mu.Lock()
	old := c.keys[name]
	if old != nil && unchanged(old, lk, d, res) {
		// The cheap path of every converged key's resync: a reused slot and nothing new.
		old.verified.reuses.Add(1)
		c.mu.Unlock()
		return
	}
	var state keyState
	if old != nil {
		state = *old
	}
	c.mu.Unlock()
	ks := &state
	before := state
	c.remember(ks, lk, d)
	if err := res.Errors[name]; err != nil {
		ks.addEvent(log, Event{Time: now, Type: "Warning", Reason: "Failed", Message: err.Error()})
	} else {
		for _, a := range d.Actions {
			ks.Memory = ks.Memory.applied(a)
			switch {
			case a.Kind == Create && lk.set.owner != nil:
				gid := lk.set.owner.GID
				ks.SkeletonGID = &gid
			case a.Kind == Update && a.Owner != nil:
				gid := a.Owner.GID
				ks.SkeletonGID = &gid
			}
			if (a.Kind == Start || a.Kind == Stop) && lk.Slot != nil {
				ks.ActedOn, ks.ActedAt = lk.Slot.Supervision.StatusID, now
			}
			if a.Kind == CleanStale {
				continue // the boot pass's routine unlink of stale runtime files: no event
			}
			why := cause(a, lk, d, before.pending)
			log.Info("Applied action", "action", a.String(), "reason", actionReason(a), "cause", why)
			msg := a.String()
			if why != "" {
				msg += ": " + why
			}
			ks.Events = appendEvent(ks.Events, Event{Time: now, Type: "Normal", Reason: actionReason(a), Message: msg})
		}
	}
	if d.Pending != before.pending && d.Pending != "" {
		if reason, typ, msg := pendingEvent(d); reason != "" {
			ks.addEvent(log, Event{Time: now, Type: typ, Reason: reason, Message: msg})
		}
		log.V(1).Info("Correction pending", "pending", d.Pending)
	}
	if ks.NotServed != before.NotServed {
		ks.addEvent(log, notServedEvent(lk, d.NotServed, now))
	}
	if problem := lookProblem(lk); problem != before.problem {
		ks.problem = problem
		if problem != "" {
			reason := "InvalidProfile"
			if lk.problem == nil {
				reason = "UnreadableState"
			}
			ks.Events = appendEvent(ks.Events, Event{Time: now, Type: "Warning", Reason: reason, Message: problem})
		}
	}
	for _, p := range res.Started {
		if p == name {
			ks.Memory = ks.Memory.started(now)
		}
	}
	c.mu.Lock()
	if cur := c.keys[name]; cur != nil && cur == old {
		*cur = state // in place (every reader copies it under c.mu): no new key state per look
	} else {
		c.keys[name] = new(keyState)
		*c.keys[name] = state
	}
	c.mu.Unlock()
	if old == nil || !sameDurable(&before, ks) {
		c.store.put(name, record{Memory: ks.Memory, Files: namedFiles{ks.Files}, Gen: ks.Gen, State: ks.State, Status: ks.statusMemo(),
			SkeletonGID: ks.SkeletonGID, Events: ks.Events})
	}
}

// unchanged reports whether a look leaves ks exactly as it is but for its slot's reuse count:
// the slot was reused from a watch-verified read, nothing was applied or started, and the
// memory, the pending correction, the problem and the profile read are those ks holds.
func unchanged(ks *keyState, lk look, d Decision, res Result) bool {
	return lk.reused && ks.verified != nil && len(d.Actions) == 0 && len(res.Errors) == 0 && len(res.Started) == 0 &&
		d.Memory == ks.Memory && d.Pending == ks.pending && lookProblem(lk) == ks.problem &&
		lk.Profile.Equal(ks.profile) && sameGatewayConfig(lk.gwConfig, ks.gwConfig)
}

// sameGatewayConfig reports whether a look's config.yaml read is the one ks keeps (remember
// keeps nil for the zero read).
func sameGatewayConfig(g desired.GatewayConfig, kept *desired.GatewayConfig) bool {
	if kept == nil {
		return g == desired.GatewayConfig{}
	}
	return g == *kept
}

// lookProblem is the one-line problem of a look that an event reports: the profile's problem,
// else its state-file warning ("" when none). reportLook logs the same once.
func lookProblem(lk look) string {
	if lk.problem != nil {
		return lk.problem.Err.Error()
	}
	return lk.warning
}

// addEvent records ev in the key's bounded history and logs it.
func (ks *keyState) addEvent(log logr.Logger, ev Event) {
	ks.Events = appendEvent(ks.Events, ev)
	log.Info("Event", "type", ev.Type, "reason", ev.Reason, "message", ev.Message)
}

// appendEvent appends ev and keeps the last maxEvents (a new slice: the old one may be shared).
func appendEvent(evs []Event, ev Event) []Event {
	out := make([]Event, 0, min(len(evs)+1, maxEvents))
	if len(evs) >= maxEvents {
		evs = evs[len(evs)-maxEvents+1:]
	}
	return append(append(out, evs...), ev)
}

// look reads and plans one key: the one planning path shared by the full pass, the per-key
// reconcile and status.
func (c *Controller) look(r *roots, name string, boot bool, now time.Time) (look, Decision) {
	return c.lookWith(r, c.settings(), name, boot, now)
}

// lookWith is look under the configuration generation s, which the look carries on to the
// apply and the commit: one look never mixes two generations.
func (c *Controller) lookWith(r *roots, s *settings, name string, boot bool, now time.Time) (look, Decision) {
	lk := c.peek(r, s, name, boot, now)
	return lk, PlanProfile(lk.Input, s.rules)
}

// peek is look without the planning: the snapshot with the topology applied.
func (c *Controller) peek(r *roots, s *settings, name string, boot bool, now time.Time) look {
	ks := c.state(name)
	lk := c.snapshot(r, s, name, &ks, boot, now)
	c.foldLook(r, &lk, &ks)
	return lk
}

// ReconcileKey reconciles one profile key from its full desired and observed state. It
// returns how long to wait before looking again (0: only on the next event or resync).
func (c *Controller) ReconcileKey(ctx context.Context, name string) (time.Duration, error) {
	tok := c.own.token()
	if modeOf(tok) != modeOwner {
		return 0, nil // standby, or the boot pass of a take-over runs: it looks at every key
	}
	c.loadMemory()
	now := c.opts.Now()
	log := c.keyLogs.of(name)
	r := c.sharedRoots()
	if r == nil {
		r = c.openRoots()
	}
	defer r.release()
	lk, d := c.look(r, name, false, now)
	c.reportLook(log, lk)
	var res Result
	if len(d.Actions) > 0 {
		release, ok := c.own.begin(tok)
		if !ok {
			return 0, nil // the lease was lost during the look: the plan is not ours to apply
		}
		res = lk.set.exec.Apply(ctx, d.Actions)
		release()
		c.metrics.applied(d.Actions, res)
	}
	c.commit(log, lk, d, res, now)
	return d.RequeueAfter, res.Err()
}

// reportLook logs a look's problems once each, when they appear or change, and when they clear.
func (c *Controller) reportLook(log logr.Logger, lk look) {
	var perr error
	if lk.problem != nil {
		perr = lk.problem.Err
	}
	c.report(log, lk.Name, "profile", perr)
	c.report(log, lk.Name, "slot", lk.Foreign)
	var slotErr error
	if lk.Slot != nil {
		slotErr = lk.Slot.Err
	}
	c.report(log, lk.Name, "slot state", slotErr)
	var warn error
	if lk.warning != "" {
		warn = errors.New(lk.warning)
	}
	c.reportWarning(log, lk.Name, warn)
	c.reportConfigWarning(log, lk)
	var held error
	if lk.HoldUnregister != "" {
		held = errors.New(lk.HoldUnregister)
	}
	if msg, _, changed := c.noteReported(reportKey{"held", lk.Name}, held); changed && msg != "" {
		log.Info("Unregister held", "reason", msg)
	}
}

// report logs a per-key problem once, when it appears or changes, and its clearing.
func (c *Controller) report(log logr.Logger, name, what string, err error) {
	if msg, prev, changed := c.noteReported(reportKey{what, name}, err); changed {
		if msg != "" {
			log.Error(err, "Skipped "+what)
		} else {
			log.Info("Problem cleared", "was", prev)
		}
	}
}

// reportWarning logs a state-file warning (the profile is still served) once when it appears
// or changes, and once when it clears.
func (c *Controller) reportWarning(log logr.Logger, name string, err error) {
	if msg, prev, changed := c.noteReported(reportKey{"warning", name}, err); changed {
		if msg != "" {
			log.Info("State file warning", "warning", msg)
		} else {
			log.Info("State file warning cleared", "was", prev)
		}
	}
}

// reportKey names one kind of problem (what: "profile", "slot", "slot state", "warning",
// "held") of one key; a struct, so that no string is built per look.
type reportKey struct{ what, name string }

// noteReported records err as key's current problem and says whether that changed.
func (c *Controller) noteReported(key reportKey, err error) (msg, prev string, changed bool) {
	if err != nil {
		msg = err.Error()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	prev = c.reported[key]
	if msg == "" {
		delete(c.reported, key)
	} else {
		c.reported[key] = msg
	}
	return msg, prev, msg != prev
}
