package volume

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/hostile"
)

var testHolder = Holder{Host: "gw-a", PID: 4242, Since: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}

func acquireOK(t *testing.T, home string, h Holder) *Lease {
	t.Helper()
	l, err := AcquireLease(home, h)
	if err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	t.Cleanup(l.Release)
	return l
}

func TestLeaseCreatesFile(t *testing.T) {
	home := t.TempDir()
	old := unix.Umask(0o077 | 0o022)
	defer unix.Umask(old)
	l := acquireOK(t, home, testHolder)
	path := filepath.Join(home, LeaseName)
	if l.Path() != path {
		t.Errorf("Path() = %q, want %q", l.Path(), path)
	}
	st := secStat(t, path)
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != 0o600 {
		t.Errorf("lease file mode %o, want a regular file 0600", st.Mode)
	}
	if int(st.Uid) != os.Geteuid() {
		t.Errorf("lease file owner %d, want the euid %d", st.Uid, os.Geteuid())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), "\n") != 1 || !strings.HasSuffix(string(data), "\n") {
		t.Errorf("lease content %q is not one line", data)
	}
	var got Holder
	if err := json.Unmarshal(data, &got); err != nil || !got.Since.Equal(testHolder.Since) || got.Host != "gw-a" || got.PID != 4242 {
		t.Errorf("lease content %q decodes to %+v, %v; want %+v", data, got, err, testHolder)
	}
	if h, err := ReadLeaseHolder(home); err != nil || h.String() != "host gw-a pid 4242" || h.SinceText() != "2026-12-02T00:00:00Z" {
		t.Errorf("ReadLeaseHolder = %v since %s, %v", h, h.SinceText(), err)
	}
	if err := l.Validate(); err != nil {
		t.Errorf("Validate of a fresh lease: %v", err)
	}
}

func TestLeaseHeldNamesHolder(t *testing.T) {
	home := t.TempDir()
	first := acquireOK(t, home, testHolder)
	// flock belongs to the open file description: a second open, even in this process, is refused.
	_, err := AcquireLease(home, Holder{Host: "gw-b", PID: 7, Since: time.Now()})
	var held *LeaseHeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("second AcquireLease: %v, want a *LeaseHeldError", err)
	}
	want := filepath.Join(home, LeaseName) + " is held by host gw-a pid 4242 since 2026-12-02T00:00:00Z"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// The holder's content is unchanged by the refused attempt.
	if h, _ := ReadLeaseHolder(home); h.PID != 4242 {
		t.Errorf("holder after a refused attempt: %v", h)
	}
	first.Release()
	second := acquireOK(t, home, Holder{Host: "gw-b", PID: 7, Since: testHolder.Since})
	if h, _ := ReadLeaseHolder(home); h.String() != "host gw-b pid 7" {
		t.Errorf("holder after a take-over: %v", h)
	}
	if err := second.Validate(); err != nil {
		t.Errorf("Validate after a take-over of the same file: %v", err)
	}
}

func TestLeaseShorterIdentityLeavesNoTail(t *testing.T) {
	home := t.TempDir()
	hostile.WriteFile(t, filepath.Join(home, LeaseName), strings.Repeat("x", 1000)+"\n", 0o600)
	acquireOK(t, home, testHolder)
	data, _ := os.ReadFile(filepath.Join(home, LeaseName))
	if strings.Contains(string(data), "x") {
		t.Errorf("old content left behind: %q", data)
	}
}

