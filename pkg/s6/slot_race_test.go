package s6_test

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

	"github.com/hermes/profile-controller/pkg/s6"
)

// TestCreateSlotRacePlantedStaging: while an attacker keeps planting .gateway-x.tmp (a symlink
// to an outside directory, or a directory of its own whose run, log and supervise are symlinks
// to the outside, moved in with RENAME_NOREPLACE so it never disturbs an entry it does not own),
// CreateSlot either fails cleanly or publishes a slot holding exactly its own files; nothing
// outside the scandir ever changes. 2,000 rounds or 5 s.
func TestCreateSlotRacePlantedStaging(t *testing.T) {
	parent := t.TempDir()
	sd := filepath.Join(parent, "scandir")
	attic := filepath.Join(parent, "attic") // the attacker's workshop, same file system
	for _, d := range []string{sd, attic} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outside := secOutside(t)
	before := secTree(t, outside)
	staging := s6.StagingName("gateway-x")

	var (
		done   atomic.Bool
		plants atomic.Int64
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		sfd, err := unix.Open(sd, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(sfd)
		for i := 0; !done.Load(); i++ {
			if i%2 == 0 {
				if err := unix.Symlinkat(outside, sfd, staging); err == nil {
					plants.Add(1)
				}
				continue
			}
			// Prepare a hostile directory, then move it in only if the name is free.
			prep := filepath.Join(attic, fmt.Sprintf("d%d", i))
			if err := os.Mkdir(prep, 0o777); err != nil {
				t.Error(err)
				return
			}
			for _, n := range []string{"run", "log", "supervise", "down"} {
				if err := os.Symlink(filepath.Join(outside, n), filepath.Join(prep, n)); err != nil {
					t.Error(err)
					return
				}
			}
			afd, err := unix.Open(attic, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			err = unix.Renameat2(afd, filepath.Base(prep), sfd, staging, unix.RENAME_NOREPLACE)
			unix.Close(afd)
			if err == nil {
				plants.Add(1)
			} else if !errors.Is(err, unix.EEXIST) {
				t.Error(err)
				return
			} else {
				_ = os.RemoveAll(prep)
			}
		}
	}()

	var created, failed int
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
		if err := s6.CreateSlot(sd, "gateway-x", secFiles, i%2 == 0, nil); err != nil {
			failed++
			continue
		}
		created++
		secCheckSlot(t, filepath.Join(sd, "gateway-x"), secFiles)
		if err := s6.RemoveSlot(sd, "gateway-x"); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d slots created, %d creates failed; %d plants", created, failed, plants.Load())
	if created == 0 {
		t.Error("no create ever succeeded: the test shows nothing")
	}
	if after := secTree(t, outside); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("outside changed:\nbefore %q\nafter  %q", before, after)
	}
	// Whatever is left of the attacker's plants is its own business; no slot remains.
	if _, err := os.Lstat(filepath.Join(sd, "gateway-x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gateway-x left behind: %v", err)
	}
}
