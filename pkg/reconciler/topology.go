package reconciler

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/hermes/profile-controller/pkg/desired"
)

// Topology says which gateway serves which profile.
type Topology string

const (
	// PerProfile (the default) means every profile's slot follows its own intent.
	PerProfile Topology = "perProfile"
	// Multiplex means the root gateway (gateway-default) serves every folded profile; a named
	// profile is folded unless its config.yaml says gateway: {standalone: true}.
	Multiplex Topology = "multiplex"
)

// Fallback is what the controller does for a folded profile the root gateway does not serve.
type Fallback string

const (
	// FallbackNone (the default) only reports NotServed.
	FallbackNone Fallback = "none"
	// FallbackOwnSlot starts the profile's own slot while it is NotServed.
	FallbackOwnSlot Fallback = "ownSlot"
)

// Fold is the topology part of a key's Input. Under PerProfile it is the zero value.
type Fold struct {
	// Folded is set for a named profile the root gateway serves (multiplex, not standalone):
	// its own slot is kept down, unless it is NotServed and Fallback is set.
	Folded bool
	// Standalone is set for a named profile that keeps its own gateway under multiplex.
	Standalone bool
	// Folds, for the root under multiplex, sums up the folded profiles' intents (nil otherwise).
	Folds *FoldSummary
	// RootUpSince is when the root's gateway came up (zero: it is not up); Served reports
	// that the root's served_profiles lists this profile. Both matter to a folded profile only.
	RootUpSince time.Time
	Served      bool
	// Fallback: a NotServed profile gets its own slot started (multiplex.fallback: ownSlot).
	Fallback bool
}

// FoldSummary is what the root's effective intent needs from the folded profiles.
type FoldSummary struct {
	// Up, NotDown and BootUp count the folded profiles whose runtime intent is Up, whose
	// runtime intent is not Down, and whose boot intent is Up.
	Up, NotDown, BootUp int
	// Since is the state-file mtime of the latest change of a folded profile's intent.
	Since time.Time
	// UpEnded is when the last folded profile whose intent was Up stopped being so, as the
	// controller saw it (zero while one is Up, and before any was).
	UpEnded time.Time
}

// foldGrace is how long the root is kept as it is once no folded profile wants it any more
// (its own intent being Down) before it is stopped: each profile's intent is counted when that
// profile is looked at, so a profile set to running right after another was set to stopped may
// not be counted yet, and the root must not go down and up again in between.
const foldGrace = time.Second

// same reports whether two summaries give the root the same effective intent and timing.
func (s FoldSummary) same(o FoldSummary) bool {
	return (s.Up > 0) == (o.Up > 0) && (s.NotDown > 0) == (o.NotDown > 0) && (s.BootUp > 0) == (o.BootUp > 0)
}

// rootIntent combines the root's own intent with the folded ones: Up when its own or any folded
// intent is Up; Down only when its own and every folded intent are Down; otherwise Hold.
func rootIntent(own desired.Intent, up, notDown int) desired.Intent {
	switch {
	case own == desired.Up || up > 0:
		return desired.Up
	case own == desired.Down && notDown == 0:
		return desired.Down
	}
	return desired.Hold
}

// foldProfile applies the topology to a key's input: the root's intents become the effective
// ones, a folded profile's become Down (unless it falls back to its own slot). It reports
// whether the profile is NotServed, and when to look again for that to be decided. Pure.
func foldProfile(in Input, r Rules) (out Input, notServed bool, recheck time.Duration) {
	p := in.Profile
	if p == nil || (in.Folds == nil && !in.Folded) {
		return in, false, 0 // perProfile, or a standalone profile: nothing to apply (and no copy)
	}
	q := *p
	switch {
	case in.Folds != nil:
		s := in.Folds
		q.Intent = rootIntent(p.Intent, s.Up, s.NotDown)
		q.BootIntent = desired.Down
		if p.BootIntent == desired.Up || s.BootUp > 0 {
			q.BootIntent = desired.Up
		}
		if s.Since.After(q.StateModTime) && q.Intent != p.Intent {
			q.StateModTime = s.Since // the intent came from a folded profile, written then
		}
		if !in.Boot && q.Intent == desired.Down && !s.UpEnded.IsZero() {
			if wait := s.UpEnded.Add(foldGrace).Sub(in.Now); wait > 0 {
				q.Intent, recheck = desired.Hold, min(wait, foldGrace)
			}
		}
	case in.Folded:
		// The same rule at boot (on the runtime intent: NotServed is about a profile that wants to
		// run): after a container boot there is neither memory nor a root up, so it never holds;
		// a forced boot pass mid-life keeps a fallback slot running.
		switch {
		case p.Intent != desired.Up || in.Served:
		case in.Memory.NotServed:
			// Once decided, NotServed lasts until the root lists the profile (or its intent is no
			// longer up), whatever the root does meanwhile: a root restart does not take a
			// fallback slot down only to start it again a settle period later.
			notServed = true
		case in.RootUpSince.IsZero():
			// The root is not up (yet): its own look wakes this key once it is.
		default:
			if wait := in.RootUpSince.Add(r.SettlePeriod).Sub(in.Now); wait > 0 {
				recheck = min(wait, r.SettlePeriod)
			} else {
				notServed = true
			}
		}
		if !notServed || !in.Fallback {
			q.Intent, q.BootIntent = desired.Down, desired.Down
		}
	default:
		return in, false, 0
	}
	in.Profile = &q
	return in, notServed, recheck
}

