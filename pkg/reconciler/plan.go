package reconciler

import (
	"bytes"
	"sort"
	"time"

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
}

// Input is everything the planner needs to decide about one profile key.
type Input struct {
	// Name is the profile key.
	Name string
	// Boot selects the boot column of the intent table: no settle window, no backoff.
	Boot bool
	// Now is the planning time.
	Now time.Time
	// Profile is the valid profile, or nil when there is none under that name.
	Profile *desired.Profile
	// Files are the rendered slot files of Profile.
	Files []s6.File
	// Keep forbids unregistering: the profile's entry exists, or the profiles root was not listed.
	Keep bool
	// Slot is the observed slot, or nil.
	Slot *observed.Slot
	// Memory is what the controller remembers about the profile.
	Memory Memory
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
}

// PlanProfile decides the actions for one profile key. It is pure: no I/O, no clock reads.
func PlanProfile(in Input, r Rules) Decision {
	var d Decision
	d.Memory = in.Memory
	p, slot := in.Profile, in.Slot
	if p == nil {
		if slot != nil && !in.Keep && in.Name != desired.DefaultProfile {
			d.Actions = append(d.Actions, Action{Kind: Unregister, Profile: in.Name, Slot: slot.Name})
		}
		return d
	}
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
	if drifted := driftedFiles(in.Files, slot); len(drifted) > 0 {
		d.Actions = append(d.Actions, Action{Kind: Update, Profile: p.Name, Slot: slot.Name, Files: drifted})
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
		d.RequeueAfter = time.Second
		return d
	}
	wantUp := sup.Status.WantUp
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
			wait, why = d.Memory.NextStart.Sub(in.Now), "CrashLoopBackOff"
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

// settle applies the settle window: an intent written after the supervisor's last change is
// acted on now; a supervisor change newer than the intent (someone drove s6 directly) is left
// alone until it is SettlePeriod old, and then corrected as drift.
func settle(intentSince, changed, now time.Time, period time.Duration) (wait time.Duration, drift bool, why string) {
	if intentSince.After(changed) {
		return 0, false, ""
	}
	if w := changed.Add(period).Sub(now); w > 0 {
		return w, true, "Settling"
	}
	return 0, true, ""
}

// driftedFiles returns the rendered files whose bytes or mode differ from the slot's.
func driftedFiles(want []s6.File, slot *observed.Slot) []s6.File {
	var out []s6.File
	for _, f := range want {
		have, ok := slot.Files[f.Name]
		if !ok || !bytes.Equal(have, f.Data) || slot.Modes[f.Name] != uint32(f.Mode.Perm()) {
			out = append(out, f)
		}
	}
	return out
}

// FullInput is the snapshot for a full pass over every profile.
type FullInput struct {
	Boot     bool
	Now      time.Time
	Desired  desired.State
	Observed observed.State
	// Files maps a profile name to its rendered files (profiles whose render failed are absent
	// and skipped).
	Files map[string][]s6.File
	// Memory maps a profile name to the controller's memory of it.
	Memory map[string]Memory
}

// Plan decides the actions of a full pass: per-profile decisions in name order ("default"
// first), preceded by staging cleanup and, on a boot pass, stale-file cleanup. It is pure.
func Plan(in FullInput, r Rules) (actions []Action, decisions map[string]Decision) {
	for _, name := range in.Observed.Staging {
		actions = append(actions, Action{Kind: CleanStaging, Slot: name})
	}
	profiles := map[string]*desired.Profile{}
	for i := range in.Desired.Profiles {
		p := &in.Desired.Profiles[i]
		profiles[p.Name] = p
		if in.Boot {
			actions = append(actions, Action{Kind: CleanStale, Profile: p.Name})
		}
	}
	names := keys(profiles, in.Observed.Slots)
	decisions = make(map[string]Decision, len(names))
	for _, name := range names {
		p := profiles[name]
		if p != nil {
			if _, ok := in.Files[name]; !ok {
				continue // render failed: reported by the caller, left as it is
			}
		}
		d := PlanProfile(Input{
			Name: name, Boot: in.Boot, Now: in.Now, Profile: p, Files: in.Files[name],
			Keep:   !in.Desired.Listed || in.Desired.Present[name],
			Slot:   in.Observed.Slots[name],
			Memory: in.Memory[name],
		}, r)
		decisions[name] = d
		actions = append(actions, d.Actions...)
	}
	return actions, decisions
}

// keys returns the union of profile and slot names, "default" first, then sorted.
func keys(profiles map[string]*desired.Profile, slots map[string]*observed.Slot) []string {
	set := map[string]bool{}
	for n := range profiles {
		set[n] = true
	}
	for n := range slots {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == desired.DefaultProfile) != (out[j] == desired.DefaultProfile) {
			return out[i] == desired.DefaultProfile
		}
		return out[i] < out[j]
	})
	return out
}