func TestLeaseHolderGarbage(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "unknown"},
		{"not json", "pid=1 host=x\n", "unknown"},
		{"oversized", `{"host":"big","pid":1,"pad":"` + strings.Repeat("a", MaxLeaseContent) + `"}`, "unknown"},
		{"negative pid", `{"host":"h","pid":-3}`, "unknown"},
		{"hostile host", `{"host":"a\nb c","pid":5}`, `host "a\nb c" pid 5`},
		{"long host", `{"host":"` + strings.Repeat("h", 100) + `","pid":5}`, `host "` + strings.Repeat("h", 64) + `" pid 5`},
		{"binary", "\x00\xff\xfe", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			hostile.WriteFile(t, filepath.Join(home, LeaseName), tc.content, 0o600)
			// Held by another descriptor, as a controller in another container would hold it.
			f, err := os.OpenFile(filepath.Join(home, LeaseName), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				t.Fatal(err)
			}
			_, err = AcquireLease(home, testHolder)
			var held *LeaseHeldError
			if !errors.As(err, &held) {
				t.Fatalf("AcquireLease: %v, want held", err)
			}
			if got := held.Holder.String(); got != tc.want {
				t.Errorf("holder %q, want %q", got, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestLeaseSecurityRefusesSpecialFiles(t *testing.T) {
	outside := t.TempDir()
	target := filepath.Join(outside, "target")
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, path string)
		want  string
	}{
		{"symlink", func(t *testing.T, path string) {
			hostile.WriteFile(t, target, hostile.Secret, 0o600)
			hostile.Symlink(t, target, path)
		}, "is a symlink"},
		{"dangling symlink", func(t *testing.T, path string) { hostile.Symlink(t, filepath.Join(outside, "none"), path) }, "is a symlink"},
		{"fifo", func(t *testing.T, path string) { hostile.Special(t, hostile.FIFO, path) }, "it is a FIFO"},
		{"device", func(t *testing.T, path string) { hostile.Special(t, hostile.Device, path) }, "it is a character device"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "it is a directory"},
		{"hard link", func(t *testing.T, path string) {
			s := filepath.Join(outside, "hard")
			hostile.WriteFile(t, s, hostile.Secret, 0o600)
			hostile.RootOwned(t, s)
			hostile.Link(t, s, path)
		}, "refusing a file with 2 hard links"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := hostile.ShortTempDir(t)
			path := filepath.Join(home, LeaseName)
			tc.plant(t, path)
			before := hostile.Tree(t, outside)
			w := hostile.WatchOpens(t, path)
			err := hostile.WithinValue(t, 2*time.Second, func() error {
				l, err := AcquireLease(home, testHolder)
				l.Release()
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "lease "+path+": ") {
				t.Fatalf("AcquireLease: %v; want an error naming %s and saying %q", err, path, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if tc.name != "hard link" {
				if n := w.Events(); n != 0 {
					t.Errorf("the planted %s was opened, read or written (%d inotify events)", tc.name, n)
				}
			}
			hostile.SameTree(t, "outside tree", before, hostile.Tree(t, outside))
			if _, err := ReadLeaseHolder(home); err == nil {
				t.Errorf("ReadLeaseHolder accepted a %s", tc.name)
			}
		})
	}
}

func TestLeaseTakesBackChownedFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	home := t.TempDir()
	path := filepath.Join(home, LeaseName)
	hostile.WriteFile(t, path, "old\n", 0o666)
	if err := os.Chown(path, 10000, 10000); err != nil {
		t.Fatal(err)
	}
	acquireOK(t, home, testHolder)
	st := secStat(t, path)
	if st.Uid != 0 || st.Mode&0o7777 != 0o600 {
		t.Errorf("lease file uid %d mode %o after take, want 0 and 0600", st.Uid, st.Mode&0o7777)
	}
}

func TestLeaseValidateDetectsReplacement(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, home, path string)
		want    string
	}{
		{"deleted", func(t *testing.T, _, path string) { mustNoErr(t, os.Remove(path)) }, "removed or renamed"},
		{"renamed", func(t *testing.T, home, path string) { mustNoErr(t, os.Rename(path, filepath.Join(home, "elsewhere"))) }, "removed or renamed"},
		{"other file", func(t *testing.T, home, path string) {
			other := filepath.Join(home, "other")
			hostile.WriteFile(t, other, "{}", 0o600)
			mustNoErr(t, os.Rename(other, path))
		}, "replaced by a regular file"},
		{"symlink to itself", func(t *testing.T, home, path string) {
			keep := filepath.Join(home, "kept")
			mustNoErr(t, os.Rename(path, keep))
			hostile.Symlink(t, keep, path)
		}, "replaced by a symlink"},
		{"fifo", func(t *testing.T, _, path string) {
			mustNoErr(t, os.Remove(path))
			hostile.Special(t, hostile.FIFO, path)
		}, "replaced by a FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			l := acquireOK(t, home, testHolder)
			tc.replace(t, home, l.Path())
			err := l.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "lease "+l.Path()+": ") {
				t.Errorf("Validate: %v, want an error naming the file and saying %q", err, tc.want)
			}
		})
	}
	t.Run("released", func(t *testing.T) {
		l := acquireOK(t, t.TempDir(), testHolder)
		l.Release()
		if l.Validate() == nil {
			t.Error("Validate of a released lease passed")
		}
	})
}

