package reconciler

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// The planner is pure, so every time below is a fixed point: no clock reads, no sleeps.
var (
	t0        = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testRules = Rules{SettlePeriod: 15 * time.Second, MinUptime: 10 * time.Second, UnregisterTimeout: 10 * time.Second}
	equateNil = cmpopts.EquateEmpty()
)

// planRenderer is the renderer every planner test takes its files from: the default templates
// of the hermes image, as the brief's scenario describes.
func planRenderer(t testing.TB) *Renderer {
	t.Helper()
	r, err := NewRenderer(Templates{}, nil, "/opt/data", "")
	if err != nil {
		t.Fatalf("NewRenderer: %v", err)
	}
	return r
}

func render(t testing.TB, r *Renderer, p *desired.Profile) []s6.File {
	t.Helper()
	files, err := r.Render(*p)
	if err != nil {
		t.Fatalf("Render(%s): %v", p.Name, err)
	}
	return files
}

// newProfile builds a desired profile with both intents set explicitly.
func newProfile(name string, boot, runtime desired.Intent, stateMod time.Time) *desired.Profile {
	dir := "/opt/data/profiles/" + name
	if name == desired.DefaultProfile {
		dir = "/opt/data"
	}
	return &desired.Profile{
		Name: name, Dir: dir, Port: desired.Port(name),
		BootIntent: boot, Intent: runtime,
		HasStateFile: !stateMod.IsZero(), StateModTime: stateMod,
	}
}

type slotOpt func(*observed.Slot)

