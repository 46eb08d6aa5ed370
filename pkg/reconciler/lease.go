package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/volume"
)

// Ownership of a shared volume (docs/behaviour.md, "One owner per volume"): only the holder of
// the volume lease creates, starts, stops or removes slots. Every apply is gated by the
// ownership token taken before its look, so a lease lost in the middle of a look or a pass
// never lets the stale plan act; the lease itself is checked once per resync, never per key.

// Role names what a controller is for the volume.
const (
	RoleOwner   = "owner"
	RoleStandby = "standby"
)

// LeaseFileName is the runtime dir's record of the controller's role, for status and describe
// from another process.
const LeaseFileName = "lease.json"

// ErrStandby is returned by Pass when the controller does not hold the volume lease.
var ErrStandby = errors.New("standby: this controller does not hold the HERMES_HOME lease")

type mode uint64

const (
	modeStandby mode = iota
	modeBooting      // owner, running the boot pass: only the pass acts, the workers wait
	modeOwner
)

// ownership is whether the controller may act. state packs an epoch (bumped by every change)
// with the mode, so an apply checks in one atomic load that nothing changed since its look.
type ownership struct {
	mu     sync.RWMutex // read-held across every apply; write-held to change the mode
	state  atomic.Uint64
	status atomic.Pointer[LeaseStatus] // what status, /readyz and the metric say

	// Touched by Run's goroutine (or the one-shot command) only:
	lease      *volume.Lease  // the held lease (nil: none)
	seenHeld   volume.FileKey // the lease file last seen held by another controller
	seenPeriod time.Duration  // how often its holder said it checks the lease (0: unknown)
	waitUntil  time.Time      // set while a taken lease waits out a replaced file's previous owner
}

func (o *ownership) token() uint64 { return o.state.Load() }

func modeOf(tok uint64) mode { return mode(tok & 3) }

// set changes the mode, after every apply in flight has finished.
func (o *ownership) set(m mode) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.state.Store((o.state.Load()>>2+1)<<2 | uint64(m))
}

// begin admits an apply planned under tok: only when the mode has not changed since (and is not
// standby). release must be called when the apply is done.
func (o *ownership) begin(tok uint64) (release func(), ok bool) {
	o.mu.RLock()
	if o.state.Load() != tok || modeOf(tok) == modeStandby {
		o.mu.RUnlock()
		return nil, false
	}
	return o.mu.RUnlock, true
}

// LeaseStatus is the controller's role for the volume, as status, describe and /readyz show it.
type LeaseStatus struct {
	// Role is owner or standby.
	Role string `json:"role"`
	// Owner is the lease holder as its file names it ("host gw-a pid 12"; "" when unknown), and
	// Since when it took the lease (RFC 3339).
	Owner string `json:"owner,omitempty"`
	Since string `json:"since,omitempty"`
	// Reason says why a standby stands by when no other holder is the cause (role standby, a
	// lease file that is refused).
	Reason string `json:"reason,omitempty"`
	// PID is the controller that wrote this record.
	PID int `json:"pid"`
}

// Message is the one-line role of a standby, e.g. "standby: owned by host gw-a pid 12 since
// 2026-12-02T00:00:00Z" ("" for an owner).
func (s LeaseStatus) Message() string {
	switch {
	case s.Role != RoleStandby:
		return ""
	case s.Owner != "":
		return "standby: owned by " + s.Owner + " since " + s.Since
	}
	return "standby: " + s.Reason
}

func (c *Controller) initOwnership() {
	switch {
	case c.opts.Standby:
		c.own.state.Store(uint64(modeStandby))
		c.own.status.Store(&LeaseStatus{Role: RoleStandby, Reason: "role standby (configured): never acts", PID: os.Getpid()})
	case c.opts.Lease:
		c.own.state.Store(uint64(modeStandby))
		c.own.status.Store(&LeaseStatus{Role: RoleStandby, Reason: "lease not taken yet", PID: os.Getpid()})
	default:
		c.own.state.Store(uint64(modeOwner))
		c.own.status.Store(&LeaseStatus{Role: RoleOwner, PID: os.Getpid()})
	}
}

// Role is the controller's current role for the volume (lease off: always owner).
func (c *Controller) Role() LeaseStatus { return *c.own.status.Load() }

// Standby returns the one-line reason the controller does not act, or "" when it may act.
func (c *Controller) Standby() string { return c.Role().Message() }

// TakeLease tries to take the volume lease (Options.Lease), once, without blocking: on success
// the controller is the owner until ReleaseLease. Without Options.Lease it is always the owner;
// with Options.Standby never. It returns the role. The error is set only when the lease file
// itself is refused or unusable (not when another controller holds it): one line naming the file.
func (c *Controller) TakeLease() (LeaseStatus, error) {
	return c.takeLease(true)
}