// TestLeaseReplacedFileIsTakenAnew: after the file is replaced, a second controller can lock
// the new file while the first still holds the old inode; the first one's Validate fails, and so
// does its attempt to take the new one (the step-down case).
func TestLeaseReplacedFileIsTakenAnew(t *testing.T) {
	home := t.TempDir()
	a := acquireOK(t, home, testHolder)
	mustNoErr(t, os.Remove(a.Path()))
	b := acquireOK(t, home, Holder{Host: "gw-b", PID: 2, Since: time.Now()})
	if err := a.Validate(); err == nil {
		t.Fatal("the old holder still validates after its file was replaced")
	}
	if _, err := AcquireLease(home, testHolder); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("re-take by the old holder: %v, want held", err)
	}
	if err := b.Validate(); err != nil {
		t.Errorf("the new holder: %v", err)
	}
}

func mustNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestLeaseReadOnlyVolume: on a read-only volume the lease is still exclusive: an existing file
// is locked read-only (nothing written), and without a file HERMES_HOME itself is locked, valid
// until a lease file appears.
func TestLeaseReadOnlyVolume(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test bind-mounts a directory read-only and needs root; CI runs as root")
		}
		t.Skip("a read-only bind mount needs root")
	}
	readOnly := func(t *testing.T, dir string) (undo func()) {
		t.Helper()
		mustNoErr(t, unix.Mount(dir, dir, "", unix.MS_BIND, ""))
		mustNoErr(t, unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""))
		done := false
		undo = func() {
			if !done {
				done = true
				mustNoErr(t, unix.Unmount(dir, unix.MNT_DETACH))
			}
		}
		t.Cleanup(undo)
		return undo
	}
	t.Run("existing file", func(t *testing.T) {
		home := t.TempDir()
		hostile.WriteFile(t, filepath.Join(home, LeaseName), `{"host":"old","pid":1}`+"\n", 0o600)
		readOnly(t, home)
		l := acquireOK(t, home, testHolder)
		if _, err := AcquireLease(home, testHolder); !errors.Is(err, ErrLeaseHeld) {
			t.Errorf("second AcquireLease: %v, want held", err)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
	})
	t.Run("no file", func(t *testing.T) {
		home := t.TempDir()
		undo := readOnly(t, home)
		l := acquireOK(t, home, testHolder)
		if _, err := os.Lstat(filepath.Join(home, LeaseName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a lease file appeared on a read-only volume: %v", err)
		}
		_, err := AcquireLease(home, testHolder)
		var held *LeaseHeldError
		if !errors.As(err, &held) || held.Holder.String() != "unknown" {
			t.Errorf("second AcquireLease: %v, want held by an unknown holder", err)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("Validate: %v", err)
		}
		undo()
		// The bind mount gone, l's descriptor is the (other) directory underneath; either way,
		// once a lease file exists the directory lock no longer stands for it.
		hostile.WriteFile(t, filepath.Join(home, LeaseName), "", 0o600)
		if err := l.Validate(); err == nil {
			t.Error("Validate passed with a lease file present")
		}
	})
}