// newSlot builds an observed slot whose managed files match files exactly; opts then change it.
func newSlot(name string, files []s6.File, opts ...slotOpt) *observed.Slot {
	s := &observed.Slot{
		Name: desired.SlotPrefix + name, Profile: name, Dir: "/run/service/" + desired.SlotPrefix + name,
		Files: new(observed.SlotFiles),
	}
	for _, f := range files {
		setFile(s, f.Name, bytes.Clone(f.Data), uint32(f.Mode.Perm()))
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// setFile makes the slot read have found the managed file name holding data with mode perm.
func setFile(s *observed.Slot, name string, data []byte, perm uint32) {
	s.Files[observed.ManagedIndex(name)] = observed.ManagedFile{
		ID: safefs.FileID{Ino: uint64(1 + observed.ManagedIndex(name)), Mode: unix.S_IFREG | perm}, Data: data,
	}
}

func withDown(s *observed.Slot) { s.Down = true }

// supervisedBy gives the slot a live supervisor whose status file is st, last written at changed.
func supervisedBy(st s6.Status, changed time.Time) slotOpt {
	return func(s *observed.Slot) {
		s.Supervision = s6.Supervision{Supervised: true, SupervisorPID: 99, HasStatus: true, Status: st, Changed: changed}
	}
}

// supervisedNoStatus: s6-supervise holds the lock but has not written supervise/status yet.
func supervisedNoStatus(s *observed.Slot) {
	s.Supervision = s6.Supervision{Supervised: true, SupervisorPID: 99}
}

func driftRunBytes(s *observed.Slot) {
	run := s.File("run")
	setFile(s, "run", append(bytes.Clone(run.Data), "# edited\n"...), run.Perm())
}
func driftRunMode(s *observed.Slot)  { setFile(s, "run", s.File("run").Data, 0o644) }
func missingLogRun(s *observed.Slot) { *s.File("log/run") = observed.ManagedFile{} }

// Supervisor states, as s6-supervise writes them.
var (
	stRunning    = s6.Status{PID: 4242, WantUp: true, Stamp: t0.Add(-time.Hour)}
	stRestarting = s6.Status{PID: 0, WantUp: true, WStat: 1 << 8, Stamp: t0.Add(-time.Second)}
	stNeverRan   = s6.Status{}
	stNotStarted = s6.Status{Paused: true} // s6 >= 2.13.2 marker
	stExited0    = s6.Status{WStat: 0 << 8, Stamp: t0.Add(-time.Hour)}
	stExited78   = s6.Status{WStat: 78 << 8, Stamp: t0.Add(-time.Hour)}
	stSignalled  = s6.Status{WStat: 15, Stamp: t0.Add(-time.Hour)} // SIGTERM
)

func actionStrings(acts []Action) []string {
	var out []string
	for _, a := range acts {
		out = append(out, a.String())
	}
	return out
}

// intentRow is one row of the intent table (docs/behaviour.md), with the intents desired derives for it.
type intentRow struct {
	name                       string
	desiredState, gatewayState string
	hasFile                    bool
	warning                    string
	boot, runtime              desired.Intent
}

var intentRows = []intentRow{
	{name: "desired running", desiredState: "running", hasFile: true, boot: desired.Up, runtime: desired.Up},
	{name: "desired stopped", desiredState: "stopped", hasFile: true, boot: desired.Down, runtime: desired.Down},
	{name: "gateway running", gatewayState: "running", hasFile: true, boot: desired.Up, runtime: desired.Up},
	{name: "gateway draining", gatewayState: "draining", hasFile: true, boot: desired.Up, runtime: desired.Up},
	{name: "gateway degraded", gatewayState: "degraded", hasFile: true, boot: desired.Up, runtime: desired.Up},
	{name: "gateway stopped", gatewayState: "stopped", hasFile: true, boot: desired.Down, runtime: desired.Down},
	{name: "gateway startup_failed", gatewayState: "startup_failed", hasFile: true, boot: desired.Down, runtime: desired.Down},
	{name: "gateway starting", gatewayState: "starting", hasFile: true, boot: desired.Down, runtime: desired.Hold},
	{name: "desired other value", desiredState: "paused", hasFile: true, warning: "desired_state is \"paused\"", boot: desired.Down, runtime: desired.Hold},
	{name: "no file", boot: desired.Down, runtime: desired.Hold},
	{name: "unreadable", hasFile: true, warning: "unusable, ignored: invalid JSON", boot: desired.Down, runtime: desired.Hold},
}

// TestPlanProfileIntentMatrix crosses every intent row (boot and runtime column) with every
// observed situation of a slot. At runtime the intent was written (t0-1m) after the supervisor's
// last change (t0-1h), so the settle window never holds anything back here.
func TestPlanProfileIntentMatrix(t *testing.T) {
	r := planRenderer(t)
	changed := t0.Add(-time.Hour)
	type want struct {
		up, down, hold []string
	}
	situations := []struct {
		name        string
		slot        []slotOpt // nil with noSlot
		noSlot      bool
		want        want
		wantRequeue time.Duration
		// running: the gateway is up and wanted up, so a boot pass whose down comes from the
		// boot column alone (runtime not down) leaves it running: it was started in this container.
		running bool
	}{
		{
			name: "no slot", noSlot: true,
			want: want{
				up:   []string{"create gateway-coder (up)"},
				down: []string{"create gateway-coder (down)"},
				hold: []string{"create gateway-coder (down)"},
			},
		},
		{
			name: "unsupervised without down",
			want: want{
				up:   []string{"rescan gateway-coder"},
				down: []string{"mark gateway-coder +down", "rescan gateway-coder"},
				hold: []string{"rescan gateway-coder"},
			},
		},
		{
			name: "unsupervised with down", slot: []slotOpt{withDown},
			want: want{
				up:   []string{"mark gateway-coder -down", "rescan gateway-coder"},
				down: []string{"rescan gateway-coder"},
				hold: []string{"rescan gateway-coder"},
			},
		},
		{
			name: "supervised without status", slot: []slotOpt{supervisedNoStatus},
			wantRequeue: time.Second,
		},
		{
			name: "want up and up", slot: []slotOpt{supervisedBy(stRunning, changed)}, running: true,
			want: want{down: []string{"stop gateway-coder"}},
		},
		{
			name: "want up, restarting", slot: []slotOpt{supervisedBy(stRestarting, changed)},
			want: want{down: []string{"stop gateway-coder"}},
		},
		{
			name: "want up and up with down present", slot: []slotOpt{withDown, supervisedBy(stRunning, changed)}, running: true,
			want: want{up: []string{"mark gateway-coder -down"}, down: []string{"stop gateway-coder"}},
		},
		{
			name: "want down without down", slot: []slotOpt{supervisedBy(stExited0, changed)},
			want: want{up: []string{"start gateway-coder"}, down: []string{"mark gateway-coder +down"}},
		},
		{
			name: "want down, never ran", slot: []slotOpt{withDown, supervisedBy(stNeverRan, changed)},
			want: want{up: []string{"start gateway-coder"}},
		},
		{
			name: "want down, not started (s6 2.13.2)", slot: []slotOpt{withDown, supervisedBy(stNotStarted, changed)},
			want: want{up: []string{"start gateway-coder"}},
		},
		{
			name: "want down, exited 0", slot: []slotOpt{withDown, supervisedBy(stExited0, changed)},
			want: want{up: []string{"start gateway-coder"}},
		},
		{
			name: "want down, exited 78", slot: []slotOpt{withDown, supervisedBy(stExited78, changed)},
			want: want{up: []string{"start gateway-coder"}},
		},
		{
			name: "want down, signalled", slot: []slotOpt{withDown, supervisedBy(stSignalled, changed)},
			want: want{up: []string{"start gateway-coder"}},
		},
		{
			name: "drifted run bytes", slot: []slotOpt{driftRunBytes, supervisedBy(stRunning, changed)}, running: true,
			want: want{
				up:   []string{"update gateway-coder run"},
				down: []string{"update gateway-coder run", "stop gateway-coder"},
				hold: []string{"update gateway-coder run"},
			},
		},
		{
			name: "drifted run mode", slot: []slotOpt{driftRunMode, supervisedBy(stRunning, changed)}, running: true,
			want: want{
				up:   []string{"update gateway-coder run"},
				down: []string{"update gateway-coder run", "stop gateway-coder"},
				hold: []string{"update gateway-coder run"},
			},
		},
		{
			name: "missing log/run", slot: []slotOpt{missingLogRun, withDown, supervisedBy(stExited0, changed)},
			want: want{
				up:   []string{"update gateway-coder log/run", "start gateway-coder"},
				down: []string{"update gateway-coder log/run"},
				hold: []string{"update gateway-coder log/run"},
			},
		},
		{
			name: "drifted and unsupervised", slot: []slotOpt{driftRunBytes, missingLogRun, withDown},
			want: want{
				up:   []string{"update gateway-coder run,log/run", "mark gateway-coder -down", "rescan gateway-coder"},
				down: []string{"update gateway-coder run,log/run", "rescan gateway-coder"},
				hold: []string{"update gateway-coder run,log/run", "rescan gateway-coder"},
			},
		},
	}
	for _, row := range intentRows {
		for _, boot := range []bool{true, false} {
			column := "runtime"
			intent := row.runtime
			if boot {
				column, intent = "boot", row.boot
			}
			for _, sit := range situations {
				t.Run(row.name+"/"+column+"/"+sit.name, func(t *testing.T) {
					var mod time.Time
					if row.hasFile {
						mod = t0.Add(-time.Minute)
					}
					p := newProfile("coder", row.boot, row.runtime, mod)
					p.DesiredState, p.GatewayState, p.Warning = row.desiredState, row.gatewayState, row.warning
					files := render(t, r, p)
					var slot *observed.Slot
					if !sit.noSlot {
						slot = newSlot("coder", files, sit.slot...)
					}
					d := PlanProfile(Input{Name: "coder", Boot: boot, Now: t0, Profile: p, Files: files, Slot: slot}, testRules)

					want := map[desired.Intent][]string{desired.Up: sit.want.up, desired.Down: sit.want.down, desired.Hold: sit.want.hold}[intent]
					keptUp := boot && sit.running && row.boot == desired.Down && row.runtime != desired.Down
					if keptUp {
						want = slices.DeleteFunc(slices.Clone(want), func(a string) bool { return a == "stop gateway-coder" })
					}
					if d.KeptUp != keptUp {
						t.Errorf("KeptUp = %v, want %v", d.KeptUp, keptUp)
					}
					if diff := cmp.Diff(want, actionStrings(d.Actions), equateNil); diff != "" {
						t.Errorf("intent %s: actions (-want +got):\n%s", intent, diff)
					}
					if d.RequeueAfter != sit.wantRequeue {
						t.Errorf("RequeueAfter = %s, want %s", d.RequeueAfter, sit.wantRequeue)
					}
					if d.Pending != "" {
						t.Errorf("Pending = %q, want none", d.Pending)
					}
					for _, a := range d.Actions {
						if a.Drift {
							t.Errorf("%s: Drift set, but the intent is newer than the supervisor's change", a)
						}
					}
					if boot && d.Memory != (Memory{}) {
						t.Errorf("boot pass changed memory: %+v", d.Memory)
					}
				})
			}
		}
	}
}

// TestPlanProfileCarriesFiles checks what create and update hand to the executor.
func TestPlanProfileCarriesFiles(t *testing.T) {
	r := planRenderer(t)
	p := newProfile("coder", desired.Down, desired.Down, t0.Add(-time.Minute))
	files := render(t, r, p)

	d := PlanProfile(Input{Name: "coder", Now: t0, Profile: p, Files: files}, testRules)
	want := []Action{{Kind: Create, Profile: "coder", Slot: "gateway-coder", Down: true, Files: files}}
	if diff := cmp.Diff(want, d.Actions); diff != "" {
		t.Errorf("create (-want +got):\n%s", diff)
	}

	slot := newSlot("coder", files, withDown, driftRunMode, supervisedBy(stExited0, t0.Add(-time.Hour)))
	d = PlanProfile(Input{Name: "coder", Now: t0, Profile: p, Files: files, Slot: slot}, testRules)
	want = []Action{{Kind: Update, Profile: "coder", Slot: "gateway-coder", Files: []s6.File{files[1]}}}
	if diff := cmp.Diff(want, d.Actions); diff != "" {
		t.Errorf("update (-want +got):\n%s", diff)
	}
}

func TestPlanProfileWithoutProfile(t *testing.T) {
	running := supervisedBy(stRunning, t0.Add(-time.Hour))
	tests := []struct {
		name     string
		profile  string
		slot     bool
		slotOpts []slotOpt
		keep     bool
		want     []string
	}{
		{name: "slot, not kept", profile: "old", slot: true, want: []string{"unregister gateway-old"}},
		{name: "running slot, not kept: terminated first", profile: "old", slot: true, slotOpts: []slotOpt{running}, want: []string{"terminate gateway-old"}},
		{name: "unsupervised slot with down, not kept", profile: "old", slot: true, slotOpts: []slotOpt{withDown}, want: []string{"unregister gateway-old"}},
		{name: "slot, kept", profile: "old", slot: true, keep: true},
		{name: "no slot", profile: "old"},
		{name: "default is never unregistered", profile: "default", slot: true, slotOpts: []slotOpt{running}},
	}
	for _, tt := range tests {
		for _, boot := range []bool{true, false} {
			name := tt.name + "/runtime"
			if boot {
				name = tt.name + "/boot"
			}
			t.Run(name, func(t *testing.T) {
				var slot *observed.Slot
				if tt.slot {
					slot = newSlot(tt.profile, nil, tt.slotOpts...)
				}
				mem := Memory{Seen: true, Intent: desired.Up, IntentSince: t0.Add(-time.Hour)}
				d := PlanProfile(Input{Name: tt.profile, Boot: boot, Now: t0, Keep: tt.keep, Slot: slot, Memory: mem}, testRules)
				if diff := cmp.Diff(tt.want, actionStrings(d.Actions), equateNil); diff != "" {
					t.Errorf("actions (-want +got):\n%s", diff)
				}
				terminating := len(tt.want) > 0 && strings.HasPrefix(tt.want[0], "terminate")
				got := d.Memory
				got.TerminatingSince = time.Time{}
				if got != mem || (d.RequeueAfter != 0) != terminating || (d.Pending != "") != terminating {
					t.Errorf("decision = %+v, want only actions (and a requeue while terminating)", d)
				}
			})
		}
	}
}

// TestPlanUnregisterTimeline walks the slot of a gone profile through its unregister: s6-svc -d
// at the first look, waiting (never blocking) while the gateway goes down, SIGKILL after the
// unregister timeout, removal once down, and removal anyway killGrace after the kill.
func TestPlanUnregisterTimeline(t *testing.T) {
	up := s6.Status{PID: 7, WantUp: true, Stamp: t0.Add(-time.Hour)}
	goingDown := s6.Status{PID: 7, Stamp: t0}
	down := s6.Status{Stamp: t0}
	step := func(mem Memory, st s6.Status, now time.Time) Decision {
		slot := newSlot("old", nil, supervisedBy(st, st.Stamp))
		return PlanProfile(Input{Name: "old", Now: now, Slot: slot, Memory: mem}, testRules)
	}
	d := step(Memory{}, up, t0)
	if got := actionStrings(d.Actions); !cmp.Equal(got, []string{"terminate gateway-old"}) || !d.Memory.TerminatingSince.Equal(t0) {
		t.Fatalf("first look: %v %+v", got, d.Memory)
	}
	// s6 applies -d asynchronously: a look before it did is no reason to say it again.
	sent := d.Memory.applied(Action{Kind: Terminate})
	if d2 := step(sent, up, t0.Add(time.Millisecond)); len(d2.Actions) != 0 {
		t.Fatalf("terminate sent twice: %v", actionStrings(d2.Actions))
	}
	// Someone asks it up again after that: say down again.
	reupped := s6.Status{PID: 8, WantUp: true, Stamp: t0.Add(time.Second)}
	if d2 := step(sent, reupped, t0.Add(2*time.Second)); !cmp.Equal(actionStrings(d2.Actions), []string{"terminate gateway-old"}) {
		t.Fatalf("re-upped: %v", actionStrings(d2.Actions))
	}
	d = step(d.Memory, goingDown, t0.Add(time.Second))
	if len(d.Actions) != 0 || d.RequeueAfter <= 0 || !strings.HasPrefix(d.Pending, "Terminating") {
		t.Fatalf("still going down: %+v", d)
	}
	if d2 := step(d.Memory, down, t0.Add(2*time.Second)); !cmp.Equal(actionStrings(d2.Actions), []string{"unregister gateway-old"}) {
		t.Fatalf("down: %v", actionStrings(d2.Actions))
	}
	d = step(d.Memory, goingDown, t0.Add(testRules.UnregisterTimeout))
	if got := actionStrings(d.Actions); !cmp.Equal(got, []string{"kill gateway-old"}) || !d.Memory.Killed {
		t.Fatalf("timeout: %v %+v", got, d.Memory)
	}
	d = step(d.Memory, goingDown, t0.Add(testRules.UnregisterTimeout+time.Second))
	if len(d.Actions) != 0 {
		t.Fatalf("killed, waiting: %v", actionStrings(d.Actions))
	}
	d = step(d.Memory, goingDown, t0.Add(testRules.UnregisterTimeout+killGrace))
	if got := actionStrings(d.Actions); !cmp.Equal(got, []string{"unregister gateway-old"}) {
		t.Fatalf("after the kill grace: %v", got)
	}
}

// TestPlanProfileSettle covers the runtime settle window: an intent newer than the supervisor's
// last change is acted on at once; a newer supervisor change (someone drove s6 directly) waits
// out SettlePeriod and is then corrected as drift. The boot pass never waits.
func TestPlanProfileSettle(t *testing.T) {
	r := planRenderer(t)
	intentAt := t0.Add(-time.Minute)
	tests := []struct {
		name        string
		intent      desired.Intent
		status      s6.Status
		changed     time.Time
		now         time.Time
		boot        bool
		want        []string
		wantPending string
		wantRequeue time.Duration
	}{
		{
			name: "start: intent after the change acts now", intent: desired.Up, status: stExited0,
			changed: intentAt.Add(-time.Second), now: intentAt.Add(time.Second),
			want: []string{"start gateway-coder"},
		},
		{
			name: "start: change after the intent settles", intent: desired.Up, status: stExited0,
			changed: intentAt.Add(time.Minute), now: intentAt.Add(time.Minute + 4*time.Second),
			wantPending: "Settling: start at " + intentAt.Add(time.Minute+15*time.Second).Format(time.RFC3339),
			wantRequeue: 11 * time.Second,
		},
		{
			name: "start: one nanosecond before the end", intent: desired.Up, status: stExited0,
			changed: intentAt.Add(time.Minute), now: intentAt.Add(time.Minute + 15*time.Second - 1),
			wantPending: "Settling: start at " + intentAt.Add(time.Minute+15*time.Second).Format(time.RFC3339),
			wantRequeue: 1,
		},
		{
			name: "start: after the settle period is drift", intent: desired.Up, status: stExited0,
			changed: intentAt.Add(time.Minute), now: intentAt.Add(time.Minute + 15*time.Second),
			want: []string{"start gateway-coder (drift)"},
		},
		{
			name: "start: boot pass never settles", intent: desired.Up, status: stExited0, boot: true,
			changed: intentAt.Add(time.Minute), now: intentAt.Add(time.Minute + time.Second),
			want: []string{"start gateway-coder"},
		},
		{
			name: "stop: intent after the change acts now", intent: desired.Down, status: stRunning,
			changed: intentAt.Add(-time.Hour), now: intentAt.Add(time.Second),
			want: []string{"stop gateway-coder"},
		},
		{
			name: "stop: change after the intent settles", intent: desired.Down, status: stRunning,
			changed: intentAt.Add(time.Second), now: intentAt.Add(2 * time.Second),
			wantPending: "Settling: stop at " + intentAt.Add(16*time.Second).Format(time.RFC3339),
			wantRequeue: 14 * time.Second,
		},
		{
			name: "stop: after the settle period is drift", intent: desired.Down, status: stRunning,
			changed: intentAt.Add(time.Second), now: intentAt.Add(time.Hour),
			want: []string{"stop gateway-coder (drift)"},
		},
		{
			name: "stop: boot pass never settles", intent: desired.Down, status: stRunning, boot: true,
			changed: intentAt.Add(time.Second), now: intentAt.Add(2 * time.Second),
			want: []string{"stop gateway-coder"},
		},
		{
			name: "hold: a fresh change is simply kept", intent: desired.Hold, status: stExited0,
			changed: intentAt.Add(time.Second), now: intentAt.Add(2 * time.Second),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProfile("coder", tt.intent, tt.intent, intentAt)
			if tt.intent == desired.Hold {
				p.BootIntent = desired.Down
			}
			files := render(t, r, p)
			opts := []slotOpt{supervisedBy(tt.status, tt.changed)}
			if tt.intent == desired.Down {
				opts = append(opts, withDown) // so that a settled stop is not also a mark
			}
			slot := newSlot("coder", files, opts...)
			// Memory as the controller would hold it after seeing the intent at intentAt.
			mem := Memory{Seen: true, Intent: tt.intent, IntentSince: intentAt, StateModTime: intentAt}
			d := PlanProfile(Input{Name: "coder", Boot: tt.boot, Now: tt.now, Profile: p, Files: files, Slot: slot, Memory: mem}, testRules)
			if diff := cmp.Diff(tt.want, actionStrings(d.Actions), equateNil); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if d.Pending != tt.wantPending {
				t.Errorf("Pending = %q, want %q", d.Pending, tt.wantPending)
			}
			if d.RequeueAfter != tt.wantRequeue {
				t.Errorf("RequeueAfter = %s, want %s", d.RequeueAfter, tt.wantRequeue)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	want := []time.Duration{
		10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second,
		5 * time.Minute, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute,
	}
	for i, w := range want {
		n := i + 1
		if got := backoffDelay(n); got != w {
			t.Errorf("backoffDelay(%d) = %s, want %s", n, got, w)
		}
	}
	if got := backoffDelay(1000); got != 5*time.Minute {
		t.Errorf("backoffDelay(1000) = %s, want the 5m cap", got)
	}
}

// TestMemoryObserve covers the rules of Memory.observe one at a time.
func TestMemoryObserve(t *testing.T) {
	const minUptime = 10 * time.Second
	mod := t0.Add(-time.Minute)
	up := s6.Supervision{Supervised: true, HasStatus: true, Status: stRunning, Changed: t0.Add(-time.Hour)}
	downAt := func(at time.Time) s6.Supervision {
		return s6.Supervision{Supervised: true, HasStatus: true, Status: s6.Status{Stamp: at}, Changed: at}
	}
	upSince := func(stamp time.Time) s6.Supervision {
		return s6.Supervision{Supervised: true, HasStatus: true, Status: s6.Status{PID: 7, WantUp: true, Stamp: stamp}, Changed: stamp}
	}
	backedOff := Memory{
		Seen: true, Intent: desired.Up, IntentSince: t0.Add(-time.Hour), StateModTime: t0.Add(-time.Hour),
		Crashed: true, Failures: 3, NextStart: t0.Add(time.Minute),
	}
	tests := []struct {
		name    string
		mem     Memory
		profile *desired.Profile
		sup     s6.Supervision
		now     time.Time
		want    Memory
	}{
		{
			name: "first sight takes the state file mtime", profile: newProfile("coder", desired.Up, desired.Up, mod), sup: up, now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod},
		},
		{
			name: "first sight without a state file takes now", profile: newProfile("coder", desired.Down, desired.Hold, time.Time{}), sup: up, now: t0,
			want: Memory{Seen: true, Intent: desired.Hold, IntentSince: t0},
		},
		{
			name: "an intent change resets the backoff", mem: backedOff,
			profile: newProfile("coder", desired.Down, desired.Down, mod), sup: downAt(t0.Add(-30 * time.Minute)), now: t0,
			want: Memory{Seen: true, Intent: desired.Down, IntentSince: mod, StateModTime: mod},
		},
		{
			name: "a write after the gateway went down is a fresh request", mem: backedOff,
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: downAt(mod.Add(-time.Second)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod},
		},
		{
			name: "a write before the gateway went down is not", mem: backedOff,
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: downAt(mod.Add(time.Second)), now: t0,
			want: Memory{
				Seen: true, Intent: desired.Up, IntentSince: backedOff.IntentSince, StateModTime: mod,
				Crashed: true, Failures: 3, NextStart: backedOff.NextStart,
			},
		},
		{
			name: "a write while the gateway is up is the gateway's own",
			mem:  Memory{Seen: true, Intent: desired.Up, IntentSince: t0.Add(-2 * time.Hour), StateModTime: t0.Add(-2 * time.Hour)},
			// Supervisor up for 5 minutes: no uptime reset of anything either.
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: upSince(t0.Add(-5 * time.Minute)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: t0.Add(-2 * time.Hour), StateModTime: mod},
		},
		{
			name: "an unchanged mtime is no request", mem: backedOff,
			profile: newProfile("coder", desired.Up, desired.Up, backedOff.StateModTime), sup: downAt(t0.Add(-30 * time.Minute)), now: t0,
			want: backedOff,
		},
		{
			name:    "a controller start that dies within MinUptime is a crash",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-5 * time.Second)},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: downAt(t0.Add(-2 * time.Second)), now: t0,
			want: Memory{
				Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod,
				Crashed: true, Failures: 1, NextStart: t0.Add(-2*time.Second + 10*time.Second),
			},
		},
		{
			name:    "a second crash doubles the delay",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-5 * time.Second), Failures: 1},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: downAt(t0.Add(-2 * time.Second)), now: t0,
			want: Memory{
				Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod,
				Crashed: true, Failures: 2, NextStart: t0.Add(-2*time.Second + 20*time.Second),
			},
		},
		{
			name:    "a controller start that dies after MinUptime is no crash",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-30 * time.Second)},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: downAt(t0.Add(-5 * time.Second)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod},
		},
		{
			name:    "a down older than the start is not judged",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-time.Second)},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: downAt(t0.Add(-3 * time.Second)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-time.Second)},
		},
		{
			name:    "up for MinUptime clears the start",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-10 * time.Second), Failures: 2},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: upSince(t0.Add(-10 * time.Second)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, Failures: 2},
		},
		{
			name:    "up for less than MinUptime keeps the start",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-9 * time.Second), Failures: 2},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: upSince(t0.Add(-9 * time.Second)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-9 * time.Second), Failures: 2},
		},
		{
			name:    "ten minutes of uptime reset the failures",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, Failures: 4, NextStart: t0.Add(-9 * time.Minute)},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: upSince(t0.Add(-10 * time.Minute)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod},
		},
		{
			name:    "less than ten minutes of uptime keep them",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, Failures: 4, NextStart: t0.Add(-9 * time.Minute)},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: upSince(t0.Add(-10*time.Minute + time.Second)), now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, Failures: 4, NextStart: t0.Add(-9 * time.Minute)},
		},
		{
			name:    "no status: no crash bookkeeping",
			mem:     Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-5 * time.Second)},
			profile: newProfile("coder", desired.Up, desired.Up, mod), sup: s6.Supervision{Supervised: true}, now: t0,
			want: Memory{Seen: true, Intent: desired.Up, IntentSince: mod, StateModTime: mod, StartedAt: t0.Add(-5 * time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.mem.observe(*tt.profile, tt.sup, tt.now, minUptime)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("memory (-want +got):\n%s", diff)
			}
		})
	}
}

