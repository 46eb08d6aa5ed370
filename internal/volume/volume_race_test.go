package volume

import (
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/hostile"
)

// refillFile puts back a regular file holding data (O_EXCL: never over an entry that came back).
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

// swapStale is an attacker on dir that keeps exchanging the stale file n with a symlink to
// target, putting back whichever of the two the cleanup unlinked.
func swapStale(t *testing.T, dir, n, target string) func() int64 {
	return hostile.Swap{Dir: dir, Name: n, Spares: []string{"." + n + "-link"}, Refill: func(fd int, name string) error {
		if name == n {
			return refillFile("123\n")(fd, name)
		}
		return refillLink(target)(fd, name)
	}}.Start(t)
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
		hostile.WriteFile(t, filepath.Join(outDir, n), "outside "+n+"\n", 0o644)
		hostile.WriteFile(t, filepath.Join(outside, "root-"+n), "outside root "+n+"\n", 0o644)
		hostile.WriteFile(t, filepath.Join(pdir, n), "123\n", 0o644)
		hostile.WriteFile(t, filepath.Join(home, n), "123\n", 0o644)
	}
	before := hostile.Tree(t, outside)

	var stops []func() int64
	for _, n := range staleFileNames {
		stops = append(stops,
			swapStale(t, pdir, n, filepath.Join(outDir, n)),
			swapStale(t, home, n, filepath.Join(outside, "root-"+n)))
	}
	hostile.Symlink(t, outDir, filepath.Join(home, "profiles", ".p-link"))
	stops = append(stops, hostile.Swap{Dir: filepath.Join(home, "profiles"), Name: "p", Spares: []string{".p-link"}}.Start(t))

	var removed, failed int
	hostile.Rounds(func(int) bool {
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
		return true
	})
	swaps := hostile.StopAll(stops)
	t.Logf("%d stale files removed, %d calls refused something; %d swaps", removed, failed, swaps)
	hostile.SameTree(t, "the outside tree", before, hostile.Tree(t, outside))
}

// TestAppendBootLogRaceSwaps: while logs/ is swapped with a symlink to an outside directory, and
// container-boot.log with a symlink to an outside file and with a hard link to a root-owned
// file, the boot log is only ever appended to the controller's own log: nothing outside changes.
func TestAppendBootLogRaceSwaps(t *testing.T) {
	home, outside := t.TempDir(), t.TempDir()
	logs := filepath.Join(home, LogsDirName)
	outLogs := filepath.Join(outside, "logs")
	hostile.WriteFile(t, filepath.Join(outLogs, BootLogName), "outside log\n", 0o644)
	hostile.WriteFile(t, filepath.Join(outside, "passwd"), "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	shadow := filepath.Join(outside, "shadow")
	hostile.WriteFile(t, shadow, "root:*:1:0:99999:7:::\n", 0o600)
	hostile.RootOwned(t, shadow)
	hostile.WriteFile(t, filepath.Join(logs, BootLogName), "", 0o644)
	// The hard link lives in the volume (an attacker can only make it where it can write); it is
	// part of the outside file, whose content must not change.
	hostile.Link(t, shadow, filepath.Join(logs, ".log-hard"))
	hostile.Symlink(t, filepath.Join(outside, "passwd"), filepath.Join(logs, ".log-link"))
	hostile.Symlink(t, outLogs, filepath.Join(home, ".logs-link"))
	before := hostile.Tree(t, outside)
	// The log may be rotated away under an exchange: a missing side of it is no error. The attackers
	// inside logs/ start first, while logs/ is still the real directory (Start does not follow a
	// symlink to the directory it attacks).
	stops := []func() int64{
		hostile.Swap{Dir: logs, Name: BootLogName, Spares: []string{".log-link"}, MayVanish: true}.Start(t),
		hostile.Swap{Dir: logs, Name: BootLogName, Spares: []string{".log-hard"}, MayVanish: true}.Start(t),
		hostile.Swap{Dir: home, Name: LogsDirName, Spares: []string{".logs-link"}}.Start(t),
	}
	var ok, refused int
	hostile.Rounds(func(i int) bool {
		if err := AppendBootLog(home, []string{fmt.Sprintf("line %d", i)}); err != nil {
			refused++
		} else {
			ok++
		}
		return true
	})
	swaps := hostile.StopAll(stops)
	t.Logf("%d appends, %d refused; %d swaps", ok, refused, swaps)
	// Link counts of the shadow file stay 2: the hard link in the volume is never removed
	// either; sizes and contents must be identical too.
	hostile.SameTree(t, "the outside tree", before, hostile.Tree(t, outside))
}
