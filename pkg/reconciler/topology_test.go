package reconciler

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

func TestMultiplexRootIntent(t *testing.T) {
	const (
		up, down, hold = desired.Up, desired.Down, desired.Hold
	)
	tests := []struct {
		own         desired.Intent
		up, notDown int
		want        desired.Intent
	}{
		{own: up, want: up},
		{own: down, want: down},
		{own: hold, want: hold},
		{own: down, up: 1, notDown: 1, want: up},
		{own: hold, up: 2, notDown: 3, want: up},
		{own: down, notDown: 1, want: hold}, // a folded profile holds: so does the root
		{own: hold, notDown: 0, want: hold},
		{own: up, notDown: 0, want: up},
	}
	for _, tt := range tests {
		if got := rootIntent(tt.own, tt.up, tt.notDown); got != tt.want {
			t.Errorf("rootIntent(%v, up %d, notDown %d) = %v, want %v", tt.own, tt.up, tt.notDown, got, tt.want)
		}
	}
}

// TestMultiplexPlan: what the planner does with the topology part of the input.
func TestMultiplexPlan(t *testing.T) {
	r := planRenderer(t)
	old := t0.Add(-time.Hour)
	named := func(boot, runtime desired.Intent) *desired.Profile { return newProfile("alpha", boot, runtime, old) }
	root := func(boot, runtime desired.Intent) *desired.Profile {
		return newProfile(desired.DefaultProfile, boot, runtime, old)
	}
	seen := func(intent, accepted desired.Intent) Memory {
		return Memory{Seen: true, Intent: intent, IntentSince: old, StateModTime: old, Accepted: accepted}
	}
	notServed := func(m Memory) Memory { m.NotServed = true; return m }
	up := s6.Status{PID: 7, WantUp: true, Stamp: old}
	upSince := func(d time.Duration) s6.Status { return s6.Status{PID: 7, WantUp: true, Stamp: t0.Add(-d)} }
	down := s6.Status{Stamp: old}
	tests := []struct {
		name    string
		in      Input
		slot    func(files []s6.File) *observed.Slot
		want    []string
		pending string
		requeue time.Duration
		notServ bool
		intent  desired.Intent
	}{
		{
			name:   "folded, intent up, no slot: registered down",
			in:     Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true}},
			want:   []string{"create gateway-alpha (down)"},
			intent: desired.Down,
		},
		{
			name:   "folded, boot up, no slot: registered down at boot too",
			in:     Input{Boot: true, Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true}},
			want:   []string{"create gateway-alpha (down)"},
			intent: desired.Down,
		},
		{
			name: "folded, slot down without the marker: marked",
			in:   Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true}, Memory: seen(desired.Down, desired.Down)},
			slot: func(f []s6.File) *observed.Slot { return newSlot("alpha", f, supervisedBy(down, old)) },
			want: []string{"mark gateway-alpha +down"}, intent: desired.Down,
		},
		{
			name: "folded slot started by hand: left alone while it settles",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: old, Served: true},
				Memory: seen(desired.Down, desired.Down)},
			slot: func(f []s6.File) *observed.Slot {
				return newSlot("alpha", f, withDown, supervisedBy(up, t0.Add(-5*time.Second)))
			},
			pending: "Settling: stop at " + t0.Add(10*time.Second).Format(time.RFC3339), requeue: 10 * time.Second,
			intent: desired.Down,
		},
		{
			name: "folded slot started by hand: stopped after the settle period",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: old, Served: true},
				Memory: seen(desired.Down, desired.Down)},
			slot: func(f []s6.File) *observed.Slot {
				return newSlot("alpha", f, withDown, supervisedBy(up, t0.Add(-20*time.Second)))
			},
			want:   []string{"stop gateway-alpha (drift)"},
			intent: desired.Down,
		},
		{
			name:   "standalone keeps its own intent",
			in:     Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Standalone: true}, Memory: seen(desired.Up, desired.Down)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("alpha", f, withDown, supervisedBy(down, old)) },
			want:   []string{"start gateway-alpha"},
			intent: desired.Up,
		},
		{
			name:   "root stopped, a folded profile up: root started",
			in:     Input{Profile: root(desired.Down, desired.Down), Fold: Fold{Folds: &FoldSummary{Up: 1, NotDown: 1}}, Memory: seen(desired.Down, desired.Down)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("default", f, withDown, supervisedBy(down, old)) },
			want:   []string{"start gateway-default"},
			intent: desired.Up,
		},
		{
			name:   "root stopped, a folded profile holds: root left as it is",
			in:     Input{Profile: root(desired.Down, desired.Down), Fold: Fold{Folds: &FoldSummary{NotDown: 1}}, Memory: seen(desired.Hold, desired.Up)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("default", f, supervisedBy(up, old)) },
			intent: desired.Hold,
		},
		{
			name:   "root stopped, every folded profile stopped: root stopped",
			in:     Input{Profile: root(desired.Down, desired.Down), Fold: Fold{Folds: &FoldSummary{}}, Memory: seen(desired.Up, desired.Up)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("default", f, supervisedBy(up, old)) },
			want:   []string{"stop gateway-default"},
			intent: desired.Down,
		},
		{
			name: "the last folded profile stopped a moment ago: root kept as it is for foldGrace",
			in: Input{Profile: root(desired.Down, desired.Down), Fold: Fold{Folds: &FoldSummary{UpEnded: t0.Add(-300 * time.Millisecond)}},
				Memory: seen(desired.Up, desired.Up)},
			slot:    func(f []s6.File) *observed.Slot { return newSlot("default", f, supervisedBy(up, old)) },
			requeue: 700 * time.Millisecond, intent: desired.Hold,
		},
		{
			name: "the last folded profile stopped foldGrace ago: root stopped",
			in: Input{Profile: root(desired.Down, desired.Down), Fold: Fold{Folds: &FoldSummary{UpEnded: t0.Add(-foldGrace)}},
				Memory: seen(desired.Up, desired.Up)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("default", f, supervisedBy(up, old)) },
			want:   []string{"stop gateway-default"},
			intent: desired.Down,
		},
		{
			name:   "boot: root stopped, a folded profile running: root created up",
			in:     Input{Boot: true, Profile: root(desired.Down, desired.Down), Fold: Fold{Folds: &FoldSummary{BootUp: 1}}},
			want:   []string{"create gateway-default (up)"},
			intent: desired.Up,
		},
		{
			name:   "boot: every folded profile down: root registered down",
			in:     Input{Boot: true, Profile: root(desired.Down, desired.Hold), Fold: Fold{Folds: &FoldSummary{NotDown: 2}}},
			want:   []string{"create gateway-default (down)"},
			intent: desired.Down,
		},
		{
			name:   "boot pass after a container boot: the root is not up, nothing is NotServed",
			in:     Input{Boot: true, Profile: named(desired.Down, desired.Up), Fold: Fold{Folded: true, Fallback: true}},
			want:   []string{"create gateway-alpha (down)"},
			intent: desired.Down,
		},
		{
			name: "forced boot pass mid-life: a fallback slot stays up",
			in: Input{Boot: true, Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: old, Fallback: true},
				Memory: notServed(seen(desired.Up, desired.Up))},
			slot: func(f []s6.File) *observed.Slot {
				return newSlot("alpha", f, supervisedBy(upSince(time.Minute), t0.Add(-time.Minute)))
			},
			notServ: true, intent: desired.Up,
		},
		{
			name: "not listed, root up for less than the settle period: look again then",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: t0.Add(-5 * time.Second)},
				Memory: seen(desired.Down, desired.Down)},
			slot:    func(f []s6.File) *observed.Slot { return newSlot("alpha", f, withDown, supervisedBy(down, old)) },
			requeue: 10 * time.Second, intent: desired.Down,
		},
		{
			name: "not listed, root up for the settle period: NotServed, reported only",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: t0.Add(-15 * time.Second)},
				Memory: seen(desired.Down, desired.Down)},
			slot:    func(f []s6.File) *observed.Slot { return newSlot("alpha", f, withDown, supervisedBy(down, old)) },
			notServ: true, intent: desired.Down,
		},
		{
			name: "not listed, root down: not NotServed",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true},
				Memory: seen(desired.Down, desired.Down)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("alpha", f, withDown, supervisedBy(down, old)) },
			intent: desired.Down,
		},
		{
			name: "not listed, intent down: not NotServed",
			in: Input{Profile: named(desired.Down, desired.Down), Fold: Fold{Folded: true, RootUpSince: old},
				Memory: seen(desired.Down, desired.Down)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("alpha", f, withDown, supervisedBy(down, old)) },
			intent: desired.Down,
		},
		{
			name: "NotServed with fallback ownSlot: its own slot started",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: old, Fallback: true},
				Memory: seen(desired.Down, desired.Down)},
			slot:    func(f []s6.File) *observed.Slot { return newSlot("alpha", f, withDown, supervisedBy(down, old)) },
			want:    []string{"start gateway-alpha"},
			notServ: true, intent: desired.Up,
		},
		{
			name: "fallback: the root restarted and does not list it yet: still NotServed, its own slot kept up",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: t0.Add(-time.Second), Fallback: true},
				Memory: notServed(seen(desired.Up, desired.Up))},
			slot: func(f []s6.File) *observed.Slot {
				return newSlot("alpha", f, supervisedBy(upSince(time.Minute), t0.Add(-time.Minute)))
			},
			notServ: true, intent: desired.Up,
		},
		{
			name: "fallback: the root is down: still NotServed, its own slot kept up",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, Fallback: true},
				Memory: notServed(seen(desired.Up, desired.Up))},
			slot: func(f []s6.File) *observed.Slot {
				return newSlot("alpha", f, supervisedBy(upSince(time.Minute), t0.Add(-time.Minute)))
			},
			notServ: true, intent: desired.Up,
		},
		{
			name: "was NotServed, intent now down: no longer",
			in: Input{Profile: named(desired.Down, desired.Down), Fold: Fold{Folded: true, RootUpSince: old, Fallback: true},
				Memory: notServed(seen(desired.Up, desired.Up))},
			slot: func(f []s6.File) *observed.Slot {
				return newSlot("alpha", f, supervisedBy(upSince(time.Minute), t0.Add(-time.Minute)))
			},
			want:   []string{"stop gateway-alpha"},
			intent: desired.Down,
		},
		{
			name: "fallback: listed again, its own slot folded back",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: old, Served: true, Fallback: true},
				Memory: notServed(seen(desired.Up, desired.Up))},
			slot: func(f []s6.File) *observed.Slot {
				return newSlot("alpha", f, supervisedBy(upSince(time.Minute), t0.Add(-time.Minute)))
			},
			want:   []string{"stop gateway-alpha"},
			intent: desired.Down,
		},
		{
			name: "listed: served, nothing to do",
			in: Input{Profile: named(desired.Up, desired.Up), Fold: Fold{Folded: true, RootUpSince: old, Served: true, Fallback: true},
				Memory: seen(desired.Down, desired.Down)},
			slot:   func(f []s6.File) *observed.Slot { return newSlot("alpha", f, withDown, supervisedBy(down, old)) },
			intent: desired.Down,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Name, in.Now = in.Profile.Name, t0
			in.Files = render(t, r, in.Profile)
			if tt.slot != nil {
				in.Slot = tt.slot(in.Files)
			}
			d := PlanProfile(in, testRules)
			if diff := cmp.Diff(tt.want, actionStrings(d.Actions), equateNil); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if d.Pending != tt.pending {
				t.Errorf("pending %q, want %q", d.Pending, tt.pending)
			}
			if d.RequeueAfter != tt.requeue {
				t.Errorf("requeue after %v, want %v", d.RequeueAfter, tt.requeue)
			}
			if d.NotServed != tt.notServ {
				t.Errorf("NotServed %v, want %v", d.NotServed, tt.notServ)
			}
			if d.Intent != tt.intent {
				t.Errorf("planned intent %v, want %v", d.Intent, tt.intent)
			}
			if in.Profile.Intent != tt.in.Profile.Intent {
				t.Errorf("the input's profile was modified")
			}
		})
	}
}