// foldedIntoRoot is the boot log's folded_into_root: a named profile served by the root whose
// intent (boot column) is Up. The root's own line, standalone profiles, a profile served by its
// own slot (NotServed with the fallback) and the perProfile topology say False.
func foldedIntoRoot(in Input, d Decision) bool {
	return in.Folded && in.Profile != nil && in.Profile.BootIntent == desired.Up && !(d.NotServed && in.Fallback)
}

// fold is one key's contribution to the root's effective intent.
type fold struct {
	folded bool
	intent desired.Intent
	bootUp bool
}

// topo is the controller's topology bookkeeping under Multiplex: each key's folded contribution
// with running counts (so the root's effective intent costs O(1) per key update, never a scan),
// and what the root's gateway serves and since when it is up (so that a change there wakes only
// the profiles whose NotServed may flip).
type topo struct {
	mu     sync.Mutex
	folds  map[string]fold
	sum    FoldSummary
	foldUp map[string]bool // keys whose folded runtime intent is Up
	// The root, as last looked at.
	rootUpSince time.Time
	servedList  []string
	served      map[string]bool
}

func newTopo() *topo {
	return &topo{folds: map[string]fold{}, foldUp: map[string]bool{}, served: map[string]bool{}}
}

// note records key's contribution (the zero fold: none) and reports whether the root's
// effective intent may change because of it. O(1).
func (t *topo) note(key string, f fold, mtime, now time.Time) (rootChanged bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.folds[key]
	if old == f {
		return false
	}
	before := t.sum
	t.add(old, -1)
	t.add(f, 1)
	if f.folded && mtime.After(t.sum.Since) {
		t.sum.Since = mtime
	}
	switch {
	case t.sum.Up > 0:
		t.sum.UpEnded = time.Time{}
	case before.Up > 0:
		t.sum.UpEnded = now
	}
	if f == (fold{}) {
		delete(t.folds, key)
	} else {
		t.folds[key] = f
	}
	if f.folded && f.intent == desired.Up {
		t.foldUp[key] = true
	} else {
		delete(t.foldUp, key)
	}
	return !before.same(t.sum)
}

func (t *topo) add(f fold, n int) {
	if !f.folded {
		return
	}
	if f.intent == desired.Up {
		t.sum.Up += n
	}
	if f.intent != desired.Down {
		t.sum.NotDown += n
	}
	if f.bootUp {
		t.sum.BootUp += n
	}
}

// summary is the folded profiles' summary for the root's input.
func (t *topo) summary() *FoldSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sum
	return &s
}

