package s6_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/hostile"
	"github.com/hermes/profile-controller/pkg/s6"
)

// TestCreateSlotRacePlantedStaging: while an attacker keeps planting .gateway-x.tmp (a symlink
// to an outside directory, or a directory of its own whose run, log and supervise are symlinks
// to the outside, moved in with RENAME_NOREPLACE so it never disturbs an entry it does not own),
// CreateSlot either fails cleanly or publishes a slot holding exactly its own files; nothing
// outside the scandir ever changes. hostile.MaxRounds rounds or hostile.Budget.
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
	before := hostile.Tree(t, outside)
	staging := s6.StagingName("gateway-x")

	sfd, err := unix.Open(sd, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sfd) }) // after the attacker stops: Attack's cleanup runs first
	stop := hostile.Attack(t, func(i int) (bool, error) {
		if i%2 == 0 {
			return unix.Symlinkat(outside, sfd, staging) == nil, nil
		}
		// Prepare a hostile directory, then move it in only if the name is free.
		prep := filepath.Join(attic, fmt.Sprintf("d%d", i))
		if err := os.Mkdir(prep, 0o777); err != nil {
			return false, err
		}
		for _, n := range []string{"run", "log", "supervise", "down"} {
			if err := os.Symlink(filepath.Join(outside, n), filepath.Join(prep, n)); err != nil {
				return false, err
			}
		}
		afd, err := unix.Open(attic, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, err
		}
		err = unix.Renameat2(afd, filepath.Base(prep), sfd, staging, unix.RENAME_NOREPLACE)
		unix.Close(afd)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EEXIST):
			return false, os.RemoveAll(prep)
		default:
			return false, err
		}
	})

	var created, failed int
	hostile.Rounds(func(i int) bool {
		if err := s6.CreateSlot(sd, "gateway-x", secFiles, i%2 == 0, nil); err != nil {
			failed++
			return true
		}
		created++
		secCheckSlot(t, filepath.Join(sd, "gateway-x"), secFiles)
		if err := s6.RemoveSlot(sd, "gateway-x"); err != nil {
			t.Fatal(err)
		}
		return true
	})
	plants := stop()
	t.Logf("%d slots created, %d creates failed; %d plants", created, failed, plants)
	if created == 0 {
		t.Error("no create ever succeeded: the test shows nothing")
	}
	hostile.SameTree(t, "outside", before, hostile.Tree(t, outside))
	// Whatever is left of the attacker's plants is its own business; no slot remains.
	if _, err := os.Lstat(filepath.Join(sd, "gateway-x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("gateway-x left behind: %v", err)
	}
}
