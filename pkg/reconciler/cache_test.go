package reconciler

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/hermes/profile-controller/internal/hostile"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/s6"
)

// Every cache proves a file unchanged by its FileID (device, inode, size, mode, mtime, ctime)
// and distrusts one taken within RacyWindow of the file's last change. These tests change the
// files every way an operator, a gateway or an attacker can, and check the very next look sees
// the change: the state file's intent, and a slot file's bytes.

// cacheVolume has one profile "coder" with a converged slot that no supervisor holds (so every
// look plans only "rescan"); now is the clock.
func cacheVolume(t *testing.T, now func() time.Time) (c *Controller, stateFile, runFile string) {
	t.Helper()
	root := t.TempDir()
	home, scandir := filepath.Join(root, "home"), filepath.Join(root, "service")
	dir := filepath.Join(home, "profiles", "coder")
	for _, err := range []error{
		os.MkdirAll(dir, 0o755), os.MkdirAll(scandir, 0o755),
		os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("x"), 0o644),
		os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewRenderer(Templates{}, nil, home, "")
	if err != nil {
		t.Fatal(err)
	}
	c = New(Options{HermesHome: home, Scandir: scandir, RuntimeDir: filepath.Join(root, "run"),
		Services: nopS6{}, Scanner: nopS6{}, Renderer: r, Log: logr.Discard(), Now: now})
	p, _, err := c.loader.LoadProfile("coder")
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s6.CreateSlot(scandir, "gateway-coder", files, false, nil); err != nil {
		t.Fatal(err)
	}
	return c, filepath.Join(dir, "gateway_state.json"), filepath.Join(scandir, "gateway-coder", "run")
}

// lookCoder looks at "coder" once, remembering what it read (as ReconcileKey does), and returns
// the actions it would take.
func lookCoder(t *testing.T, c *Controller) []string {
	t.Helper()
	r := c.openRoots()
	defer r.close()
	lk, d := c.look(r, "coder", false, c.opts.Now())
	c.commit(logr.Discard(), lk, d, Result{}, c.opts.Now())
	return actionStrings(d.Actions)
}

// change rewrites path with data the given way, then puts its mtime back, so that only the
// inode or the ctime can tell.
type change func(t *testing.T, path string, data []byte)

func keepMtime(t *testing.T, path string, f func()) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f()
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