func TestFoldedIntoRoot(t *testing.T) {
	up := newProfile("alpha", desired.Up, desired.Up, t0)
	down := newProfile("alpha", desired.Down, desired.Down, t0)
	tests := []struct {
		name string
		in   Input
		d    Decision
		want bool
	}{
		{"folded, running", Input{Profile: up, Fold: Fold{Folded: true}}, Decision{}, true},
		{"folded, running, NotServed without the fallback", Input{Profile: up, Fold: Fold{Folded: true}}, Decision{NotServed: true}, true},
		{"folded, running, served by its own slot", Input{Profile: up, Fold: Fold{Folded: true, Fallback: true}}, Decision{NotServed: true}, false},
		{"folded, stopped", Input{Profile: down, Fold: Fold{Folded: true}}, Decision{}, false},
		{"standalone, running", Input{Profile: up, Fold: Fold{Standalone: true}}, Decision{}, false},
		{"perProfile, running", Input{Profile: up}, Decision{}, false},
		{"root", Input{Profile: newProfile("default", desired.Up, desired.Up, t0), Fold: Fold{Folds: &FoldSummary{BootUp: 1}}}, Decision{}, false},
	}
	for _, tt := range tests {
		if got := foldedIntoRoot(tt.in, tt.d); got != tt.want {
			t.Errorf("%s: foldedIntoRoot = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestTopoAggregate: each note costs O(1) (counters, no scan) and says whether the root's
// effective intent may have changed; a key going away takes its contribution with it.
func TestTopoAggregate(t *testing.T) {
	tp := newTopo()
	folded := func(i desired.Intent) fold { return fold{folded: true, intent: i, bootUp: i == desired.Up} }
	steps := []struct {
		key     string
		f       fold
		changed bool
		want    FoldSummary // Since ignored
	}{
		{"a", folded(desired.Down), false, FoldSummary{}},
		{"b", folded(desired.Up), true, FoldSummary{Up: 1, NotDown: 1, BootUp: 1}},
		{"c", folded(desired.Up), false, FoldSummary{Up: 2, NotDown: 2, BootUp: 2}},
		{"c", folded(desired.Up), false, FoldSummary{Up: 2, NotDown: 2, BootUp: 2}}, // unchanged
		{"b", fold{}, false, FoldSummary{Up: 1, NotDown: 1, BootUp: 1}},             // gone or standalone
		{"c", folded(desired.Hold), true, FoldSummary{NotDown: 1}},
		{"a", folded(desired.Hold), false, FoldSummary{NotDown: 2}},
		{"a", fold{}, false, FoldSummary{NotDown: 1}},
		{"c", folded(desired.Down), true, FoldSummary{}},
	}
	for i, s := range steps {
		at := t0.Add(time.Duration(i) * time.Second)
		changed := tp.note(s.key, s.f, at, at)
		got := *tp.summary()
		if (s.want.Up == 0 && i > 1) != !got.UpEnded.IsZero() {
			t.Errorf("step %d: UpEnded %v with %d up", i, got.UpEnded, got.Up)
		}
		if s.want.Up == 0 && i == 5 && !got.UpEnded.Equal(at) {
			t.Errorf("step %d: UpEnded %v, want %v (the last up went away then)", i, got.UpEnded, at)
		}
		got.Since, got.UpEnded = time.Time{}, time.Time{}
		if changed != s.changed || got != s.want {
			t.Errorf("step %d (%s %+v): changed %v summary %+v, want %v %+v", i, s.key, s.f, changed, got, s.changed, s.want)
		}
	}
	if len(tp.folds) != 1 || len(tp.foldUp) != 0 {
		t.Errorf("kept %d contributions, %d folded-up keys; want 1, 0", len(tp.folds), len(tp.foldUp))
	}
}

// TestTopoRootWake: a change of what the root serves, or of its up-ness, wakes only the
// profiles whose NotServed may flip; an unchanged root (the same cached list) wakes none.
func TestTopoRootWake(t *testing.T) {
	tp := newTopo()
	for _, k := range []string{"a", "b", "c"} {
		tp.note(k, fold{folded: true, intent: desired.Up}, t0, t0)
	}
	tp.note("d", fold{folded: true, intent: desired.Down}, t0, t0)
	served := []string{"default", "a"}
	steps := []struct {
		name    string
		upSince time.Time
		served  []string
		want    []string
	}{
		{name: "root comes up listing a", upSince: t0, served: served, want: []string{"a", "b", "c"}},
		{name: "unchanged", upSince: t0, served: served},
		{name: "same content re-read", upSince: t0, served: []string{"a", "default"}},
		{name: "b listed too", upSince: t0, served: []string{"a", "b"}, want: []string{"b"}},
		{name: "a dropped, d listed (d is not up)", upSince: t0, served: []string{"b", "d"}, want: []string{"a"}},
		{name: "root goes down: nothing flips", served: []string{"b", "d"}},
		{name: "root up again", upSince: t0.Add(time.Minute), served: []string{"b", "d"}, want: []string{"a", "c"}},
	}
	for _, s := range steps {
		got := tp.root(s.upSince, s.served)
		slices.Sort(got)
		got = slices.Compact(got)
		if diff := cmp.Diff(s.want, got, equateNil); diff != "" {
			t.Errorf("%s: woken (-want +got):\n%s", s.name, diff)
		}
	}
}

// TestMultiplexWakes: a look at one key enqueues the root only when the folded profiles'
// summary changes, and a look at the root enqueues only the profiles whose NotServed may flip.
func TestMultiplexWakes(t *testing.T) {
	c, home := onePathVolume(t)
	c.opts.Topology = Multiplex
	var woken []string
	c.enqueue = func(k string) { woken = append(woken, k) }
	write := func(path, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(home, path), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := c.openRoots()
	defer r.close()
	c.plan(r, c.settings(), false, t0) // alpha and stagingtoo up, gamma holds: the root is up
	steps := []struct {
		name       string
		file, data string
		key        string
		want       []string
	}{
		{name: "beta starts holding: gamma already holds", file: "profiles/beta/gateway_state.json", data: `{}`, key: "beta"},
		{name: "stagingtoo goes standalone: alpha is still up", file: "profiles/stagingtoo/config.yaml", data: "gateway: {standalone: true}\n", key: "stagingtoo"},
		{name: "alpha stops: no folded profile is up any more", file: "profiles/alpha/gateway_state.json", data: `{"desired_state":"stopped"}`, key: "alpha", want: []string{"default"}},
		{name: "alpha stops again: unchanged", key: "alpha"},
		{name: "beta wants running", file: "profiles/beta/gateway_state.json", data: `{"desired_state":"running"}`, key: "beta", want: []string{"default"}},
		{name: "the root lists alpha: beta is not affected", file: "gateway_state.json", data: `{"gateway_state":"running","served_profiles":["default","alpha"]}`, key: "default"},
		{name: "the root lists beta", file: "gateway_state.json", data: `{"gateway_state":"running","served_profiles":["default","beta"]}`, key: "default", want: []string{"beta"}},
	}
	for _, s := range steps {
		woken = nil
		if s.file != "" {
			write(s.file, s.data)
		}
		c.look(r, s.key, false, t0)
		if diff := cmp.Diff(s.want, woken, equateNil); diff != "" {
			t.Errorf("%s: woken (-want +got):\n%s", s.name, diff)
		}
	}
}
