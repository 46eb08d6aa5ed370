package desired

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hermes/profile-controller/internal/hostile"
)

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
	outState := hostile.NewSentinel(t, filepath.Join(outside, "p", StateFileName), outsideState)
	outSoul := hostile.NewSentinel(t, filepath.Join(outside, "p", SoulFileName), "# outside\n")
	rootState := hostile.NewSentinel(t, filepath.Join(outside, "root-state.json"), outsideState)

	profiles := filepath.Join(home, ProfilesDirName)
	pdir := filepath.Join(profiles, "p")
	writeFile(t, filepath.Join(pdir, SoulFileName), "# p\n")
	writeFile(t, filepath.Join(pdir, StateFileName), realState)
	writeFile(t, filepath.Join(home, StateFileName), realState)
	// Spares: symlinks to the outside, and a special file. Dot names, so Load ignores them.
	for link, target := range map[string]string{
		filepath.Join(pdir, ".state-link"):   outState.Path,
		filepath.Join(pdir, ".soul-link"):    outSoul.Path,
		filepath.Join(profiles, ".dir-link"): filepath.Join(outside, "p"),
		filepath.Join(home, ".state-link"):   rootState.Path,
	} {
		hostile.Symlink(t, target, link)
	}
	special := filepath.Join(home, ".special")
	hostile.DeviceOrFIFO(t, special)
	watch := hostile.WatchOpens(t, special)

	// The attackers inside pdir start before the one that swaps pdir itself away.
	stops := []func() int64{
		hostile.Swap{Dir: pdir, Name: StateFileName, Spares: []string{".state-link"}}.Start(t),
		hostile.Swap{Dir: pdir, Name: SoulFileName, Spares: []string{".soul-link"}}.Start(t),
		hostile.Swap{Dir: profiles, Name: "p", Spares: []string{".dir-link"}}.Start(t),
		hostile.Swap{Dir: home, Name: StateFileName, Spares: []string{".state-link"}}.Start(t),
		hostile.Swap{Dir: home, Name: StateFileName, Spares: []string{".special"}}.Start(t),
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
	hostile.Within(t, hostile.Budget+30*time.Second, func() {
		hostile.Rounds(func(int) bool {
			st := Loader{Home: home}.Load()
			for _, p := range st.Profiles {
				if bad = check(p); bad != "" {
					return false
				}
			}
			if p, _, err := (Loader{Home: home}).LoadProfile("p"); err == nil {
				bad = check(p)
				loaded++
			} else {
				refused++
			}
			return bad == ""
		})
	})
	if bad != "" {
		t.Error(bad)
	}
	swaps := hostile.StopAll(stops)
	t.Logf("LoadProfile: %d loaded, %d refused; %d swaps", loaded, refused, swaps)
	if n := watch.Events(); n != 0 {
		t.Errorf("the special file was opened %d times", n)
	}
	for _, s := range []*hostile.Sentinel{outState, outSoul, rootState} {
		s.Check(t)
	}
}
