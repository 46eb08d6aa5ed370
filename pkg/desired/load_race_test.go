package desired

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every swap race runs at most raceIterations rounds or raceBudget, whichever ends first.
const (
	raceIterations = 2000
	raceBudget     = 5 * time.Second
)

// raceSwap exchanges dir/name with dir/spare (renameat2 RENAME_EXCHANGE: atomic, both names
// always exist) as fast as it can, in its own goroutine, until the returned stop is called.
// An exchange that fails because one side is briefly missing is simply retried.
func raceSwap(t *testing.T, dir, name, spare string) (stop func() int64) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var (
		done  atomic.Bool
		swaps atomic.Int64
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer d.Close()
		fd := int(d.Fd())
		for !done.Load() {
			err := unix.Renameat2(fd, name, fd, spare, unix.RENAME_EXCHANGE)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("exchange %s and %s in %s: %v", name, spare, dir, err)
				return
			}
			if err == nil {
				swaps.Add(1)
			}
		}
	}()
	return func() int64 {
		done.Store(true)
		wg.Wait()
		return swaps.Load()
	}
}

// raceSentinel is a file outside the volume whose content must never be read through it and
// which must never change.
type raceSentinel struct {
	path string
	data []byte
	st   unix.Stat_t
}

func newRaceSentinel(t *testing.T, path, data string) *raceSentinel {
	t.Helper()
	secWrite(t, path, data)
	s := &raceSentinel{path: path, data: []byte(data)}
	if err := unix.Lstat(path, &s.st); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *raceSentinel) check(t *testing.T) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(s.path, &st); err != nil {
		t.Fatalf("sentinel %s: %v", s.path, err)
	}
	b, err := os.ReadFile(s.path)
	if err != nil || string(b) != string(s.data) || st.Ino != s.st.Ino || st.Mtim != s.st.Mtim || st.Mode != s.st.Mode || st.Uid != s.st.Uid {
		t.Fatalf("sentinel %s changed: %q, %v (stat %+v, was %+v)", s.path, b, err, st, s.st)
	}
}

// TestLoadRaceSwaps: while gateway_state.json, SOUL.md and the profile directory itself are
// swapped between their real selves and symlinks to look-alikes outside the volume (and the
// state file also with a special file), Load and LoadProfile never return anything read from
// outside, never block, never open the special file, and never change the outside files.
func TestLoadRaceSwaps(t *testing.T) {
	home, outside := t.TempDir(), t.TempDir()
	const (
		realState    = `{"desired_state":"stopped","gateway_state":"stopped"}`
		outsideState = `{"desired_state":"running","gateway_state":"OUTSIDE"}`
	)
	// The look-alike profile outside the volume: a valid SOUL.md and a state file whose
	// gateway_state "OUTSIDE" would show if anything were read through a link.
	outState := newRaceSentinel(t, filepath.Join(outside, "p", StateFileName), outsideState)
	outSoul := newRaceSentinel(t, filepath.Join(outside, "p", SoulFileName), "# outside\n")
	rootState := newRaceSentinel(t, filepath.Join(outside, "root-state.json"), outsideState)

	profiles := filepath.Join(home, ProfilesDirName)
	pdir := filepath.Join(profiles, "p")
	secWrite(t, filepath.Join(pdir, SoulFileName), "# p\n")
	secWrite(t, filepath.Join(pdir, StateFileName), realState)
	secWrite(t, filepath.Join(home, StateFileName), realState)
	// Spares: symlinks to the outside, and a special file. Dot names, so Load ignores them.
	for link, target := range map[string]string{
		filepath.Join(pdir, ".state-link"):   outState.path,
		filepath.Join(pdir, ".soul-link"):    outSoul.path,
		filepath.Join(profiles, ".dir-link"): filepath.Join(outside, "p"),
		filepath.Join(home, ".state-link"):   rootState.path,
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	special := filepath.Join(home, ".special")
	if os.Geteuid() == 0 {
		secSpecial(t, "device", special)
	} else {
		secSpecial(t, "fifo", special)
	}
	watch := secWatchOpens(t, special)

	stops := []func() int64{
		raceSwap(t, pdir, StateFileName, ".state-link"),
		raceSwap(t, pdir, SoulFileName, ".soul-link"),
		raceSwap(t, profiles, "p", ".dir-link"),
		raceSwap(t, home, StateFileName, ".state-link"),
		raceSwap(t, home, StateFileName, ".special"),
	}
	// check returns what is wrong with a profile Load or LoadProfile returned ("" if nothing).
	check := func(p Profile) string {
		if p.GatewayState == "OUTSIDE" || p.GatewayStateJSON == `"OUTSIDE"` || p.DesiredState == "running" {
			return fmt.Sprintf("profile %s was read from outside the volume: %+v", p.Name, p)
		}
		if want := map[string]string{DefaultProfile: home, "p": pdir}[p.Name]; p.Dir != want {
			return fmt.Sprintf("profile %s has dir %q, want %q", p.Name, p.Dir, want)
		}
		return ""
	}
	var (
		loaded, refused int
		bad             string
	)
	deadline := time.Now().Add(raceBudget)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < raceIterations && time.Now().Before(deadline) && bad == ""; i++ {
			st := Loader{Home: home}.Load()
			for _, p := range st.Profiles {
				if bad = check(p); bad != "" {
					return
				}
			}
			if p, _, err := (Loader{Home: home}).LoadProfile("p"); err == nil {
				bad = check(p)
				loaded++
			} else {
				refused++
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(raceBudget + 30*time.Second):
		t.Fatal("the loader blocked")
	}
	if bad != "" {
		t.Error(bad)
	}
	var swaps int64
	for _, stop := range stops {
		swaps += stop()
	}
	t.Logf("LoadProfile: %d loaded, %d refused; %d swaps", loaded, refused, swaps)
	if n := watch.events(); n != 0 {
		t.Errorf("the special file was opened %d times", n)
	}
	for _, s := range []*raceSentinel{outState, outSoul, rootState} {
		s.check(t)
	}
}
