package hostile

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

// Watch reports every open, read or write of one inode, a file or a directory (inotify follows
// the inode, whatever its name). O_PATH opens are not reported: they give no access to the
// inode's contents.
type Watch struct{ fd int }

// WatchOpens starts watching the inode at path (not following a symlink there). The watch ends
// with the test.
func WatchOpens(t testing.TB, path string) *Watch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_MODIFY|unix.IN_DONT_FOLLOW); err != nil {
		t.Fatal(err)
	}
	return &Watch{fd}
}

// Events returns how many events arrived since the last call.
func (w *Watch) Events() int {
	n := 0
	buf := make([]byte, 64<<10)
	for {
		r, err := unix.Read(w.fd, buf)
		if r <= 0 || err != nil {
			return n
		}
		for off := 0; off+unix.SizeofInotifyEvent <= r; {
			n++
			// struct inotify_event: wd, mask, cookie, len (uint32 each), then len bytes of name.
			off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:]))
		}
	}
}

// Secret is the content of a root-only file outside the volume that must never be read through it.
const Secret = "SENTINEL: root's secret, never to be read through the volume\n"

// Sentinel is a file outside the volume whose content must never be read through the volume
// and which must never change.
type Sentinel struct {
	Path string
	data string
	st   unix.Stat_t
}

// NewSentinel writes data to path (mode 0600, creating the parent directories) and remembers
// the file as it is now.
func NewSentinel(t testing.TB, path, data string) *Sentinel {
	t.Helper()
	WriteFile(t, path, data, 0o600)
	s := &Sentinel{Path: path, data: data}
	if err := unix.Lstat(path, &s.st); err != nil {
		t.Fatal(err)
	}
	return s
}

// Check fails the test (t.Fatalf) if the sentinel's content, inode, mtime, mode or owner changed.
func (s *Sentinel) Check(t testing.TB) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(s.Path, &st); err != nil {
		t.Fatalf("sentinel %s: %v", s.Path, err)
	}
	b, err := os.ReadFile(s.Path)
	if err != nil || string(b) != s.data || st.Ino != s.st.Ino || st.Mtim != s.st.Mtim || st.Mode != s.st.Mode || st.Uid != s.st.Uid {
		t.Fatalf("sentinel %s changed: %q, %v (stat %+v, was %+v)", s.Path, b, err, st, s.st)
	}
}

// Tree describes every entry under root (root included), one sorted line each: path, type and
// mode bits, owner, inode, size, link count, and a symlink's target or a regular file's content.
func Tree(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o owner=%d:%d ino=%d size=%d nlink=%d", p, st.Mode, st.Uid, st.Gid, st.Ino, st.Size, st.Nlink)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case d.Type().IsRegular():
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

// SameTree fails the test (t.Errorf) if two Trees of what differ.
func SameTree(t testing.TB, what string, before, after []string) {
	t.Helper()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("%s changed:\nbefore %q\nafter  %q", what, before, after)
	}
}