// crashLoop drives PlanProfile through the controller's cycle: it starts the gateway (as
// Controller.commit does with Memory.started), the gateway dies 2 s later, and the planner is
// asked again. It returns the memory after the start.
type crashLoop struct {
	t     *testing.T
	p     *desired.Profile
	files []s6.File
	mem   Memory
}

func (c *crashLoop) plan(now time.Time, slot *observed.Slot) Decision {
	c.t.Helper()
	d := PlanProfile(Input{Name: c.p.Name, Now: now, Profile: c.p, Files: c.files, Slot: slot, Memory: c.mem}, testRules)
	c.mem = d.Memory
	return d
}

func (c *crashLoop) slotDownAt(at time.Time) *observed.Slot {
	return newSlot(c.p.Name, c.files, withDown, supervisedBy(s6.Status{Stamp: at}, at))
}

func (c *crashLoop) slotUpSince(at time.Time) *observed.Slot {
	return newSlot(c.p.Name, c.files, supervisedBy(s6.Status{PID: 7, WantUp: true, Stamp: at}, at))
}

func TestPlanProfileCrashLoopBackoff(t *testing.T) {
	r := planRenderer(t)
	p := newProfile("coder", desired.Up, desired.Up, t0.Add(-time.Hour))
	c := &crashLoop{t: t, p: p, files: render(t, r, p)}

	// The first look: the gateway is down and the intent is older than nothing: start.
	d := c.plan(t0, c.slotDownAt(t0.Add(-2*time.Hour)))
	if diff := cmp.Diff([]string{"start gateway-coder"}, actionStrings(d.Actions)); diff != "" {
		t.Fatalf("first start (-want +got):\n%s", diff)
	}
	start := t0
	wantDelays := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, delay := range wantDelays {
		n := i + 1
		c.mem = c.mem.started(start)
		died := start.Add(2 * time.Second) // within MinUptime

		// While the backoff runs: no start, a pending CrashLoopBackOff.
		now := died.Add(time.Second)
		d = c.plan(now, c.slotDownAt(died))
		if len(d.Actions) != 0 {
			t.Fatalf("crash %d: actions %v during the backoff", n, actionStrings(d.Actions))
		}
		if d.Memory.Failures != n || !d.Memory.Crashed || !d.Memory.NextStart.Equal(died.Add(delay)) {
			t.Fatalf("crash %d: memory %+v, want Failures %d, Crashed, NextStart %s", n, d.Memory, n, died.Add(delay))
		}
		if !strings.HasPrefix(d.Pending, "CrashLoopBackOff") {
			t.Errorf("crash %d: Pending = %q, want CrashLoopBackOff…", n, d.Pending)
		}
		if want := "CrashLoopBackOff: start at " + died.Add(delay).Format(time.RFC3339); d.Pending != want {
			t.Errorf("crash %d: Pending = %q, want %q", n, d.Pending, want)
		}
		if d.RequeueAfter != delay-time.Second {
			t.Errorf("crash %d: RequeueAfter = %s, want %s", n, d.RequeueAfter, delay-time.Second)
		}

		// Once NextStart is reached: start again (not as drift; the backoff was the wait).
		start = died.Add(delay)
		d = c.plan(start, c.slotDownAt(died))
		if diff := cmp.Diff([]string{"start gateway-coder"}, actionStrings(d.Actions)); diff != "" {
			t.Fatalf("crash %d: start after the backoff (-want +got):\n%s", n, diff)
		}
		if d.Memory.Failures != n {
			t.Fatalf("crash %d: Failures = %d after the backoff, want %d", n, d.Memory.Failures, n)
		}
	}

	// It finally stays up: MinUptime clears the start, ten minutes reset the failures.
	c.mem = c.mem.started(start)
	d = c.plan(start.Add(time.Minute), c.slotUpSince(start))
	if len(d.Actions) != 0 || !d.Memory.StartedAt.IsZero() || d.Memory.Failures != len(wantDelays) {
		t.Fatalf("after a minute up: %v, memory %+v", actionStrings(d.Actions), d.Memory)
	}
	d = c.plan(start.Add(10*time.Minute), c.slotUpSince(start))
	if d.Memory.Failures != 0 || d.Memory.Crashed || !d.Memory.NextStart.IsZero() {
		t.Fatalf("after ten minutes up: memory %+v, want the failures reset", d.Memory)
	}

	// A later death is no crash (the start was judged): it is an external change and settles.
	died := start.Add(11 * time.Minute)
	d = c.plan(died.Add(time.Second), c.slotDownAt(died))
	if len(d.Actions) != 0 || !strings.HasPrefix(d.Pending, "Settling") || d.Memory.Failures != 0 {
		t.Fatalf("a death after ten minutes: %v, pending %q, memory %+v", actionStrings(d.Actions), d.Pending, d.Memory)
	}
}

