package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// raceIterations and raceBudget bound every swap race: this many reads, or this long.
const (
	raceIterations = 2000
	raceBudget     = 5 * time.Second
)

// swapper atomically exchanges name with each of the others in turn (renameat2 RENAME_EXCHANGE),
// as fast as it can, until stop is called. Inodes keep their identity across the exchange.
func swapper(t *testing.T, dir, name string, others ...string) (stop func() int) {
	t.Helper()
	d := openTestDir(t, dir)
	var (
		done  atomic.Bool
		swaps atomic.Int64
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !done.Load(); i++ {
			o := others[i%len(others)]
			// Twice: name holds the swapped-in entry in between, then gets its own back.
			for range 2 {
				if err := unix.Renameat2(d.FD(), name, d.FD(), o, unix.RENAME_EXCHANGE); err != nil {
					t.Errorf("exchange %s and %s: %v", name, o, err)
					return
				}
				swaps.Add(1)
			}
		}
	}()
	return func() int {
		done.Store(true)
		wg.Wait()
		return int(swaps.Load())
	}
}

// TestSafefsRaceReadFileSwaps: while gateway_state.json is swapped between a regular file, a
// symlink to a root-only sentinel and a device (or a FIFO without root), ReadFile returns the
// regular file's bytes or an error, never the sentinel's; never blocks; and never opens the
// device or the FIFO.
func TestSafefsRaceReadFileSwaps(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(sentinel), 0o600); err != nil {
		t.Fatal(err)
	}
	const regular = `{"desired_state":"running"}`
	name := "gateway_state.json"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(regular), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	special := filepath.Join(dir, "special")
	if os.Geteuid() == 0 && unix.Mknod(special, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) == nil {
		t.Log("special file: a character device (1,3)")
	} else if err := unix.Mkfifo(special, 0o666); err != nil {
		t.Fatal(err)
	}
	w := watchOpens(t, special)
	d := openTestDir(t, dir)

	stop := swapper(t, dir, name, "link", "special")
	var ok, refused int
	deadline := time.Now().Add(raceBudget)
	within(t, func() {
		for i := 0; i < raceIterations && time.Now().Before(deadline); i++ {
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
		}
	})
	swaps := stop()
	t.Logf("%d reads of the regular file, %d refused, %d swaps", ok, refused, swaps)
	if n := w.events(); n != 0 {
		t.Errorf("the special file was opened or read %d times", n)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != sentinel {
		t.Errorf("sentinel changed: %q, %v", b, err)
	}
}
