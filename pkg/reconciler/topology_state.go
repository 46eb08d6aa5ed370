package reconciler

import (
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/hermes/profile-controller/pkg/desired"
)

// The controller's side of the topology (topology.go has the planner's): what it keeps between
// looks so that the root's effective intent and NotServed cost O(1) per key, and the hook into
// each look.

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
	if msg, prev, changed := c.noteReported(reportKey{"config warning", lk.Name}, err); changed {
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
	c.planEach(r, c.settings(), c.list(r, nil), false, c.opts.Now(), func(int, planned) {})
}
