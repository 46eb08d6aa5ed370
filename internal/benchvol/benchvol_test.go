package benchvol_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/benchvol"
	"github.com/hermes/profile-controller/pkg/s6"
)

func TestMakeHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	names, err := benchvol.MakeHome(home, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"default", "p00000", "p00001", "p00002"}
	if len(names) != len(want) {
		t.Fatalf("names = %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("names = %v, want %v", names, want)
		}
	}
	for _, dir := range []string{home, filepath.Join(home, "profiles", "p00000"), filepath.Join(home, "profiles", "p00002")} {
		if fi, err := os.Lstat(filepath.Join(dir, "SOUL.md")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s/SOUL.md: not a regular file (%v)", dir, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "gateway_state.json"))
		if err != nil || string(b) != `{"gateway_state":"running"}` {
			t.Errorf("%s/gateway_state.json = %q, %v", dir, b, err)
		}
	}
	for _, j := range []string{"junk00000", "junk00001"} {
		dir := filepath.Join(home, "profiles", j)
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			t.Errorf("%s: not a directory (%v)", dir, err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "SOUL.md")); !os.IsNotExist(err) {
			t.Errorf("%s has a SOUL.md (%v)", dir, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(home, "profiles"))
	if err != nil || len(entries) != 5 {
		t.Errorf("profiles/ holds %d entries (%v), want 5", len(entries), err)
	}
	if _, err := benchvol.MakeHome(home, 1, 0); err == nil {
		t.Error("MakeHome over an existing volume succeeded, want an error")
	}
}

// render is a stand-in for the controller's renderer, with a logger.
func render(name string) ([]s6.File, error) {
	return []s6.File{
		{Name: "type", Data: []byte("longrun\n"), Mode: 0o644},
		{Name: "run", Data: []byte("#!/bin/sh\nexec sleep 1000 # " + name + "\n"), Mode: 0o755},
		{Name: "log/run", Data: []byte("#!/bin/sh\nexec cat >/dev/null\n"), Mode: 0o755},
	}, nil
}

func TestConvergeAndHoldLocks(t *testing.T) {
	scandir := t.TempDir()
	if err := benchvol.Converge(scandir, []string{"default", "p00000"}, render); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"default", "p00000"} {
		slot := filepath.Join(scandir, "gateway-"+name)
		files, _ := render(name)
		for _, f := range files {
			p := filepath.Join(slot, f.Name)
			b, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(b, f.Data) {
				t.Errorf("%s = %q, %v; want %q", p, b, err, f.Data)
			}
			if fi, err := os.Lstat(p); err != nil || fi.Mode() != f.Mode {
				t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, f.Mode)
			}
		}
		if _, err := os.Lstat(filepath.Join(slot, "down")); !os.IsNotExist(err) {
			t.Errorf("%s has a down marker (%v)", slot, err)
		}
		for _, dir := range []string{slot, filepath.Join(slot, "log")} {
			v, err := s6.ReadSupervision(dir)
			if err != nil {
				t.Fatal(err)
			}
			if v.Supervised || !v.HasStatus {
				t.Errorf("%s before HoldLocks: supervised %t, has status %t; want false, true", dir, v.Supervised, v.HasStatus)
			}
			if age := time.Since(v.Status.Stamp); age < benchvol.StatusAge-time.Minute || age > benchvol.StatusAge+time.Minute {
				t.Errorf("%s: status stamp %s is %s old, want about %s", dir, v.Status.Stamp, age, benchvol.StatusAge)
			}
			if age := time.Since(v.Changed); age < benchvol.StatusAge-time.Minute || age > benchvol.StatusAge+time.Minute {
				t.Errorf("%s: status mtime %s is %s old, want about %s", dir, v.Changed, age, benchvol.StatusAge)
			}
			if v.Status.PID != os.Getpid() {
				t.Errorf("%s: status pid %d, want %d", dir, v.Status.PID, os.Getpid())
			}
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(scandir, ".*"))
	if len(leftovers) != 0 {
		t.Errorf("Converge left %v behind", leftovers)
	}

	release, err := benchvol.HoldLocks(scandir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"default", "p00000"} {
		for _, dir := range []string{filepath.Join(scandir, "gateway-"+name), filepath.Join(scandir, "gateway-"+name, "log")} {
			v, err := s6.ReadSupervision(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Supervised || !v.HasStatus || !v.Up() || !v.WantUp() {
				t.Errorf("%s: supervised %t, has status %t, up %t, want up %t; want all true",
					dir, v.Supervised, v.HasStatus, v.Up(), v.WantUp())
			}
		}
	}
	release()
	release() // idempotent
	v, err := s6.ReadSupervision(filepath.Join(scandir, "gateway-default"))
	if err != nil || v.Supervised {
		t.Errorf("after release: supervised %t (%v), want false", v.Supervised, err)
	}
}

func TestConvergeRefusesAnExistingSlot(t *testing.T) {
	scandir := t.TempDir()
	if err := os.Mkdir(filepath.Join(scandir, "gateway-p00000"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := benchvol.Converge(scandir, []string{"p00000"}, render); err == nil {
		t.Error("Converge over an existing slot succeeded, want an error")
	}
}

func TestHoldLocksRefusesAHeldLock(t *testing.T) {
	scandir := t.TempDir()
	if err := benchvol.Converge(scandir, []string{"default"}, render); err != nil {
		t.Fatal(err)
	}
	release, err := benchvol.HoldLocks(scandir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if again, err := benchvol.HoldLocks(scandir); err == nil {
		again()
		t.Error("a second HoldLocks on held locks succeeded, want an error")
	}
}

// TestHoldLocksBeyondTheFDLimit holds more locks than RLIMIT_NOFILE leaves room for in one
// descriptor table, the way 10,000 slots do under a container's hard limit of 20,000.
func TestHoldLocksBeyondTheFDLimit(t *testing.T) {
	scandir := t.TempDir()
	var names []string
	for i := range 150 {
		names = append(names, benchvol.ProfileName(i))
	}
	if err := benchvol.Converge(scandir, names, render); err != nil {
		t.Fatal(err)
	}
	var saved unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &saved); err != nil {
		t.Fatal(err)
	}
	// Room for about 100 descriptors: 300 locks need three tables.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(len(ents)) + 164, Max: saved.Max}); err != nil {
		t.Fatal(err)
	}
	release, err := benchvol.HoldLocks(scandir)
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &saved); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		for _, dir := range []string{filepath.Join(scandir, "gateway-"+name), filepath.Join(scandir, "gateway-"+name, "log")} {
			if v, err := s6.ReadSupervision(dir); err != nil || !v.Supervised {
				t.Fatalf("%s: supervised %t (%v), want true", dir, v.Supervised, err)
			}
		}
	}
	if after, err := os.ReadDir("/proc/self/fd"); err != nil || len(after) > len(ents)+8 {
		t.Errorf("the process's own table grew from %d to %d descriptors (%v): the locks belong in private tables", len(ents), len(after), err)
	}
	release()
	for _, name := range names {
		if v, err := s6.ReadSupervision(filepath.Join(scandir, "gateway-"+name)); err != nil || v.Supervised {
			t.Fatalf("after release, gateway-%s: supervised %t (%v), want false", name, v.Supervised, err)
		}
	}
}
