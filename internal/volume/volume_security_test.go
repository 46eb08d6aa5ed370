package volume

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers of the security and race tests carry a "sec" prefix so they never collide with the
// helpers of the other test files of the package.

func secWrite(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func secStat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// secWatch reports opens, reads and writes of one inode.
type secWatch struct{ fd int }

func secWatchOpens(t *testing.T, path string) *secWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_MODIFY|unix.IN_DONT_FOLLOW); err != nil {
		t.Fatal(err)
	}
	return &secWatch{fd}
}

func (w *secWatch) events() int {
	n := 0
	buf := make([]byte, 64<<10)
	for {
		r, err := unix.Read(w.fd, buf)
		if r <= 0 || err != nil {
			return n
		}
		for off := 0; off+unix.SizeofInotifyEvent <= r; {
			n++
			off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
		}
	}
}

// rootOwned makes path owned by root (when we are root) and mode 0600, like a system file.
func rootOwned(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
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
		secWrite(t, target, "root's "+n+"\n", 0o600)
		rootOwned(t, target)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(target, filepath.Join(pdir, n)); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(target, filepath.Join(home, n)); err != nil {
			t.Fatal(err)
		}
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
	dir, err := os.MkdirTemp("", "vs")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	pid := filepath.Join(dir, "gateway.pid")
	if os.Geteuid() == 0 {
		if err := unix.Mknod(pid, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
	} else if err := unix.Mkfifo(pid, 0o666); err != nil {
		t.Fatal(err)
	}
	w := secWatchOpens(t, pid)
	removed, err := CleanStaleProfile(dir, "default")
	if len(removed) != 0 || err == nil {
		t.Fatalf("CleanStaleProfile = %v, %v; want nothing removed and an error", removed, err)
	}
	if n := w.events(); n != 0 {
		t.Errorf("the special file was opened %d times", n)
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
	secWrite(t, target, content, 0o600)
	rootOwned(t, target)
	if err := os.MkdirAll(filepath.Join(home, LogsDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(home, LogsDirName, BootLogName)
	if err := os.Link(target, logPath); err != nil {
		t.Fatal(err)
	}
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
	for _, kind := range []string{"device", "fifo", "socket"} {
		t.Run(kind, func(t *testing.T) {
			home, err := os.MkdirTemp("", "vb")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(home)
			if err := os.Mkdir(filepath.Join(home, LogsDirName), 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(home, LogsDirName, BootLogName)
			switch kind {
			case "device":
				if os.Geteuid() != 0 {
					t.Skip("mknod needs root")
				}
				if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
					t.Fatal(err)
				}
			case "fifo":
				if err := unix.Mkfifo(p, 0o666); err != nil {
					t.Fatal(err)
				}
			case "socket":
				fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer unix.Close(fd)
				if err := unix.Bind(fd, &unix.SockaddrUnix{Name: p}); err != nil {
					t.Fatal(err)
				}
			}
			w := secWatchOpens(t, p)
			if err := within(t, func() error { return AppendBootLog(home, []string{"x"}) }); err == nil {
				t.Fatal("AppendBootLog accepted a special file")
			}
			if n := w.events(); n != 0 {
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
