package reconciler

import (
	"fmt"
	"time"

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

// Fold is the topology part of a key's Input (filled by Controller.foldLook, topology_state.go).
// Under PerProfile it is the zero value.
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

// same reports whether two summaries give the root the same effective intent.
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