// root records the root's up-since and served list and returns the keys whose NotServed may
// flip because of a change: when the root comes up (or restarts), the folded-Up keys it does
// not serve; on a change of the list, the folded-Up keys that entered or left it. The root going
// down flips nothing (a NotServed lasts until the root lists the profile). Unchanged (the
// common case, the very same slice reused from the cache): nothing.
func (t *topo) root(upSince time.Time, served []string) (wake []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(served) != len(t.servedList) || (len(served) > 0 && &served[0] != &t.servedList[0]) {
		next := make(map[string]bool, len(served))
		for _, s := range served {
			next[s] = true
		}
		if !equalSets(next, t.served) {
			for k := range t.foldUp {
				if next[k] != t.served[k] {
					wake = append(wake, k)
				}
			}
		}
		t.servedList, t.served = served, next
	}
	if !upSince.Equal(t.rootUpSince) {
		t.rootUpSince = upSince
		if !upSince.IsZero() {
			for k := range t.foldUp {
				if !t.served[k] {
					wake = append(wake, k)
				}
			}
		}
	}
	return wake
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// rootView is what a folded profile's input needs of the root: when it came up, and whether
// it lists name.
func (t *topo) rootView(name string) (upSince time.Time, served bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rootUpSince, t.served[name]
}

// foldLook adds the topology to a key's look under Multiplex (nothing under PerProfile: no
// config.yaml is read and nothing is counted). A named profile's config.yaml is read (reusing
// the last read while its FileID is stable), its contribution to the root's effective intent
// recorded, and the root enqueued when that may change; the root's look records what it serves
// and since when it is up, and enqueues the profiles whose NotServed may flip. It costs O(1) per
// key, except when the root's served list changes.
func (c *Controller) foldLook(r *roots, lk *look, ks *keyState) {
	if c.opts.Topology != Multiplex {
		return
	}
	var wake []string
	if lk.Name == desired.DefaultProfile {
		var upSince time.Time
		if s := lk.Slot; s != nil && s.Err == nil && s.Supervision.HasStatus && s.Supervision.Status.Up() {
			upSince = s.Supervision.Status.Stamp
		}
		var served []string
		if lk.Profile != nil {
			served = lk.Profile.Served
		}
		wake = c.topo.root(upSince, served)
		lk.Folds = c.topo.summary()
	} else {
		var f fold
		var mtime time.Time
		if p := lk.Profile; p != nil && r.vol != nil {
			var prev desired.GatewayConfig
			if ks.gwConfig != nil {
				prev = *ks.gwConfig
			}
			lk.gwConfig = r.vol.GatewayConfig(lk.Name, prev, lk.Now)
			lk.Standalone = lk.gwConfig.Standalone
			lk.Folded = !lk.Standalone
			if lk.Folded {
				f = fold{folded: true, intent: p.Intent, bootUp: p.BootIntent == desired.Up}
				mtime = notAfter(p.StateModTime, lk.Now)
				lk.RootUpSince, lk.Served = c.topo.rootView(lk.Name)
				lk.Fallback = c.opts.Fallback == FallbackOwnSlot
			}
		}
		if c.topo.note(lk.Name, f, mtime, lk.Now) {
			wake = append(wake, desired.DefaultProfile)
		}
	}
	if c.enqueue != nil {
		for _, k := range wake {
			c.enqueue(k)
		}
	}
}

// reportConfigWarning logs a config.yaml warning once when it appears or changes, and once
// when it clears.
func (c *Controller) reportConfigWarning(log logr.Logger, lk look) {
	if c.opts.Topology != Multiplex {
		return
	}
	var err error
	if w := lk.gwConfig.Warning; w != "" {
		err = errors.New(w)
	}
	if msg, prev, changed := c.noteReported("warning/config/"+lk.Name, err); changed {
		if msg != "" {
			log.Info("Gateway config warning", "warning", msg)
		} else {
			log.Info("Gateway config warning cleared", "was", prev)
		}
	}
}

// notServedEvent is the event of a key's NotServed starting (on) or ending.
func notServedEvent(lk look, on bool, now time.Time) Event {
	root := desired.SlotPrefix + desired.DefaultProfile
	if on {
		msg := root + " has been up since " + lk.RootUpSince.UTC().Format(time.RFC3339) + " and its " +
			desired.StateFileName + " served_profiles does not list " + lk.Name
		if lk.Fallback {
			msg += "; starting its own slot (multiplex.fallback: ownSlot)"
		}
		return Event{Time: now, Type: "Warning", Reason: "NotServed", Message: msg}
	}
	why := "its intent is no longer up"
	switch {
	case lk.Profile == nil:
		why = "the profile is gone"
	case !lk.Folded:
		why = "it is no longer folded into the root"
	case lk.Served:
		why = root + " lists it in served_profiles"
		if lk.Fallback {
			why += "; its own slot is folded back"
		}
	}
	return Event{Time: now, Type: "Normal", Reason: "Served", Message: "no longer NotServed: " + why}
}

// servedBy is the slot whose gateway serves a profile ("" without a profile).
func servedBy(in Input, d Decision) string {
	if in.Profile == nil {
		return ""
	}
	if in.Folded && !(d.NotServed && in.Fallback) {
		return desired.SlotPrefix + desired.DefaultProfile
	}
	return in.Profile.Slot()
}

// topologyCause explains, for an action's cause, what the topology made of the profile's own
// intent ("" under PerProfile and for standalone profiles).
func topologyCause(lk look, d Decision) string {
	switch {
	case lk.Profile == nil:
		return ""
	case lk.Folds != nil && d.Intent != lk.Profile.IntentAt(lk.Boot):
		n := lk.Folds.Up
		if lk.Boot {
			n = lk.Folds.BootUp
		}
		return fmt.Sprintf("effective intent %s (topology multiplex: %d folded profile(s) up, %d not down)", d.Intent, n, lk.Folds.NotDown)
	case lk.Folded && d.NotServed && lk.Fallback:
		return "not served by " + desired.SlotPrefix + desired.DefaultProfile + ": its own slot serves it (multiplex.fallback ownSlot)"
	case lk.Folded:
		return "folded into " + desired.SlotPrefix + desired.DefaultProfile + " (topology multiplex): its own slot is kept down"
	}
	return ""
}

// prime looks at every key once, without acting, so that the root's effective intent counts
// every folded profile before any key is reconciled on its own (a controller restarted without
// a boot pass must not stop the root for want of the folded profiles it has not looked at yet).
// It does nothing under PerProfile.
func (c *Controller) prime() {
	if c.opts.Topology != Multiplex {
		return
	}
	r := c.openRoots()
	defer r.close()
	if r.scan == nil {
		return
	}
	c.plan(r, false, c.opts.Now())
}
