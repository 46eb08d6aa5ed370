package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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

// raceSwapper runs, in its own goroutine until stop, an attacker who keeps exchanging dir/name
// with dir/spare (renameat2 RENAME_EXCHANGE) and, when the controller has unlinked one of them,
// puts it back with refill.
type raceSwapper struct {
	done  atomic.Bool
	swaps atomic.Int64
	wg    sync.WaitGroup
}

func startSwapper(t *testing.T, dir, name, spare string, refill func(dirfd int, name string) error) *raceSwapper {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := &raceSwapper{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer d.Close()
		fd := int(d.Fd())
		for !s.done.Load() {
			for _, n := range []string{name, spare} {
				if err := unix.Fstatat(fd, n, new(unix.Stat_t), unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) && refill != nil {
					if err := refill(fd, n); err != nil && !errors.Is(err, unix.EEXIST) {
						t.Errorf("refill %s: %v", n, err)
						return
					}
				}
			}
			err := unix.Renameat2(fd, name, fd, spare, unix.RENAME_EXCHANGE)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("exchange %s and %s: %v", name, spare, err)
				return
			}
			if err == nil {
				s.swaps.Add(1)
			}
		}
	}()
	return s
}

func (s *raceSwapper) stop() int64 {
	s.done.Store(true)
	s.wg.Wait()
	return s.swaps.Load()
}

// treeState describes every entry under root (path, type, mode, inode, size, content).
func treeState(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o ino=%d size=%d nlink=%d", p, st.Mode, st.Ino, st.Size, st.Nlink)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" data=%q", b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func sameTree(t *testing.T, what string, before, after []string) {
	t.Helper()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("%s changed:\nbefore %q\nafter  %q", what, before, after)
	}
}

func refillFile(data string) func(int, string) error {
	return func(fd int, name string) error {
		f, err := unix.Openat(fd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		_, err = unix.Write(f, []byte(data))
		unix.Close(f)
		return err
	}
}

func refillLink(target string) func(int, string) error {
	return func(fd int, name string) error { return unix.Symlinkat(target, fd, name) }
}

// TestCleanStaleRaceSwaps: while gateway.pid and processes.json (in a profile and in the root)
// are swapped between regular files and symlinks to files outside the volume, and the profile
// directory between itself and a symlink to an outside directory holding the same names, the
// boot-pass cleanup never removes or changes anything outside the volume.
func TestCleanStaleRaceSwaps(t *testing.T) {
	home, outside := t.TempDir(), t.TempDir()
	pdir := filepath.Join(home, "profiles", "p")
	outDir := filepath.Join(outside, "p")
	for _, n := range staleFileNames {
		secWrite(t, filepath.Join(outDir, n), "outside "+n+"\n", 0o644)
		secWrite(t, filepath.Join(outside, "root-"+n), "outside root "+n+"\n", 0o644)
		secWrite(t, filepath.Join(pdir, n), "123\n", 0o644)
		secWrite(t, filepath.Join(home, n), "123\n", 0o644)
	}
	before := treeState(t, outside)

	var swappers []*raceSwapper
	for _, n := range staleFileNames {
		swappers = append(swappers,
			startSwapper(t, pdir, n, "."+n+"-link", func(fd int, name string) error {
				if name == n {
					return refillFile("123\n")(fd, name)
				}
				return refillLink(filepath.Join(outDir, n))(fd, name)
			}),
			startSwapper(t, home, n, "."+n+"-link", func(fd int, name string) error {
				if name == n {
					return refillFile("123\n")(fd, name)
				}
				return refillLink(filepath.Join(outside, "root-"+n))(fd, name)
			}))
	}
	if err := os.Symlink(outDir, filepath.Join(home, "profiles", ".p-link")); err != nil {
		t.Fatal(err)
	}
	swappers = append(swappers, startSwapper(t, filepath.Join(home, "profiles"), "p", ".p-link", nil))

	var removed, failed int
	deadline := time.Now().Add(raceBudget)
	for i := 0; i < raceIterations && time.Now().Before(deadline); i++ {
		for _, key := range []string{"p", "default"} {
			r, err := CleanStaleProfile(home, key)
			removed += len(r)
			if err != nil {
				failed++
			}
			for _, p := range r {
				if dir := filepath.Dir(p); dir != pdir && dir != home {
					t.Fatalf("removed %s, outside the profile directories", p)
				}
			}
		}
	}
	var swaps int64
	for _, s := range swappers {
		swaps += s.stop()
	}
	t.Logf("%d stale files removed, %d calls refused something; %d swaps", removed, failed, swaps)
	sameTree(t, "the outside tree", before, treeState(t, outside))
}

// TestAppendBootLogRaceSwaps: while logs/ is swapped with a symlink to an outside directory, and
// container-boot.log with a symlink to an outside file and with a hard link to a root-owned
// file, the boot log is only ever appended to the controller's own log: nothing outside changes.
func TestAppendBootLogRaceSwaps(t *testing.T) {
	home, outside := t.TempDir(), t.TempDir()
	logs := filepath.Join(home, LogsDirName)
	outLogs := filepath.Join(outside, "logs")
	secWrite(t, filepath.Join(outLogs, BootLogName), "outside log\n", 0o644)
	secWrite(t, filepath.Join(outside, "passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	shadow := filepath.Join(outside, "shadow")
	secWrite(t, shadow, "root:*:1:0:99999:7:::\n", 0o600)
	rootOwned(t, shadow)
	secWrite(t, filepath.Join(logs, BootLogName), "", 0o644)
	// The hard link lives in the volume (an attacker can only make it where it can write); it is
	// part of the outside file, whose content must not change.
	if err := os.Link(shadow, filepath.Join(logs, ".log-hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "passwd"), filepath.Join(logs, ".log-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outLogs, filepath.Join(home, ".logs-link")); err != nil {
		t.Fatal(err)
	}
	before := treeState(t, outside)
	swappers := []*raceSwapper{
		startSwapper(t, home, LogsDirName, ".logs-link", nil),
		startSwapper(t, logs, BootLogName, ".log-link", nil),
		startSwapper(t, logs, BootLogName, ".log-hard", nil),
	}
	var ok, refused int
	deadline := time.Now().Add(raceBudget)
	for i := 0; i < raceIterations && time.Now().Before(deadline); i++ {
		if err := AppendBootLog(home, []string{fmt.Sprintf("line %d", i)}); err != nil {
			refused++
		} else {
			ok++
		}
	}
	var swaps int64
	for _, s := range swappers {
		swaps += s.stop()
	}
	t.Logf("%d appends, %d refused; %d swaps", ok, refused, swaps)
	after := treeState(t, outside)
	// Link counts of the shadow file stay 2: the hard link in the volume is never removed
	// either; only sizes and contents matter, and those must be identical.
	sameTree(t, "the outside tree", before, after)
}
