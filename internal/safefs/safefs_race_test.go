package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hermes/profile-controller/internal/hostile"
)

// TestSafefsRaceReadFileSwaps: while gateway_state.json is swapped between a regular file, a
// symlink to a root-only sentinel and a device (or a FIFO without root), ReadFile returns the
// regular file's bytes or an error, never the sentinel's; never blocks; and never opens the
// device or the FIFO.
func TestSafefsRaceReadFileSwaps(t *testing.T) {
	dir := t.TempDir()
	secret := hostile.NewSentinel(t, filepath.Join(t.TempDir(), "secret"), hostile.Secret)
	const regular = `{"desired_state":"running"}`
	name := "gateway_state.json"
	hostile.WriteFile(t, filepath.Join(dir, name), regular, 0o644)
	hostile.Symlink(t, secret.Path, filepath.Join(dir, "link"))
	special := filepath.Join(dir, "special")
	t.Logf("special file: a %s", hostile.DeviceOrFIFO(t, special))
	w := hostile.WatchOpens(t, special)
	d := openTestDir(t, dir)

	stop := hostile.Swap{Dir: dir, Name: name, Spares: []string{"link", "special"}}.Start(t)
	var ok, refused int
	hostile.Within(t, blockLimit, func() {
		hostile.Rounds(func(int) bool {
			b, _, err := d.ReadFile(name, 1<<20)
			switch {
			case err == nil && string(b) == regular:
				ok++
			case err == nil:
				t.Errorf("read %q, want %q or an error", b, regular)
			case errors.Is(err, ErrSymlink), errors.Is(err, ErrNotRegular), errors.Is(err, os.ErrNotExist):
				refused++
			default:
				t.Errorf("unexpected error: %v", err)
			}
			return true
		})
	})
	swaps := stop()
	t.Logf("%d reads of the regular file, %d refused, %d swaps", ok, refused, swaps)
	if n := w.Events(); n != 0 {
		t.Errorf("the special file was opened or read %d times", n)
	}
	secret.Check(t)
}
