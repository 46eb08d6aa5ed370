package s6

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

type skelEntry struct {
	mode     os.FileMode
	uid, gid int
}

func skelStat(t *testing.T, p string) skelEntry {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return skelEntry{fi.Mode(), int(st.Uid), int(st.Gid)}
}

// skelGID is a group the skeleton can be given: another one as root, our own otherwise.
func skelGID() int {
	if os.Geteuid() == 0 {
		return 10077
	}
	return os.Getegid()
}

func wantSkeleton(t *testing.T, d string, gid int) {
	t.Helper()
	uid := os.Geteuid()
	for name, mode := range map[string]os.FileMode{
		"event":             os.ModeDir | os.ModeSetgid | os.ModeSticky | 0o730,
		"supervise":         os.ModeDir | 0o710,
		"supervise/control": os.ModeNamedPipe | 0o620,
	} {
		want := skelEntry{mode, uid, gid}
		if got := skelStat(t, filepath.Join(d, name)); got != want {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
}

func openSkelDir(t *testing.T, p string) *safefs.Dir {
	t.Helper()
	d, err := safefs.OpenDir(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestSkeletonSecurityIdempotent: running makeSkeleton again is a no-op on a correct skeleton and
// repairs owners and modes that drifted, through descriptors; the uid in Owner owns nothing.
func TestSkeletonSecurityIdempotent(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	d := openSkelDir(t, dir)
	gid := skelGID()
	o := Owner{UID: 4242, GID: gid}
	if err := makeSkeleton(d, o); err != nil {
		t.Fatal(err)
	}
	wantSkeleton(t, dir, gid)
	if err := makeSkeleton(d, o); err != nil {
		t.Fatalf("second makeSkeleton: %v", err)
	}
	wantSkeleton(t, dir, gid)

	// Drift: modes opened up, and (as root) the group taken away.
	for name, mode := range map[string]os.FileMode{"event": 0o777, "supervise": 0o777, "supervise/control": 0o666} {
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Lchown(filepath.Join(dir, name), 0, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := makeSkeleton(d, o); err != nil {
		t.Fatalf("makeSkeleton over drift: %v", err)
	}
	wantSkeleton(t, dir, gid)
}

// TestSkeletonSecurityRefusesPlantedEntries: an entry of the wrong type, or a symlink, where the
// skeleton goes is an error and neither it nor what it points to is chowned or chmodded.
func TestSkeletonSecurityRefusesPlantedEntries(t *testing.T) {
	outside := t.TempDir()
	victimDir := filepath.Join(outside, "dir")
	victimFile := filepath.Join(outside, "file")
	if err := os.Mkdir(victimDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victimFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := []skelEntry{skelStat(t, victimDir), skelStat(t, victimFile)}

	tests := []struct {
		name  string
		plant func(t *testing.T, dir string)
	}{
		{"supervise is a symlink to a dir", func(t *testing.T, dir string) {
			if err := os.Symlink(victimDir, filepath.Join(dir, "supervise")); err != nil {
				t.Fatal(err)
			}
		}},
		{"event is a symlink to a dir", func(t *testing.T, dir string) {
			if err := os.Symlink(victimDir, filepath.Join(dir, "event")); err != nil {
				t.Fatal(err)
			}
		}},
		{"supervise is a file", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "supervise"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"control is a symlink to a file", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "supervise"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victimFile, filepath.Join(dir, "supervise", "control")); err != nil {
				t.Fatal(err)
			}
		}},
		{"control is a regular file", func(t *testing.T, dir string) {
			if err := os.Mkdir(filepath.Join(dir, "supervise"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "supervise", "control"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.plant(t, dir)
			if err := makeSkeleton(openSkelDir(t, dir), Owner{UID: 1, GID: skelGID()}); err == nil {
				t.Fatal("makeSkeleton accepted a planted entry")
			}
			if got := []skelEntry{skelStat(t, victimDir), skelStat(t, victimFile)}; got[0] != before[0] || got[1] != before[1] {
				t.Errorf("a target outside was changed: %+v, was %+v", got, before)
			}
			if fi, err := os.Lstat(filepath.Join(dir, "supervise", "control")); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() != 0o600 {
				t.Errorf("a regular file named control was chmodded to %v", fi.Mode())
			}
		})
	}
}

// TestSkeletonSecurityNeverBlocksOnControl: reusing the control FIFO opens it O_NONBLOCK, so a
// FIFO without a writer (or a reader) never blocks makeSkeleton.
func TestSkeletonSecurityNeverBlocksOnControl(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "supervise"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "supervise", "control"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := openSkelDir(t, dir)
	done := make(chan error, 1)
	go func() { done <- makeSkeleton(d, Owner{GID: skelGID()}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("makeSkeleton blocked on the control FIFO")
	}
	wantSkeleton(t, dir, skelGID())
}
