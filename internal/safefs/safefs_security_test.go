package safefs

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openWatch reports every open, read or write of one inode (inotify follows the inode, whatever
// its name). O_PATH opens are not reported: they give no access to the file's contents.
type openWatch struct{ fd int }

func watchOpens(t *testing.T, path string) *openWatch {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, path, unix.IN_OPEN|unix.IN_ACCESS|unix.IN_MODIFY|unix.IN_DONT_FOLLOW); err != nil {
		t.Fatal(err)
	}
	return &openWatch{fd}
}

// events returns how many events arrived since the last call.
func (w *openWatch) events() int {
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

// mkCharDev makes a character device like /dev/null (1,3) at path; it needs root.
func mkCharDev(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod: %v (no CAP_MKNOD here)", err)
	}
}

func openTestDir(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := OpenDir(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// within fails the test if fn does not return within 10 s (a FIFO open would block forever).
func within(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("blocked for 10 s")
	}
}

const sentinel = "SENTINEL: root's secret, never to be read through the volume\n"

func TestSafefsSecurityReadFile(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte(sentinel), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T, p string)
		wantErr error
		want    string
	}{
		{name: "regular", setup: func(t *testing.T, p string) { _ = os.WriteFile(p, []byte("ok"), 0o644) }, want: "ok"},
		{name: "exactly the cap", setup: func(t *testing.T, p string) { _ = os.WriteFile(p, []byte(strings.Repeat("x", 64)), 0o644) }, want: strings.Repeat("x", 64)},
		{name: "one byte over the cap", setup: func(t *testing.T, p string) { _ = os.WriteFile(p, []byte(strings.Repeat("x", 65)), 0o644) }, wantErr: ErrTooBig},
		{name: "1 GiB sparse", setup: func(t *testing.T, p string) {
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(1 << 30); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrTooBig},
		{name: "symlink to a root-only file", setup: func(t *testing.T, p string) { _ = os.Symlink(outside, p) }, wantErr: ErrSymlink},
		{name: "symlink to /etc/passwd", setup: func(t *testing.T, p string) { _ = os.Symlink("/etc/passwd", p) }, wantErr: ErrSymlink},
		{name: "symlink to a dir", setup: func(t *testing.T, p string) { _ = os.Symlink(filepath.Dir(outside), p) }, wantErr: ErrSymlink},
		{name: "dangling symlink", setup: func(t *testing.T, p string) { _ = os.Symlink("/nonexistent/x", p) }, wantErr: ErrSymlink},
		{name: "FIFO without a writer", setup: func(t *testing.T, p string) { _ = unix.Mkfifo(p, 0o644) }, wantErr: ErrNotRegular},
		{name: "socket", setup: func(t *testing.T, p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}, wantErr: ErrNotRegular},
		{name: "character device", setup: mkCharDev, wantErr: ErrNotRegular},
		{name: "directory", setup: func(t *testing.T, p string) { _ = os.Mkdir(p, 0o755) }, wantErr: ErrNotRegular},
		{name: "missing", setup: func(*testing.T, string) {}, wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A short path: unix socket paths are limited to 108 bytes.
			dir, err := os.MkdirTemp("", "sf")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			p := filepath.Join(dir, "f")
			tt.setup(t, p)
			d := openTestDir(t, dir)
			var (
				b    []byte
				rerr error
			)
			within(t, func() { b, _, rerr = d.ReadFile("f", 64) })
			if tt.wantErr == nil {
				if rerr != nil || string(b) != tt.want {
					t.Fatalf("ReadFile = %q, %v; want %q", b, rerr, tt.want)
				}
				return
			}
			if !errors.Is(rerr, tt.wantErr) {
				t.Fatalf("ReadFile error = %v, want %v", rerr, tt.wantErr)
			}
			if b != nil {
				t.Fatalf("ReadFile returned %q with an error", b)
			}
		})
	}
}

// TestSafefsSecurityNeverOpensSpecialFiles: a device, FIFO or socket is refused by OpenRegular
// (read or append) without being opened at all: inotify sees no open of the inode.
func TestSafefsSecurityNeverOpensSpecialFiles(t *testing.T) {
	for _, kind := range []string{"device", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "gateway_state.json")
			if kind == "device" {
				mkCharDev(t, p)
			} else if err := unix.Mkfifo(p, 0o666); err != nil {
				t.Fatal(err)
			}
			w := watchOpens(t, p)
			d := openTestDir(t, dir)
			within(t, func() {
				for _, flags := range []int{unix.O_RDONLY, unix.O_WRONLY | unix.O_APPEND, unix.O_RDWR} {
					if fd, _, err := d.OpenRegular("gateway_state.json", flags); !errors.Is(err, ErrNotRegular) {
						if err == nil {
							unix.Close(fd)
						}
						t.Errorf("OpenRegular(%#x) = %v, want ErrNotRegular", flags, err)
					}
				}
				if _, _, err := d.ReadFile("gateway_state.json", 1<<20); !errors.Is(err, ErrNotRegular) {
					t.Errorf("ReadFile = %v, want ErrNotRegular", err)
				}
			})
			if n := w.events(); n != 0 {
				t.Errorf("the %s was opened or read (%d inotify events)", kind, n)
			}
			// The watch works: a real open is seen.
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			if w.events() == 0 {
				t.Fatal("inotify did not report a real open; the check above proves nothing")
			}
		})
	}
}

func TestSafefsSecurityOpenRegularRefusesCreate(t *testing.T) {
	dir := t.TempDir()
	d := openTestDir(t, dir)
	if _, _, err := d.OpenRegular("new", unix.O_WRONLY|unix.O_CREAT); err == nil {
		t.Fatal("OpenRegular accepted O_CREAT")
	}
	if _, err := os.Lstat(filepath.Join(dir, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file was created: %v", err)
	}
}

func TestSafefsSecurityOpenDirRefusesSymlinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	d := openTestDir(t, dir)
	for _, name := range []string{"link", "dangling"} {
		if sub, err := d.OpenDir(name); !errors.Is(err, ErrSymlink) {
			if err == nil {
				sub.Close()
			}
			t.Errorf("OpenDir(%s) = %v, want ErrSymlink", name, err)
		}
	}
}
