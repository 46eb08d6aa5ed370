package reconciler_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hermes/profile-controller/internal/volume"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/reconciler"
)

// secRecorder stands in for s6: it records every call and never touches the file system.
// Rescan fails, so that no create waits for a supervisor that will never come.
type secRecorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *secRecorder) rec(op, dir string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, op+" "+dir)
}
func (r *secRecorder) Up(_ context.Context, dir string) error   { r.rec("up", dir); return nil }
func (r *secRecorder) Down(_ context.Context, dir string) error { r.rec("down", dir); return nil }
func (r *secRecorder) Kill(_ context.Context, dir string) error { r.rec("kill", dir); return nil }
func (r *secRecorder) Rescan(_ context.Context, dir string) error {
	r.rec("rescan", dir)
	return errors.New("no s6-svscan in this test")
}
func (r *secRecorder) RescanPrune(_ context.Context, dir string) error {
	r.rec("rescanprune", dir)
	return nil
}

// secHostileNames are profile directory names an attacker can create under profiles/.
var secHostileNames = []string{
	"a\nb", "x;rm -rf ~", "$(touch pwned)", "`id`", "a..b", "a b", "a'b", `a"b`, "a\\b", "\xff\xfe",
	"héllo", "UPPER", "-rf", "_lead", "a\tb", "\x1b[31m", "a=b", "*", "a|b", "{a,b}", "~root",
	strings.Repeat("a", desired.MaxNameLen+1), strings.Repeat("b", 255), "..x",
}

// secHostileVolume makes a HERMES_HOME holding a valid profile "good" and one profile dir (with
// SOUL.md and a state file asking to run) per hostile name, plus an empty scandir beside it.
func secHostileVolume(t *testing.T) (home, scandir string) {
	t.Helper()
	root := t.TempDir()
	home, scandir = filepath.Join(root, "home"), filepath.Join(root, "service")
	for _, n := range append([]string{"good"}, secHostileNames...) {
		dir := filepath.Join(home, desired.ProfilesDirName, n)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, data := range map[string]string{desired.SoulFileName: "# soul\n", desired.StateFileName: `{"desired_state":"running"}`} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Mkdir(scandir, 0o755); err != nil {
		t.Fatal(err)
	}
	return home, scandir
}

func secListDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// TestPlanSecurityHostileNames: on a volume full of hostile profile names, a boot pass plans,
// renders and applies actions for the valid profiles only: no action, no rendered script, no
// scandir entry and no stale-file cleanup ever carries a hostile name, and nothing is created
// outside the scandir.
func TestPlanSecurityHostileNames(t *testing.T) {
	home, scandir := secHostileVolume(t)
	r, err := reconciler.NewRenderer(reconciler.Templates{}, map[string]string{"K": "v"}, home, "hermes")
	if err != nil {
		t.Fatal(err)
	}
	rec := &secRecorder{}
	ctl := reconciler.New(reconciler.Options{
		HermesHome: home, Scandir: scandir, RuntimeDir: filepath.Join(t.TempDir(), "run"),
		Services: rec, Scanner: rec, Renderer: r, Log: logr.Discard(), Now: func() time.Time { return time.Unix(1e9, 0) },
		Rules: reconciler.Rules{SettlePeriod: time.Second, MinUptime: time.Second},
	})
	actions, err := ctl.Plan(true)
	if err != nil {
		t.Fatal(err)
	}
	valid := map[string]bool{"default": true, "good": true}
	for _, a := range actions {
		if !valid[a.Profile] || (a.Slot != "" && a.Slot != "gateway-default" && a.Slot != "gateway-good") {
			t.Errorf("action %s is not for a valid profile", a)
		}
		for _, f := range a.Files {
			for _, n := range secHostileNames {
				if len(n) > 3 && strings.Contains(string(f.Data), n) {
					t.Errorf("%s of %s holds the hostile name %q", f.Name, a.Slot, n)
				}
			}
		}
	}

	ex := &reconciler.Executor{
		Scandir: scandir, Services: rec, Scanner: rec, PickupTimeout: time.Millisecond,
		CleanStale: func() (reconciler.StaleBatch, error) { return volume.OpenHome(home) },
	}
	_ = ex.Apply(context.Background(), actions) // the failed rescan is expected
	if got := secListDir(t, scandir); strings.Join(got, ",") != "gateway-default,gateway-good" {
		t.Errorf("scandir holds %q, want gateway-default and gateway-good", got)
	}
	if got := secListDir(t, filepath.Dir(scandir)); strings.Join(got, ",") != "home,service" {
		t.Errorf("the scandir's parent holds %q", got)
	}
	for _, c := range rec.calls {
		if !strings.HasSuffix(c, scandir) && !strings.HasSuffix(c, "/gateway-default") && !strings.HasSuffix(c, "/gateway-good") {
			t.Errorf("s6 call %q is not for a valid slot", c)
		}
	}
}

// TestReconcileKeySecurityHostileNames: the runtime path gets raw entry names from the volume
// (Keys lists profiles/ as it is); reconciling such a key reports it and touches nothing: no s6
// call, no scandir entry.
func TestReconcileKeySecurityHostileNames(t *testing.T) {
	home, scandir := secHostileVolume(t)
	r, err := reconciler.NewRenderer(reconciler.Templates{}, nil, home, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := &secRecorder{}
	c := reconciler.New(reconciler.Options{
		HermesHome: home, Scandir: scandir, RuntimeDir: filepath.Join(t.TempDir(), "run"),
		Services: rec, Scanner: rec, Renderer: r, Log: logr.Discard(),
	})
	for _, n := range append(append([]string{}, secHostileNames...), "..", ".", "../home", "/etc", "a/b", "") {
		if _, err := c.ReconcileKey(context.Background(), n); err != nil {
			t.Logf("ReconcileKey(%q): %v", n, err)
		}
	}
	if got := secListDir(t, scandir); len(got) != 0 {
		t.Errorf("scandir holds %q after reconciling hostile keys", got)
	}
	if len(rec.calls) != 0 {
		t.Errorf("s6 calls for hostile keys: %q", rec.calls)
	}
}
