package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/hostile"
)

func openTestDir(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := OpenDir(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// blockLimit bounds every call that could block (a FIFO open would block forever).
const blockLimit = 10 * time.Second

// special returns a setup that plants a special file of the given kind.
func special(kind hostile.Kind) func(t *testing.T, p string) {
	return func(t *testing.T, p string) { hostile.Special(t, kind, p) }
}

// regular returns a setup that writes a regular file holding data.
func regular(data string) func(t *testing.T, p string) {
	return func(t *testing.T, p string) { hostile.WriteFile(t, p, data, 0o644) }
}

// symlinkTo returns a setup that makes a symlink to target.
func symlinkTo(target string) func(t *testing.T, p string) {
	return func(t *testing.T, p string) { hostile.Symlink(t, target, p) }
}

func TestSafefsSecurityReadFile(t *testing.T) {
	outside := hostile.NewSentinel(t, filepath.Join(t.TempDir(), "secret"), hostile.Secret)
	tests := []struct {
		name    string
		setup   func(t *testing.T, p string)
		wantErr error
		want    string
	}{
		{name: "regular", setup: regular("ok"), want: "ok"},
		{name: "empty", setup: regular(""), want: ""},
		{name: "exactly the cap", setup: regular(strings.Repeat("x", 64)), want: strings.Repeat("x", 64)},
		{name: "one byte over the cap", setup: regular(strings.Repeat("x", 65)), wantErr: ErrTooBig},
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
		{name: "symlink to a root-only file", setup: symlinkTo(outside.Path), wantErr: ErrSymlink},
		{name: "symlink to /etc/passwd", setup: symlinkTo("/etc/passwd"), wantErr: ErrSymlink},
		{name: "symlink to a dir", setup: symlinkTo(filepath.Dir(outside.Path)), wantErr: ErrSymlink},
		{name: "dangling symlink", setup: symlinkTo("/nonexistent/x"), wantErr: ErrSymlink},
		{name: "FIFO without a writer", setup: special(hostile.FIFO), wantErr: ErrNotRegular},
		{name: "socket", setup: special(hostile.Socket), wantErr: ErrNotRegular},
		{name: "character device", setup: special(hostile.Device), wantErr: ErrNotRegular},
		{name: "directory", setup: func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrNotRegular},
		{name: "missing", setup: func(*testing.T, string) {}, wantErr: os.ErrNotExist},
	}
	// ReadOwnFile (for the runtime dir) opens a special file where ReadFile does not, but refuses
	// the same files.
	readers := map[string]func(d *Dir, name string, limit int64) ([]byte, unix.Stat_t, error){
		"ReadFile": (*Dir).ReadFile,
		"ReadOwnFile": func(d *Dir, name string, limit int64) ([]byte, unix.Stat_t, error) {
			b, err := d.ReadOwnFile(name, limit, nil)
			return b, unix.Stat_t{}, err
		},
	}
	for _, tt := range tests {
		for rname, read := range readers {
			t.Run(rname+"/"+tt.name, func(t *testing.T) {
				dir := hostile.ShortTempDir(t)
				p := filepath.Join(dir, "f")
				tt.setup(t, p)
				d := openTestDir(t, dir)
				var (
					b    []byte
					rerr error
				)
				hostile.Within(t, blockLimit, func() { b, _, rerr = read(d, "f", 64) })
				if tt.wantErr == nil {
					if rerr != nil || string(b) != tt.want {
						t.Fatalf("%s = %q, %v; want %q", rname, b, rerr, tt.want)
					}
					return
				}
				if !errors.Is(rerr, tt.wantErr) {
					t.Fatalf("%s error = %v, want %v", rname, rerr, tt.wantErr)
				}
				if b != nil {
					t.Fatalf("%s returned %q with an error", rname, b)
				}
			})
		}
	}
	outside.Check(t)
}

// TestSafefsSecurityNeverOpensSpecialFiles: a device, FIFO or socket is refused by OpenRegular
// (read or append) without being opened at all: inotify sees no open of the inode.
func TestSafefsSecurityNeverOpensSpecialFiles(t *testing.T) {
	for _, kind := range []hostile.Kind{hostile.Device, hostile.FIFO} {
		t.Run(string(kind), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "gateway_state.json")
			hostile.Special(t, kind, p)
			w := hostile.WatchOpens(t, p)
			d := openTestDir(t, dir)
			hostile.Within(t, blockLimit, func() {
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
			if n := w.Events(); n != 0 {
				t.Errorf("the %s was opened or read (%d inotify events)", kind, n)
			}
			// The watch works: a real open is seen.
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			if w.Events() == 0 {
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
	hostile.Symlink(t, outside, filepath.Join(dir, "link"))
	hostile.Symlink(t, "/nonexistent", filepath.Join(dir, "dangling"))
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