// TakeLeaseQuietly is TakeLease without writing the lease file yet: the controller's identity
// goes into it only before its first action (announceLease), so that a one-shot pass with
// nothing to do writes nothing on the volume. Until then other controllers see the previous
// holder's identity.
func (c *Controller) TakeLeaseQuietly() (LeaseStatus, error) {
	return c.takeLease(false)
}

func (c *Controller) takeLease(announce bool) (LeaseStatus, error) {
	if c.opts.Standby || !c.opts.Lease {
		return c.Role(), nil
	}
	if c.own.lease != nil {
		return c.Role(), nil
	}
	err := c.acquire(announce)
	if err == nil {
		c.own.set(modeOwner)
	}
	if errors.Is(err, volume.ErrLeaseHeld) {
		err = nil
	}
	return c.Role(), err
}

// acquire takes the lease and records the role it leaves the controller in (the mode is the
// caller's to change).
func (c *Controller) acquire(announce bool) error {
	host, _ := os.Hostname()
	take := volume.LockLease
	if announce {
		take = volume.AcquireLease
	}
	l, err := take(c.opts.HermesHome, volume.Holder{Host: host, PID: os.Getpid(),
		Since: c.opts.Now().UTC().Truncate(time.Second), CheckEvery: c.settings().resyncPeriod.String()})
	var held *volume.LeaseHeldError
	switch {
	case err == nil:
		c.own.lease = l
		h := l.Holder()
		c.own.status.Store(&LeaseStatus{Role: RoleOwner, Owner: h.String(), Since: h.SinceText(), PID: os.Getpid()})
	case errors.As(err, &held):
		c.own.seenHeld, c.own.seenPeriod = held.ID, held.Holder.Period()
		c.own.status.Store(&LeaseStatus{Role: RoleStandby, Owner: held.Holder.String(), Since: held.Holder.SinceText(), PID: os.Getpid()})
	default:
		c.own.status.Store(&LeaseStatus{Role: RoleStandby, Reason: err.Error(), PID: os.Getpid()})
	}
	return err
}

// announceLease writes the controller's identity into a lease taken quietly, before it acts;
// a failure is a warning (the lock, not the text, is what excludes other controllers).
func (c *Controller) announceLease() error {
	if l := c.own.lease; l != nil {
		return l.Announce()
	}
	return nil
}

// ReleaseLease drops the volume lease, if held. The controller is then standby.
func (c *Controller) ReleaseLease() {
	if c.own.lease == nil {
		return
	}
	c.own.set(modeStandby)
	c.own.lease.Release()
	c.own.lease, c.own.waitUntil = nil, time.Time{}
}

// checkLease is the once-per-resync look at the lease (Run's goroutine): an owner re-validates
// it (the locked descriptor's inode is still the path's) and, when the file was replaced, takes
// the new one or steps down; a standby tries to take it, and takes over with a boot pass.
//
// A standby that takes a lease file other than the one it last saw held (the file was replaced
// while its owner lived) holds it for the old owner's check period (from its lease file; this
// controller's resync period when unknown) plus a second before it acts: the old owner, which
// still holds the replaced file, notices at its own next check that it lost the lease and steps
// down, so two sets of gateways do not run side by side.
func (c *Controller) checkLease(ctx context.Context) {
	if c.opts.Standby || !c.opts.Lease {
		return
	}
	log := c.opts.Log
	l := c.own.lease
	switch {
	case l != nil && c.own.waitUntil.IsZero():
		verr := l.Validate()
		if verr == nil {
			return
		}
		l.Release()
		c.own.lease = nil
		if err := c.acquire(true); err == nil {
			log.Info("Lease re-taken", "reason", verr.Error(), "lease", c.own.lease.Path())
			c.publishRole()
			return
		}
		log.Info("Lease lost, stepping down", "reason", verr.Error(), "standby", c.Standby())
		c.stepDown(ctx)
		return
	case l != nil: // taken, waiting out a replaced file's previous owner
		if err := l.Validate(); err != nil {
			l.Release()
			c.own.lease, c.own.waitUntil = nil, time.Time{}
			log.Info("Lease lost while waiting to take over", "reason", err.Error())
			return
		}
		if c.opts.Now().Before(c.own.waitUntil) {
			return
		}
		c.own.waitUntil = time.Time{}
		h := l.Holder()
		c.own.status.Store(&LeaseStatus{Role: RoleOwner, Owner: h.String(), Since: h.SinceText(), PID: os.Getpid()})
	default:
		before := c.Role()
		if err := c.acquire(true); err != nil {
			if now := c.Role(); now != before {
				log.Info("Standby", "standby", now.Message())
				c.publishRole()
			}
			return
		}
		if seen := c.own.seenHeld; seen != (volume.FileKey{}) && seen != c.own.lease.ID() {
			wait := c.own.seenPeriod
			if wait <= 0 {
				wait = c.settings().resyncPeriod
			}
			c.own.waitUntil = c.opts.Now().Add(wait + time.Second)
			msg := "lease taken on a replaced file; acting from " + c.own.waitUntil.UTC().Format(time.RFC3339) +
				", once the previous owner has stepped down"
			c.own.status.Store(&LeaseStatus{Role: RoleStandby, Reason: msg, PID: os.Getpid()})
			log.Info("Lease taken on a replaced file, waiting one resync before acting", "until", c.own.waitUntil)
			c.publishRole()
			return
		}
	}
	c.own.seenHeld = volume.FileKey{}
	log.Info("Lease taken, taking over with a boot pass", "lease", c.own.lease.Path())
	c.own.set(modeBooting)
	c.publishRole()
	c.bootPass(ctx)
	if ctx.Err() == nil {
		c.own.set(modeOwner)
	}
}