// TestPlanProfileIntentWriteEndsBackoff: while a backoff runs, a new write of the intent (after
// the gateway went down) is a fresh request and starts the gateway at once.
func TestPlanProfileIntentWriteEndsBackoff(t *testing.T) {
	r := planRenderer(t)
	p := newProfile("coder", desired.Up, desired.Up, t0.Add(-time.Hour))
	c := &crashLoop{t: t, p: p, files: render(t, r, p)}
	c.mem = Memory{Seen: true, Intent: desired.Up, IntentSince: p.StateModTime, StateModTime: p.StateModTime}.started(t0)
	died := t0.Add(time.Second)
	d := c.plan(died.Add(time.Second), c.slotDownAt(died))
	if len(d.Actions) != 0 || !d.Memory.Crashed || !strings.HasPrefix(d.Pending, "CrashLoopBackOff") {
		t.Fatalf("setup: %v, pending %q, memory %+v; want a backoff", actionStrings(d.Actions), d.Pending, d.Memory)
	}

	// The operator runs `hermes gateway start` again: same intent, newer file.
	written := died.Add(3 * time.Second)
	p.StateModTime = written
	d = c.plan(written.Add(time.Millisecond), c.slotDownAt(died))
	if diff := cmp.Diff([]string{"start gateway-coder"}, actionStrings(d.Actions)); diff != "" {
		t.Fatalf("start after a new write (-want +got):\n%s", diff)
	}
	want := Memory{Seen: true, Intent: desired.Up, IntentSince: written, StateModTime: written}
	if diff := cmp.Diff(want, d.Memory); diff != "" {
		t.Errorf("memory (-want +got):\n%s", diff)
	}
	if d.Pending != "" || d.RequeueAfter != 0 {
		t.Errorf("Pending %q, RequeueAfter %s: want none", d.Pending, d.RequeueAfter)
	}

	// The same for a changed intent: stopped, then running again, ends a backoff too.
	c.mem = Memory{Seen: true, Intent: desired.Down, IntentSince: died, StateModTime: died, Crashed: true, Failures: 5, NextStart: died.Add(time.Hour)}
	p.StateModTime = died.Add(-time.Minute) // an older mtime (clock skew, restore): the change itself counts
	d = c.plan(died.Add(time.Second), c.slotDownAt(died.Add(-2*time.Minute)))
	if diff := cmp.Diff([]string{"start gateway-coder"}, actionStrings(d.Actions)); diff != "" {
		t.Fatalf("start after an intent change (-want +got):\n%s", diff)
	}
	if d.Memory.Failures != 0 || d.Memory.Crashed {
		t.Errorf("memory %+v: want the backoff reset", d.Memory)
	}
}

