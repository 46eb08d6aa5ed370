package volume

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/hostile"
)

// secStat is lstat of path, failing the test if it fails.
func secStat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCleanStaleSecurityHardLinks: a gateway.pid or processes.json that is a hard link to a
// root-owned file is unlinked like any regular file. That only removes the name in the profile
// directory: the other name and the file's content are untouched (unlink never writes to an
// inode). So a hard link cannot make the boot pass destroy a file outside the volume.
func TestCleanStaleSecurityHardLinks(t *testing.T) {
	home, outside := t.TempDir(), t.TempDir()
	pdir := filepath.Join(home, "profiles", "p")
	for _, n := range staleFileNames {
		target := filepath.Join(outside, n+".system")
		hostile.WriteFile(t, target, "root's "+n+"\n", 0o600)
		hostile.RootOwned(t, target)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			t.Fatal(err)
		}
		hostile.Link(t, target, filepath.Join(pdir, n))
		hostile.Link(t, target, filepath.Join(home, n))
	}
	for _, key := range []string{"p", "default"} {
		removed, err := CleanStaleProfile(home, key)
		if err != nil || len(removed) != 2 {
			t.Fatalf("CleanStaleProfile(%s) = %v, %v; want both names removed", key, removed, err)
		}
	}
	for _, n := range staleFileNames {
		target := filepath.Join(outside, n+".system")
		b, err := os.ReadFile(target)
		if err != nil || string(b) != "root's "+n+"\n" {
			t.Errorf("%s: %q, %v; want it intact", target, b, err)
		}
		st := secStat(t, target)
		if st.Nlink != 1 || st.Mode&0o7777 != 0o600 || (os.Geteuid() == 0 && st.Uid != 0) {
			t.Errorf("%s: nlink %d mode %o uid %d; want 1, 0600, root", target, st.Nlink, st.Mode&0o7777, st.Uid)
		}
	}
}

// TestCleanStaleSecuritySpecialFiles: a FIFO, socket or device as gateway.pid is never opened,
// and left in place (only regular files are unlinked).
func TestCleanStaleSecuritySpecialFiles(t *testing.T) {
	dir := hostile.ShortTempDir(t)
	pid := filepath.Join(dir, "gateway.pid")
	kind := hostile.DeviceOrFIFO(t, pid)
	w := hostile.WatchOpens(t, pid)
	removed, err := CleanStaleProfile(dir, "default")
	if len(removed) != 0 || err == nil {
		t.Fatalf("CleanStaleProfile = %v, %v; want nothing removed and an error", removed, err)
	}
	if n := w.Events(); n != 0 {
		t.Errorf("the special file (a %s) was opened %d times", kind, n)
	}
	if _, err := os.Lstat(pid); err != nil {
		t.Errorf("special file removed: %v", err)
	}
}

// TestAppendBootLogSecurityHardLink: a boot log that is a hard link to a root-owned file is
// refused: appending would write into that file.
func TestAppendBootLogSecurityHardLink(t *testing.T) {
	home, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "shadow")
	const content = "root:*:20000:0:99999:7:::\n"
	hostile.WriteFile(t, target, content, 0o600)
	hostile.RootOwned(t, target)
	if err := os.MkdirAll(filepath.Join(home, LogsDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	hostile.Link(t, target, filepath.Join(home, LogsDirName, BootLogName))
	err := AppendBootLog(home, []string{"x"})
	if err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Fatalf("AppendBootLog = %v, want a hard-link refusal", err)
	}
	if b, _ := os.ReadFile(target); string(b) != content {
		t.Errorf("target changed: %q", b)
	}
	// The same at the rotation size: the file is neither appended to nor rotated.
	if err := os.Truncate(target, BootLogRotateSize); err != nil {
		t.Fatal(err)
	}
	if err := AppendBootLog(home, []string{"x"}); err == nil {
		t.Fatal("AppendBootLog appended to a hard link at the rotation size")
	}
	if _, err := os.Lstat(filepath.Join(home, LogsDirName, RotatedBootLogName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a hard-linked log was rotated: %v", err)
	}
	if st := secStat(t, target); st.Size != BootLogRotateSize || st.Nlink != 2 {
		t.Errorf("target: size %d nlink %d", st.Size, st.Nlink)
	}
}

// TestAppendBootLogSecuritySpecialFiles: a device, socket or FIFO as the boot log is refused
// without ever being opened for writing.
func TestAppendBootLogSecuritySpecialFiles(t *testing.T) {
	for _, kind := range []hostile.Kind{hostile.Device, hostile.FIFO, hostile.Socket} {
		t.Run(string(kind), func(t *testing.T) {
			home := hostile.ShortTempDir(t)
			if err := os.Mkdir(filepath.Join(home, LogsDirName), 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(home, LogsDirName, BootLogName)
			hostile.Special(t, kind, p)
			w := hostile.WatchOpens(t, p)
			if err := within(t, func() error { return AppendBootLog(home, []string{"x"}) }); err == nil {
				t.Fatal("AppendBootLog accepted a special file")
			}
			if n := w.Events(); n != 0 {
				t.Errorf("the %s was opened %d times", kind, n)
			}
		})
	}
}

// TestAppendBootLogSecurityCreatesOwnFile: a missing log is created by the controller with
// O_EXCL: a fresh inode with one link, owned by the controller, at most 0644.
func TestAppendBootLogSecurityCreatesOwnFile(t *testing.T) {
	home := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	if err := AppendBootLog(home, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	st := secStat(t, filepath.Join(home, LogsDirName, BootLogName))
	if st.Mode&0o7777 != 0o644 || st.Nlink != 1 || int(st.Uid) != os.Geteuid() {
		t.Errorf("log: mode %o nlink %d uid %d", st.Mode&0o7777, st.Nlink, st.Uid)
	}
}