// start is Run's start: it takes the lease (when configured) and then runs the boot pass when
// it is pending, or stands by. It returns false when ctx ended during the boot pass.
func (c *Controller) start(ctx context.Context) bool {
	if !c.opts.Lease && !c.opts.Standby {
		// lease: off now: a record of an earlier configuration must not tell status otherwise.
		_ = os.Remove(filepath.Join(c.opts.RuntimeDir, LeaseFileName))
	}
	if _, err := c.TakeLease(); err != nil {
		c.opts.Log.Error(err, "Volume lease refused, standing by")
	}
	if modeOf(c.own.token()) == modeStandby {
		c.enterStandby(ctx)
		return true
	}
	if c.opts.Lease {
		c.opts.Log.Info("Lease taken", "lease", c.own.lease.Path())
	}
	c.publishRole()
	if c.BootPending() {
		c.bootPass(ctx)
		return ctx.Err() == nil
	}
	c.prime()
	return true
}

// publishRole writes the role into the runtime dir (temp file and rename, only when it changed),
// for status and describe from another process.
func (c *Controller) publishRole() {
	if !c.opts.Lease && !c.opts.Standby {
		return
	}
	data, err := json.Marshal(c.Role())
	if err != nil {
		return
	}
	data = append(data, '\n')
	path := filepath.Join(c.opts.RuntimeDir, LeaseFileName)
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err == nil {
		err = os.Rename(tmp, path)
		if err != nil {
			c.opts.Log.Error(err, "Could not record the role in the runtime dir")
		}
	}
}

// readRole reads the role a running controller recorded in the runtime dir (nil: none, or its
// controller is no longer running).
func (c *Controller) readRole() *LeaseStatus {
	data, err := os.ReadFile(filepath.Join(c.opts.RuntimeDir, LeaseFileName))
	if err != nil || len(data) > 8<<10 {
		return nil
	}
	var s LeaseStatus
	if json.Unmarshal(data, &s) != nil || s.PID <= 0 {
		return nil
	}
	if err := unix.Kill(s.PID, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return nil
	}
	return &s
}

// bootPass runs the boot pass of Run and logs its lines.
func (c *Controller) bootPass(ctx context.Context) {
	log := c.opts.Log
	rep := c.Pass(ctx, true, false)
	for _, l := range rep.Lines {
		log.Info("Boot pass", "profile", l.Profile, "priorState", l.PriorState, "action", l.Action)
	}
	if rep.Err != nil {
		log.Error(rep.Err, "Boot pass had errors")
	}
}

// roleGauges are profile_controller_role{role="owner"|"standby"}: 1 for the role the controller
// has now, 0 for the other (lease off: always owner). Across the containers sharing a volume,
// sum(profile_controller_role{role="owner"}) is 1.
func (c *Controller) roleGauges() []prometheus.Collector {
	var out []prometheus.Collector
	for _, role := range []string{RoleOwner, RoleStandby} {
		out = append(out, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "profile_controller_role",
			Help:        "The controller's role for the volume: 1 for the role it has (owner holds the HERMES_HOME lease, standby acts on nothing).",
			ConstLabels: prometheus.Labels{"role": role},
		}, func() float64 {
			if c.Role().Role == role {
				return 1
			}
			return 0
		}))
	}
	return out
}