func TestActionString(t *testing.T) {
	run := s6.File{Name: "run"}
	logRun := s6.File{Name: "log/run"}
	tests := []struct {
		a    Action
		want string
	}{
		{Action{Kind: Create, Profile: "coder", Slot: "gateway-coder", Down: true}, "create gateway-coder (down)"},
		{Action{Kind: Create, Profile: "coder", Slot: "gateway-coder"}, "create gateway-coder (up)"},
		{Action{Kind: Start, Profile: "coder", Slot: "gateway-coder"}, "start gateway-coder"},
		{Action{Kind: Start, Profile: "coder", Slot: "gateway-coder", Drift: true}, "start gateway-coder (drift)"},
		{Action{Kind: Stop, Profile: "coder", Slot: "gateway-coder"}, "stop gateway-coder"},
		{Action{Kind: Stop, Profile: "coder", Slot: "gateway-coder", Drift: true}, "stop gateway-coder (drift)"},
		{Action{Kind: Mark, Profile: "coder", Slot: "gateway-coder", Down: true}, "mark gateway-coder +down"},
		{Action{Kind: Mark, Profile: "coder", Slot: "gateway-coder"}, "mark gateway-coder -down"},
		{Action{Kind: Update, Profile: "coder", Slot: "gateway-coder", Files: []s6.File{run, logRun}}, "update gateway-coder run,log/run"},
		{Action{Kind: Unregister, Profile: "old", Slot: "gateway-old"}, "unregister gateway-old"},
		{Action{Kind: Rescan, Profile: "coder", Slot: "gateway-coder"}, "rescan gateway-coder"},
		{Action{Kind: CleanStaging, Slot: ".gateway-x.tmp"}, "clean-staging .gateway-x.tmp"},
		{Action{Kind: CleanStale, Profile: "coder"}, "clean-stale coder"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.a.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPlanProfileAcceptedState: a supervisor still in the state the controller left it in did
// not move, so a disagreement is a new intent and is acted on at once, whatever the mtimes say
// (a state file copied in with an old mtime after the controller created the slot down).
func TestPlanProfileAcceptedState(t *testing.T) {
	r := planRenderer(t)
	old := t0.Add(-time.Hour) // intent mtime older than the supervisor's last change
	changed := t0.Add(-2 * time.Second)
	down := s6.Status{Stamp: changed}
	up := s6.Status{PID: 7, WantUp: true, Stamp: changed}
	for _, tc := range []struct {
		name     string
		intent   desired.Intent
		st       s6.Status
		accepted desired.Intent
		want     []string
		pending  bool
	}{
		{name: "created down by us, intent now up", intent: desired.Up, st: down, accepted: desired.Down, want: []string{"start gateway-coder"}},
		{name: "started by us, intent now down", intent: desired.Down, st: up, accepted: desired.Up, want: []string{"stop gateway-coder"}},
		{name: "unknown (fresh controller): settle by mtimes", intent: desired.Up, st: down, accepted: desired.Hold, pending: true},
		{name: "moved away from accepted up: settle", intent: desired.Up, st: down, accepted: desired.Up, pending: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProfile("coder", tc.intent, tc.intent, old)
			files := render(t, r, p)
			mem := Memory{Seen: true, Intent: tc.intent, IntentSince: old, StateModTime: old, Accepted: tc.accepted}
			d := PlanProfile(Input{Name: "coder", Now: t0, Profile: p, Files: files,
				Slot: newSlot("coder", files, supervisedBy(tc.st, changed)), Memory: mem}, testRules)
			if got := actionStrings(d.Actions); !cmp.Equal(got, tc.want, equateNil) {
				t.Errorf("actions: %s", cmp.Diff(tc.want, got, equateNil))
			}
			if (d.Pending != "") != tc.pending {
				t.Errorf("pending = %q, want pending %v", d.Pending, tc.pending)
			}
		})
	}
}

// TestMemoryStopRightAfterStartIsNoCrash: an intent change within MinUptime of a controller
// start is a request, not a crash.
func TestMemoryStopRightAfterStartIsNoCrash(t *testing.T) {
	p := newProfile("coder", desired.Down, desired.Down, t0.Add(-time.Second))
	m := Memory{Seen: true, Intent: desired.Up, IntentSince: t0.Add(-time.Minute), Accepted: desired.Up, StartedAt: t0.Add(-3 * time.Second)}
	sup := s6.Supervision{Supervised: true, HasStatus: true, Status: s6.Status{Stamp: t0.Add(-500 * time.Millisecond)}, Changed: t0.Add(-500 * time.Millisecond)}
	got := m.observe(*p, sup, t0, testRules.MinUptime)
	if got.Crashed || got.Failures != 0 {
		t.Fatalf("stop after a new intent booked as crash: %+v", got)
	}
}

// TestMemoryCrashNeedsExit0Or78: only a gateway that exited by itself with 0 or 78 (which finish
// turns into "do not restart") within MinUptime crashed; one stopped by a signal or exiting 1
// was stopped by someone else, and that settles instead.
func TestMemoryCrashNeedsExit0Or78(t *testing.T) {
	p := newProfile("coder", desired.Up, desired.Up, t0.Add(-time.Minute))
	for _, tc := range []struct {
		name  string
		wstat uint16
		crash bool
	}{
		{"exit 0", 0 << 8, true},
		{"exit 78", 78 << 8, true},
		{"exit 1 (unplanned SIGTERM handled)", 1 << 8, false},
		{"killed by SIGTERM", 15, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Memory{Seen: true, Intent: desired.Up, IntentSince: t0.Add(-time.Minute), StateModTime: p.StateModTime,
				Accepted: desired.Up, StartedAt: t0.Add(-3 * time.Second)}
			died := t0.Add(-2 * time.Second)
			sup := s6.Supervision{Supervised: true, HasStatus: true, Changed: died, Status: s6.Status{WStat: tc.wstat, Stamp: died}}
			if got := m.observe(*p, sup, t0, testRules.MinUptime); got.Crashed != tc.crash {
				t.Fatalf("Crashed = %v, want %v (%+v)", got.Crashed, tc.crash, got)
			}
		})
	}
}

// TestPlanProfileStuckSupervisor: a supervisor holding the lock without ever writing its status
// (a full scandir) is waited on for stuckAfter, then its slot is re-created.
func TestPlanProfileStuckSupervisor(t *testing.T) {
	r := planRenderer(t)
	p := newProfile("coder", desired.Up, desired.Up, t0.Add(-time.Hour))
	files := render(t, r, p)
	slot := newSlot("coder", files, supervisedNoStatus)
	d := PlanProfile(Input{Name: "coder", Now: t0, Profile: p, Files: files, Slot: slot}, testRules)
	if len(d.Actions) != 0 || d.RequeueAfter != time.Second || !d.Memory.NoStatusSince.Equal(t0) {
		t.Fatalf("first look: %+v", d)
	}
	d = PlanProfile(Input{Name: "coder", Now: t0.Add(stuckAfter), Profile: p, Files: files, Slot: slot, Memory: d.Memory}, testRules)
	if got := actionStrings(d.Actions); !cmp.Equal(got, []string{"unregister gateway-coder"}) || !strings.HasPrefix(d.Pending, "Stuck") {
		t.Fatalf("after stuckAfter: %v %q", got, d.Pending)
	}
	if d := PlanProfile(Input{Name: "coder", Boot: true, Now: t0.Add(time.Hour), Profile: p, Files: files, Slot: slot,
		Memory: Memory{NoStatusSince: t0}}, testRules); len(d.Actions) != 0 {
		t.Errorf("a boot pass re-created a slot: %v", actionStrings(d.Actions))
	}
}

// TestSettleClockJump: a supervisor change dated in the future (the wall clock stepped back
// since s6 wrote it) never makes the settle wait longer than the settle period, and a crash-loop
// wait is never longer than the backoff delay.
func TestSettleClockJump(t *testing.T) {
	period := 15 * time.Second
	changed := t0.Add(time.Hour) // written before the clock went back an hour
	wait, drift, why := settle(t0.Add(-time.Hour), changed, t0, period)
	if wait > period || wait <= 0 || !drift || why != "Settling" {
		t.Errorf("settle after a backward clock step: wait %s drift %v %q; want at most %s", wait, drift, why, period)
	}
	r := planRenderer(t)
	p := newProfile("coder", desired.Up, desired.Up, t0.Add(-2*time.Hour))
	files := render(t, r, p)
	mem := Memory{Seen: true, Intent: desired.Up, IntentSince: p.StateModTime, StateModTime: p.StateModTime,
		Accepted: desired.Up, Crashed: true, Failures: 1, NextStart: t0.Add(time.Hour)}
	slot := newSlot("coder", files, supervisedBy(stExited78, t0.Add(-time.Second)))
	d := PlanProfile(Input{Name: "coder", Now: t0, Profile: p, Files: files, Slot: slot, Memory: mem}, testRules)
	if d.RequeueAfter <= 0 || d.RequeueAfter > backoffDelay(1) {
		t.Errorf("crash-loop wait after a backward clock step = %s, want at most %s", d.RequeueAfter, backoffDelay(1))
	}
}
