package reconciler

import (
	"bytes"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// Rules are the timing rules the planner applies at runtime.
type Rules struct {
	// SettlePeriod is how long an external change of s6 state is left alone before it is corrected.
	SettlePeriod time.Duration
	// MinUptime: a controller start that goes down sooner counts as a crash.
	MinUptime time.Duration
	// UnregisterTimeout is how long the gateway of a deleted profile may take to go down after
	// s6-svc -d before it is killed (s6-svc -k); the slot is removed once it is down.
	UnregisterTimeout time.Duration
}

// staleStatusWait bounds how long a status file that predates the controller's own start or stop
// is waited out (the supervisor normally applies the command within milliseconds);
// staleStatusPoll is how soon to look again meanwhile (the supervise watch usually comes first).
const (
	staleStatusWait = 2 * time.Second
	staleStatusPoll = 50 * time.Millisecond
)

// stuckAfter is how long a supervisor may hold a slot's lock without writing its status before
// the slot is re-created.
const stuckAfter = 5 * time.Second

// killGrace is how long after s6-svc -k a slot whose gateway still looks up is removed anyway.
const killGrace = 5 * time.Second

// terminatePoll bounds the wait before another look at a terminating slot (the supervise
// watch usually brings the look sooner).
const terminatePoll = time.Second

// Input is everything the planner needs to decide about one profile key: the per-profile
// snapshot. The full pass and the per-key reconcile build it the same way (Controller.snapshot).
type Input struct {
	// Name is the profile key.
	Name string
	// Boot selects the boot column of the intent table: no settle window, no backoff.
	Boot bool
	// Now is the planning time.
	Now time.Time
	// Profile is the valid profile, or nil when there is none under that name.
	Profile *desired.Profile
	// Files are the rendered slot files of Profile. They may be nil when the slot exists and
	// every managed file is in Slot.Same (already known to match): nothing is then compared.
	Files []s6.File
	// Keep forbids unregistering: the profile's entry exists, or the profiles root was not listed.
	Keep bool
	// Problem is why an entry under the profile's name exists but cannot be served (invalid
	// name, symlink, unreadable, render failure): reported by the caller; the key is left alone.
	Problem error
	// Staging is true when the key's staging dir ".gateway-<name>.tmp" is left over.
	Staging bool
	// Foreign is set when the scandir entry under the slot's name is not a real directory:
	// reported, and never touched.
	Foreign error
	// Slot is the observed slot, or nil.
	Slot *observed.Slot
	// Memory is what the controller remembers about the profile.
	Memory Memory
	// HoldUnregister, when set, says why no slot may be unregistered now (see volumeGuard);
	// HoldFor is how long at least.
	HoldUnregister string
	HoldFor        time.Duration
	// Skeleton, when set, is the gateway user whose supervise skeleton an existing slot is not
	// known to have (gatewayUser newly set or changed): the slot's update gives it one.
	Skeleton *s6.Owner
	// ContainerBoot is when this container booted (zero: unknown). A boot pass does not stop a
	// gateway that is up and wanted up since then when only the boot column says down (its own
	// "starting", no or an unusable state file): it was started in this container, by an earlier
	// boot pass that did not finish or by s6. An explicit stop (runtime column down) still stops it.
	ContainerBoot time.Time
	// Fold is the topology's part (topology.go); zero under PerProfile.
	Fold
}

// Decision is the planner's answer for one profile.
type Decision struct {
	Actions []Action
	// Memory is the updated memory (before applying the actions).
	Memory Memory
	// RequeueAfter, when positive, asks for another look after this long (a settle window or
	// a crash-loop backoff is pending).
	RequeueAfter time.Duration
	// Pending describes a correction that waits, for status and plan ("" when none).
	Pending string
	// KeptUp is set on a boot pass that left a gateway started in this container running
	// although the boot column says down (see Input.ContainerBoot).
	KeptUp bool
	// Intent is the intent the slot was planned for (the topology applied; see foldProfile).
	Intent desired.Intent
	// NotServed: a folded profile whose intent is Up is not listed by the root gateway that has
	// been up for the settle period.
	NotServed bool
}

// slotUnwanted reports whether the key's slot is to be taken down: there is a slot, no valid profile,
// no entry that keeps it (an invalid or unreadable one, an unlisted profiles/), and it is not
// the root's.
func (in Input) slotUnwanted() bool {
	return in.Profile == nil && in.Slot != nil && !in.Keep && in.Problem == nil && in.Name != desired.DefaultProfile
}

// PlanProfile decides the actions for one profile key. It is pure: no I/O, no clock reads.
// The topology is applied first (foldProfile): the slot is planned for the effective intent.
func PlanProfile(in Input, r Rules) Decision {
	in, notServed, recheck := foldProfile(in, r)
	d := planSlot(in, r)
	d.NotServed, d.Memory.NotServed = notServed, notServed
	if recheck > 0 && (d.RequeueAfter <= 0 || recheck < d.RequeueAfter) {
		d.RequeueAfter = recheck
	}
	if in.Profile != nil {
		d.Intent = in.Profile.IntentAt(in.Boot)
	}
	return d
}

// planSlot plans one key's slot for the intent of in.Profile.
func planSlot(in Input, r Rules) Decision {
	var d Decision
	d.Memory = in.Memory
	p, slot := in.Profile, in.Slot
	if in.Staging {
		d.Actions = append(d.Actions, Action{Kind: CleanStaging, Profile: in.Name, Slot: s6.StagingName(desired.SlotPrefix + in.Name)})
	}
	if in.Foreign != nil {
		d.Pending = "Blocked: " + in.Foreign.Error()
		return d
	}
	if p == nil {
		if in.slotUnwanted() {
			planUnregister(&d, in, r)
		}
		return d
	}
	d.Memory.TerminatingSince, d.Memory.Killed, d.Memory.TermSent = time.Time{}, false, false
	intent := p.IntentAt(in.Boot)
	if slot == nil {
		d.Actions = append(d.Actions, Action{Kind: Create, Profile: p.Name, Slot: p.Slot(), Down: intent != desired.Up, Files: in.Files})
		return d
	}
	if slot.Err != nil {
		// The slot could not be read cleanly (a symlinked or corrupt supervise/status, EACCES):
		// acting on a guess could restart or stop the wrong thing. Report and look again later.
		d.RequeueAfter = 10 * time.Second
		d.Pending = "Blocked: " + slot.Err.Error()
		return d
	}
	if drifted := driftedFiles(in.Files, slot); len(drifted) > 0 || in.Skeleton != nil {
		d.Actions = append(d.Actions, Action{Kind: Update, Profile: p.Name, Slot: slot.Name, Files: drifted, Owner: in.Skeleton})
	}
	sup := slot.Supervision
	if !in.Boot {
		d.Memory = d.Memory.observe(*p, sup, in.Now, r.MinUptime)
	}
	mark := func(down bool) {
		if slot.Down != down {
			d.Actions = append(d.Actions, Action{Kind: Mark, Profile: p.Name, Slot: slot.Name, Down: down})
		}
	}
	if !sup.Supervised {
		// Published but not picked up (s6-svscan not told, or not running): s6-supervise reads
		// ./down once at its start, so set the marker first, then ask for a scan.
		switch intent {
		case desired.Up:
			mark(false)
		case desired.Down:
			mark(true)
		}
		d.Actions = append(d.Actions, Action{Kind: Rescan, Profile: p.Name, Slot: slot.Name})
		return d
	}
	if !sup.HasStatus {
		// A supervisor normally writes supervise/status within milliseconds of starting. One
		// that holds the lock and has written none for stuckAfter could not (a full tmpfs
		// scandir): it never will, and nothing can be read or driven through it. Re-create
		// the slot: removed now (its supervisor pruned), created afresh on the next look.
		m := &d.Memory
		if !in.Boot {
			if m.NoStatusSince.IsZero() {
				m.NoStatusSince = in.Now
			}
			if stuck := in.Now.Sub(m.NoStatusSince); stuck >= stuckAfter {
				m.NoStatusSince = time.Time{}
				d.Pending = "Stuck: supervised for " + stuck.Round(time.Second).String() +
					" without a supervise/status (was the scandir full?); re-creating the slot"
				d.Actions = append(d.Actions, Action{Kind: Unregister, Profile: p.Name, Slot: slot.Name})
				return d
			}
		}
		d.RequeueAfter = time.Second
		return d
	}
	d.Memory.NoStatusSince = time.Time{}
	if m := &d.Memory; m.ActedOn != (safefs.FileID{}) {
		// s6-svc only writes the command to the supervisor, which applies it a moment later:
		// until the status file changes, it predates the controller's own start or stop, and
		// acting on it (a "drift" in the other direction) would undo that command.
		if sup.StatusID == m.ActedOn && in.Now.Sub(m.ActedAt) < staleStatusWait {
			d.RequeueAfter = staleStatusPoll
			return d
		}
		m.ActedOn, m.ActedAt = safefs.FileID{}, time.Time{}
	}
	wantUp := sup.Status.WantUp
	if in.Boot && intent == desired.Down && p.Intent != desired.Down && wantUp && sup.Status.Up() &&
		(in.ContainerBoot.IsZero() || !sup.Status.Stamp.Before(in.ContainerBoot)) {
		d.KeptUp = true
		return d
	}
	if !in.Boot && (intent == desired.Hold || (intent == desired.Up) == wantUp) {
		d.Memory = d.Memory.agree(wantUp)
	}
	// A supervisor that left the accepted state was moved by someone else (or by the gateway's
	// own exit): that change settles, or backs off after a crash. Otherwise the intent moved.
	moved := !in.Boot && d.Memory.moved(wantUp)
	var act Action
	switch {
	case intent == desired.Up && wantUp:
		mark(false)
		return d
	case intent == desired.Down && !wantUp:
		mark(true)
		return d
	case intent == desired.Up:
		act = Action{Kind: Start, Profile: p.Name, Slot: slot.Name}
	case intent == desired.Down:
		act = Action{Kind: Stop, Profile: p.Name, Slot: slot.Name}
	default:
		return d // Hold: keep whatever the gateway is doing
	}
	if moved {
		var wait time.Duration
		var why string
		if act.Kind == Start && d.Memory.Crashed {
			// Bounded by the backoff delay itself, whatever the wall clock did since.
			wait, why = min(d.Memory.NextStart.Sub(in.Now), backoffDelay(d.Memory.Failures)), "CrashLoopBackOff"
		} else {
			wait, act.Drift, why = settle(d.Memory.IntentSince, sup.Changed, in.Now, r.SettlePeriod)
		}
		if wait > 0 {
			d.RequeueAfter = wait
			d.Pending = why + ": " + string(act.Kind) + " at " + in.Now.Add(wait).UTC().Format(time.RFC3339)
			return d
		}
	}
	d.Actions = append(d.Actions, act)
	return d
}

// planUnregister takes down and removes the slot of a profile that is gone, without waiting:
// s6-svc -d first, then, once the gateway is down, the slot is removed; a gateway still up
// UnregisterTimeout after the first look is killed (s6-svc -k), and its slot removed at the
// latest killGrace later. Meanwhile the profile is Terminating.
func planUnregister(d *Decision, in Input, r Rules) {
	slot, m := in.Slot, &d.Memory
	if in.HoldUnregister != "" {
		m.TerminatingSince, m.Killed, m.TermSent = time.Time{}, false, false
		d.Pending = "Held: " + in.HoldUnregister
		d.RequeueAfter = max(in.HoldFor, time.Second)
		return
	}
	if m.TerminatingSince.IsZero() {
		m.TerminatingSince = in.Now
	}
	sup := slot.Supervision
	waited := in.Now.Sub(m.TerminatingSince)
	remove := Action{Kind: Unregister, Profile: in.Name, Slot: slot.Name}
	switch {
	case slot.Err == nil && (!sup.Supervised || !sup.HasStatus || (!sup.Status.Up() && !sup.Status.WantUp)):
		d.Actions = append(d.Actions, remove)
		return
	case slot.Err == nil && sup.Status.WantUp && (!m.TermSent || sup.Changed.After(m.TerminatingSince)):
		// Not asked yet, or asked up again by someone since: s6-svc -d (s6 applies it
		// asynchronously, so a look right after the first one may still see it wanted up).
		d.Actions = append(d.Actions, Action{Kind: Terminate, Profile: in.Name, Slot: slot.Name})
	case m.Killed && waited >= r.UnregisterTimeout+killGrace:
		d.Actions = append(d.Actions, remove)
		return
	case !m.Killed && waited >= r.UnregisterTimeout:
		if slot.Err != nil {
			// The supervisor cannot be read: say down once more, then kill.
			d.Actions = append(d.Actions, Action{Kind: Terminate, Profile: in.Name, Slot: slot.Name})
		}
		d.Actions = append(d.Actions, Action{Kind: Kill, Profile: in.Name, Slot: slot.Name})
		m.Killed = true
	case waited == 0 && slot.Err != nil:
		d.Actions = append(d.Actions, Action{Kind: Terminate, Profile: in.Name, Slot: slot.Name})
	}
	deadline := m.TerminatingSince.Add(r.UnregisterTimeout)
	if m.Killed {
		deadline = deadline.Add(killGrace)
	}
	d.RequeueAfter = min(max(deadline.Sub(in.Now), time.Millisecond), terminatePoll)
	d.Pending = "Terminating: gateway going down since " + m.TerminatingSince.UTC().Format(time.RFC3339)
	if m.Killed {
		d.Pending = "Terminating: gateway killed, slot removed by " + deadline.UTC().Format(time.RFC3339)
	}
}

// settle applies the settle window: an intent written after the supervisor's last change is
// acted on now; a supervisor change newer than the intent (someone drove s6 directly) is left
// alone until it is SettlePeriod old, and then corrected as drift.
//
// The supervisor's change is not trusted past now (intentSince is clamped when it is observed,
// see Memory.observe), and the wait is never longer than period (a backward step of the wall
// clock must not stretch it).
func settle(intentSince, changed, now time.Time, period time.Duration) (wait time.Duration, drift bool, why string) {
	changed = notAfter(changed, now)
	if intentSince.After(changed) {
		return 0, false, ""
	}
	if w := min(changed.Add(period).Sub(now), period); w > 0 {
		return w, true, "Settling"
	}
	return 0, true, ""
}

// notAfter clamps a timestamp read from a file to now.
func notAfter(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

// driftedFiles returns the rendered files whose bytes or mode differ from the slot's. Files the
// slot read found Same are known to match and are not compared.
func driftedFiles(want []s6.File, slot *observed.Slot) []s6.File {
	var out []s6.File
	for _, f := range want {
		have := slot.File(f.Name)
		if have != nil && have.Same {
			continue
		}
		if have == nil || !have.Present() || !bytes.Equal(have.Data, f.Data) || have.Perm() != uint32(f.Mode.Perm()) {
			out = append(out, f)
		}
	}
	return out
}
