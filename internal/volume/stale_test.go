package volume

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hermes/profile-controller/internal/safefs"
)

func TestCleanStale(t *testing.T) {
	tests := []struct {
		name        string
		setup       func(t *testing.T, dir string)
		wantRemoved []string // names
		wantErr     []string // substrings, one per refused entry
		wantLeft    []string // names that must still exist
	}{
		{name: "nothing to clean", setup: func(*testing.T, string) {}},
		{name: "both regular files",
			setup: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "gateway.pid"), "123\n")
				writeFile(t, filepath.Join(dir, "processes.json"), "{}")
				writeFile(t, filepath.Join(dir, "gateway_state.json"), "{}")
				writeFile(t, filepath.Join(dir, "SOUL.md"), "")
			},
			wantRemoved: []string{"gateway.pid", "processes.json"},
			wantLeft:    []string{"gateway_state.json", "SOUL.md"}},
		{name: "only the pid file", setup: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "gateway.pid"), "1") },
			wantRemoved: []string{"gateway.pid"}},
		{name: "symlinked pid file is refused, the other still removed",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink("/etc/hostname", filepath.Join(dir, "gateway.pid")); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dir, "processes.json"), "{}")
			},
			wantRemoved: []string{"processes.json"},
			wantErr:     []string{`refusing to unlink "` + "%DIR%" + `/gateway.pid": it is a symlink`},
			wantLeft:    []string{"gateway.pid"}},
		{name: "directory and FIFO are refused",
			setup: func(t *testing.T, dir string) {
				if err := os.Mkdir(filepath.Join(dir, "gateway.pid"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(filepath.Join(dir, "processes.json"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr:  []string{"gateway.pid\": it is a directory", "processes.json\": it is a FIFO"},
			wantLeft: []string{"gateway.pid", "processes.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			d, err := safefs.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			removed, err := CleanStale(d)
			var want []string
			for _, n := range tt.wantRemoved {
				want = append(want, filepath.Join(dir, n))
			}
			if diff := cmp.Diff(want, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("err = %v", err)
			}
			for _, w := range tt.wantErr {
				w = strings.ReplaceAll(w, "%DIR%", dir)
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
			for _, n := range tt.wantRemoved {
				if exists(filepath.Join(dir, n)) {
					t.Errorf("%s still exists", n)
				}
			}
			for _, n := range tt.wantLeft {
				if !exists(filepath.Join(dir, n)) {
					t.Errorf("%s was removed", n)
				}
			}
			// Idempotent: a second call removes nothing more.
			again, _ := CleanStale(d)
			if len(again) != 0 {
				t.Errorf("second call removed %v", again)
			}
		})
	}
}

func TestCleanStaleSymlinkTargetSurvives(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	for _, n := range staleFileNames {
		writeFile(t, filepath.Join(outside, n), "precious")
		if err := os.Symlink(filepath.Join(outside, n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := safefs.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	removed, err := CleanStale(d)
	if len(removed) != 0 || err == nil {
		t.Fatalf("CleanStale = %v, %v; want nothing removed and an error", removed, err)
	}
	for _, n := range staleFileNames {
		if got := readFile(t, filepath.Join(outside, n)); got != "precious" {
			t.Errorf("target %s changed: %q", n, got)
		}
		if _, err := os.Readlink(filepath.Join(dir, n)); err != nil {
			t.Errorf("symlink %s removed: %v", n, err)
		}
	}
}

func TestCleanStaleProfile(t *testing.T) {
	home := t.TempDir()
	stale := func(dir string) {
		for _, n := range staleFileNames {
			writeFile(t, filepath.Join(dir, n), "x")
		}
	}
	stale(home)
	stale(filepath.Join(home, "profiles", "coder"))
	outside := t.TempDir()
	stale(outside)
	if err := os.Symlink(outside, filepath.Join(home, "profiles", "linked")); err != nil {
		t.Fatal(err)
	}
	linkedProfiles := t.TempDir()
	stale(filepath.Join(linkedProfiles, "profiles", "coder"))
	home2 := t.TempDir()
	if err := os.Symlink(filepath.Join(linkedProfiles, "profiles"), filepath.Join(home2, "profiles")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		home, key   string
		wantRemoved []string
		wantErr     string
	}{
		{name: "default is the root", home: home, key: "default",
			wantRemoved: []string{filepath.Join(home, "gateway.pid"), filepath.Join(home, "processes.json")}},
		{name: "named", home: home, key: "coder",
			wantRemoved: []string{filepath.Join(home, "profiles/coder/gateway.pid"), filepath.Join(home, "profiles/coder/processes.json")}},
		{name: "symlinked profile dir", home: home, key: "linked", wantErr: "symlink"},
		{name: "symlinked profiles/", home: home2, key: "coder", wantErr: "symlink"},
		{name: "missing profile", home: home, key: "gone", wantErr: "no such file"},
		{name: "invalid name", home: home, key: "../coder", wantErr: "profile name"},
		{name: "missing home", home: filepath.Join(home, "absent"), key: "default", wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			removed, err := CleanStaleProfile(tt.home, tt.key)
			sort.Strings(removed)
			if diff := cmp.Diff(tt.wantRemoved, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
	for _, dir := range []string{outside, filepath.Join(linkedProfiles, "profiles", "coder")} {
		for _, n := range staleFileNames {
			if !exists(filepath.Join(dir, n)) {
				t.Errorf("%s/%s was removed through a symlink", dir, n)
			}
		}
	}
}

// One opened Home cleans many profiles from several goroutines at once, the root included; on a
// volume without profiles/ the root is still cleaned and a named profile's clean-up says why not.
func TestHomeCleansABatch(t *testing.T) {
	home := t.TempDir()
	var names []string
	for i := range 64 {
		name := fmt.Sprint("p", i)
		names = append(names, name)
		writeFile(t, filepath.Join(home, "profiles", name, "gateway.pid"), "1")
	}
	writeFile(t, filepath.Join(home, "processes.json"), "{}")
	h, err := OpenHome(home)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var removed atomic.Int32
	for _, name := range append(names, "default") {
		wg.Go(func() {
			r, err := h.CleanStale(name)
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			removed.Add(int32(len(r)))
		})
	}
	wg.Wait()
	h.Close()
	if got := removed.Load(); got != int32(len(names))+1 {
		t.Errorf("removed %d files, want %d", got, len(names)+1)
	}

	bare := t.TempDir()
	writeFile(t, filepath.Join(bare, "gateway.pid"), "1")
	h, err = OpenHome(bare)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if r, err := h.CleanStale("default"); err != nil || len(r) != 1 {
		t.Errorf("root of a volume without profiles/: %v, %v", r, err)
	}
	if _, err := h.CleanStale("coder"); err == nil || !strings.Contains(err.Error(), "profiles") {
		t.Errorf("named profile without profiles/: %v, want an error naming profiles/", err)
	}
}
