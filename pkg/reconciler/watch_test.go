package reconciler

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/pkg/desired"
)

type nopLog struct{}

func (nopLog) Info(string, ...any)         {}
func (nopLog) Error(error, string, ...any) {}

// newTestWatcher is a watcher over a fresh HERMES_HOME with profiles/coder and a scandir.
func newTestWatcher(t *testing.T) (w *watcher, coder string) {
	t.Helper()
	root := t.TempDir()
	home, sd := filepath.Join(root, "home"), filepath.Join(root, "service")
	coder = filepath.Join(home, desired.ProfilesDirName, "coder")
	for _, d := range []string{coder, sd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &Controller{opts: Options{HermesHome: home, Scandir: sd}}
	w = newWatcher(c, nopLog{}, func(string) {}, func(string, *watcher) {}, func() {})
	if w.in == nil {
		t.Fatal("no inotify")
	}
	t.Cleanup(w.close)
	return w, coder
}

// Each descriptor maps back to what it watches, and forgetting one leaves no trace: the key's
// record goes with its last descriptor.
func TestWatchTableMapsDescriptorsBack(t *testing.T) {
	w, coder := newTestWatcher(t)
	if !w.watch(coder, watchEntry{kind: watchProfile, key: "coder", candidate: true}, maskFiles) {
		t.Fatal("watch refused")
	}
	w.mu.Lock()
	wd := w.keys["coder"].wd[0]
	e, ok := w.entryLocked(wd)
	home, hok := w.entryLocked(w.roots[watchHome])
	candidates := w.candidates
	w.mu.Unlock()
	if !ok || e != (watchEntry{kind: watchProfile, key: "coder", candidate: true}) || candidates != 1 {
		t.Fatalf("descriptor %d maps to %+v, %v (candidates %d)", wd, e, ok, candidates)
	}
	if !hok || home != (watchEntry{kind: watchHome}) {
		t.Fatalf("HERMES_HOME's descriptor maps to %+v, %v", home, hok)
	}
	w.drop("coder", watchProfile)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.entryLocked(wd); ok || len(w.byWD) != 0 || len(w.keys) != 0 || w.candidates != 0 {
		t.Fatalf("after drop: byWD %v, keys %v, candidates %d", w.byWD, w.keys, w.candidates)
	}
}

// A key's directory replaced at its path and watched again before the old watch's events are
// handled: the old descriptor, which now watches a directory elsewhere, is forgotten and
// removed from the kernel, not left to pass for the key's.
func TestWatchOfAReplacedDirectoryRemovesTheOldOne(t *testing.T) {
	w, coder := newTestWatcher(t)
	e := watchEntry{kind: watchProfile, key: "coder"}
	if !w.watch(coder, e, maskFiles) {
		t.Fatal("watch refused")
	}
	old := w.keys["coder"].wd[0]
	if err := os.Rename(coder, coder+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(coder, 0o755); err != nil {
		t.Fatal(err)
	}
	if !w.watch(coder, e, maskFiles) {
		t.Fatal("watch refused")
	}
	w.mu.Lock()
	now := w.keys["coder"].wd[0]
	_, oldKnown := w.entryLocked(old)
	got, ok := w.entryLocked(now)
	n := len(w.byWD)
	w.mu.Unlock()
	if now == old || oldKnown || !ok || got != e || n != 1 {
		t.Fatalf("old %d (known %v), now %d -> %+v %v, %d descriptors", old, oldKnown, now, got, ok, n)
	}
	if err := w.in.Remove(old); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("the old watch is still in the kernel: Remove = %v", err)
	}
}