var changes = map[string]change{
	"in-place write, same size and mtime": func(t *testing.T, path string, data []byte) {
		keepMtime(t, path, func() {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteAt(data, 0)
				f.Close()
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	},
	"rename over it, same size and mtime": func(t *testing.T, path string, data []byte) {
		keepMtime(t, path, func() {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		})
	},
	"swapped for a file made earlier with the same size and mtime": func(t *testing.T, path string, data []byte) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(filepath.Dir(path), "other")
		if err := os.WriteFile(other, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(other, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, path); err != nil {
			t.Fatal(err)
		}
	},
}

const converged = "rescan gateway-coder"

func TestCacheSeesEveryChange(t *testing.T) {
	later := func() time.Time { return time.Now().Add(time.Hour) } // every FileID is stable
	for name, ch := range changes {
		t.Run("state file: "+name, func(t *testing.T) {
			c, state, _ := cacheVolume(t, later)
			if got := lookCoder(t, c); strings.Join(got, ",") != converged {
				t.Fatalf("not converged: %v", got)
			}
			if got := lookCoder(t, c); strings.Join(got, ",") != converged {
				t.Fatalf("second look (cached): %v", got)
			}
			if ks := c.state("coder"); ks.profile == nil || !ks.profile.StateStable {
				t.Fatalf("the state file was not cached: %+v", ks.profile)
			}
			ch(t, state, []byte(`{"desired_state":"stopped"}`))
			if got := lookCoder(t, c); strings.Join(got, ",") != "mark gateway-coder +down,rescan gateway-coder" {
				t.Errorf("after the change: %v, want the new intent (down) acted on", got)
			}
		})
		t.Run("slot file: "+name, func(t *testing.T) {
			c, _, run := cacheVolume(t, later)
			lookCoder(t, c)
			if ks := c.state("coder"); ks.Files.Count() != 4 {
				t.Fatalf("slot files not cached: %v", ks.Files)
			}
			if got := lookCoder(t, c); strings.Join(got, ",") != converged {
				t.Fatalf("second look (cached): %v", got)
			}
			b, err := os.ReadFile(run)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-2] ^= 1 // same size, other bytes
			ch(t, run, b)
			if got := lookCoder(t, c); len(got) == 0 || got[0] != "update gateway-coder run" {
				t.Errorf("after the change: %v, want run rewritten", got)
			}
		})
	}
}

// TestCacheRacyWindow: a FileID taken within RacyWindow of the file's change proves nothing, so
// two writes inside one timestamp tick (same size, same mtime) are still told apart.
func TestCacheRacyWindow(t *testing.T) {
	c, state, _ := cacheVolume(t, time.Now)
	lookCoder(t, c)
	if ks := c.state("coder"); ks.profile == nil || ks.profile.StateStable {
		t.Fatalf("a just-written state file was trusted: %+v", ks.profile)
	}
	changes["in-place write, same size and mtime"](t, state, []byte(`{"desired_state":"stopped"}`))
	if got := lookCoder(t, c); strings.Join(got, ",") != "mark gateway-coder +down,rescan gateway-coder" {
		t.Errorf("after the change: %v, want the new intent (down) acted on", got)
	}
}

// TestCacheConfigGeneration: slot files known to match one rendering are compared again under
// another configuration.
func TestCacheConfigGeneration(t *testing.T) {
	c, _, _ := cacheVolume(t, func() time.Time { return time.Now().Add(time.Hour) })
	lookCoder(t, c)
	r, err := NewRenderer(Templates{}, map[string]string{"NEW": "1"}, c.opts.HermesHome, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reconfigure(Options{Renderer: r}, []string{"extraEnv"}); err != nil {
		t.Fatal(err)
	}
	if got := lookCoder(t, c); len(got) == 0 || got[0] != "update gateway-coder run" {
		t.Errorf("under a new config: %v, want run rewritten", got)
	}
}

// freshLook flushes c's memory, starts a new controller on the same runtime dir (a fresh
// `reconcile --once`), and looks at "coder" once with it.
func freshLook(t *testing.T, c *Controller) (*Controller, look, Decision) {
	t.Helper()
	c.flushMemory()
	fresh := New(c.opts)
	fresh.loadMemory()
	r := fresh.openRoots()
	defer r.close()
	lk, d := fresh.look(r, "coder", false, fresh.opts.Now())
	return fresh, lk, d
}

// TestMemorySeesEveryChange: the memory files keep the last stable reads of the state file and
// of supervise/status, so a fresh process reads neither while its FileID holds; any change made
// between the two processes is still seen by the fresh one.
func TestMemorySeesEveryChange(t *testing.T) {
	later := func() time.Time { return time.Now().Add(time.Hour) } // every FileID is stable
	// 35-byte status files stamped 2017-01-01 (TAI64: 2^62 + 37 s + the Unix time), no pid,
	// want down and want up.
	down := make([]byte, 35)
	binary.BigEndian.PutUint64(down, 1<<62+37+1483228800)
	up := slices.Clone(down)
	up[34] = 1 << 2
	withStatus := func(t *testing.T, c *Controller) string {
		sup := filepath.Join(c.opts.Scandir, "gateway-coder", "supervise")
		if err := os.Mkdir(sup, 0o700); err != nil {
			t.Fatal(err)
		}
		status := filepath.Join(sup, "status")
		if err := os.WriteFile(status, down, 0o644); err != nil {
			t.Fatal(err)
		}
		return status
	}
	t.Run("unchanged: neither is read", func(t *testing.T) {
		c, state, _ := cacheVolume(t, later)
		status := withStatus(t, c)
		lookCoder(t, c)
		ws, wt := hostile.WatchOpens(t, state), hostile.WatchOpens(t, status)
		fresh, lk, d := freshLook(t, c)
		if ks := fresh.state("coder"); ks.State == nil || ks.Status == nil {
			t.Fatalf("not kept in the memory: %+v %+v", ks.State, ks.Status)
		}
		if n := ws.Events() + wt.Events(); n != 0 {
			t.Errorf("%d opens or reads of the state or status file", n)
		}
		if lk.Profile == nil || lk.Profile.Intent != desired.Up || lk.Slot == nil || lk.Slot.Supervision.Status.WantUp {
			t.Errorf("the kept reads were not used: %+v %+v", lk.Profile, lk.Slot)
		}
		if len(d.Actions) == 0 {
			t.Errorf("no actions for a wanted-down gateway of an Up profile")
		}
	})
	for name, ch := range changes {
		t.Run("state file: "+name, func(t *testing.T) {
			c, state, _ := cacheVolume(t, later)
			lookCoder(t, c)
			ch(t, state, []byte(`{"desired_state":"stopped"}`))
			_, lk, _ := freshLook(t, c)
			if lk.Profile == nil || lk.Profile.Intent != desired.Down {
				t.Errorf("after the change: %+v, want the new intent (down)", lk.Profile)
			}
		})
		t.Run("status: "+name, func(t *testing.T) {
			c, _, _ := cacheVolume(t, later)
			status := withStatus(t, c)
			lookCoder(t, c)
			ch(t, status, up)
			_, lk, _ := freshLook(t, c)
			if lk.Slot == nil || !lk.Slot.Supervision.Status.WantUp {
				t.Errorf("after the change: %+v, want the new status (want up)", lk.Slot)
			}
		})
	}
}

// TestStatusMemoOutlivesAnUnstableRead: a key keeps its last stable supervise/status read for
// its memory file (taken from its supervisor read, not copied), and a later read too recent to
// be stable does not lose it.
func TestStatusMemoOutlivesAnUnstableRead(t *testing.T) {
	now := time.Now().Add(time.Hour) // every FileID is stable
	c, _, _ := cacheVolume(t, func() time.Time { return now })
	sup := filepath.Join(c.opts.Scandir, "gateway-coder", "supervise")
	status := filepath.Join(sup, "status")
	raw := make([]byte, 35)
	binary.BigEndian.PutUint64(raw, 1<<62+37+1483228800) // 2017-01-01, no pid, want down
	if err := os.Mkdir(sup, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(status, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	lookCoder(t, c)
	ks := c.state("coder")
	stable, ok := ks.statusMemoID()
	if !ok || ks.Status != nil {
		t.Fatalf("stable read: memo %v, kept copy %+v; want a memo from the supervisor read only", ok, ks.Status)
	}

	raw[34] = 1 << 2 // want up, rewritten just now: not stable yet
	if err := os.Remove(status); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(status, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	now = time.Now()
	lookCoder(t, c)
	ks = c.state("coder")
	if ks.sup == nil || !ks.sup.Status.WantUp || ks.sup.HasMemo() {
		t.Fatalf("unstable read: %+v, want want-up without a memo", ks.sup)
	}
	if got, ok := ks.statusMemoID(); !ok || got != stable {
		t.Fatalf("memo after an unstable read: %+v %v, want the stable %+v", got, ok, stable)
	}
	fresh, _, _ := freshLook(t, c)
	if m := fresh.state("coder").Status; m == nil || m.ID != stable {
		t.Errorf("memory file's status: %+v, want the stable read %+v", m, stable)
	}
}

// TestUnchangedProfileReadIsKept: a look that reads the same profile as the key keeps keeps
// that read (no copy a look), and a changed one replaces it.
func TestUnchangedProfileReadIsKept(t *testing.T) {
	later := func() time.Time { return time.Now().Add(time.Hour) } // every FileID is stable
	c, state, _ := cacheVolume(t, later)
	lookCoder(t, c)
	first := c.state("coder").profile
	lookCoder(t, c)
	if again := c.state("coder").profile; first == nil || again != first {
		t.Fatalf("unchanged profile: kept %p, then %p; want the same read", first, again)
	}
	if err := os.WriteFile(state, []byte(`{"desired_state":"stopped"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	lookCoder(t, c)
	if p := c.state("coder").profile; p == first || p == nil || p.Intent != desired.Down {
		t.Errorf("changed profile: %+v, want a new read with intent down", p)
	}
	if first.Intent != desired.Up {
		t.Errorf("the earlier read was modified: %+v", first)
	}
}
