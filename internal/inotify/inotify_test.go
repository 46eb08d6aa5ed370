package inotify

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// readUntil reads events until one of wd with mask m and name arrives.
func readUntil(t *testing.T, w *Watcher, wd int32, m uint32, name string) []Event {
	t.Helper()
	var all []Event
	for range 20 {
		evs, err := w.Read()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
		for _, e := range evs {
			if e.WD == wd && e.Has(m) && e.Name == name {
				return all
			}
		}
	}
	t.Fatalf("no event %#x %q for wd %d in %+v", m, name, wd, all)
	return nil
}

func TestEventsOfTheMaskOnly(t *testing.T) {
	w := newWatcher(t)
	dir := t.TempDir()
	wd, err := w.Add(dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".state.tmp")
	if err := os.WriteFile(tmp, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "gateway_state.json")); err != nil {
		t.Fatal(err)
	}
	evs := readUntil(t, w, wd, unix.IN_MOVED_TO, "gateway_state.json")
	for _, e := range evs {
		if e.Has(unix.IN_CREATE | unix.IN_MODIFY | unix.IN_MOVED_FROM) {
			t.Errorf("event outside the mask: %+v", e)
		}
	}
	if evs[0].Name != ".state.tmp" || !evs[0].Has(unix.IN_CLOSE_WRITE) {
		t.Errorf("first event %+v, want IN_CLOSE_WRITE of .state.tmp", evs[0])
	}
}

func TestRefusesSymlinksAndFiles(t *testing.T) {
	w := newWatcher(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add(link, unix.IN_CREATE); !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("watch through a symlink: %v, want ELOOP or ENOTDIR", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Add(file, unix.IN_CREATE); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("watch on a file: %v, want ENOTDIR", err)
	}
}

func TestSameInodeSameDescriptorAndRemove(t *testing.T) {
	w := newWatcher(t)
	dir := t.TempDir()
	wd, err := w.Add(dir, unix.IN_CREATE)
	if err != nil {
		t.Fatal(err)
	}
	again, err := w.Add(dir, unix.IN_DELETE)
	if err != nil || again != wd {
		t.Fatalf("second watch of the same dir: wd %d, %v; want %d", again, err, wd)
	}
	if err := w.Remove(wd); err != nil {
		t.Fatal(err)
	}
	readUntil(t, w, wd, unix.IN_IGNORED, "")
}

func TestCloseEndsRead(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Read()
		done <- err
	}()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("Read after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked 10 s after Close")
	}
}

func TestParseRejectsShortEvents(t *testing.T) {
	if _, err := parse(make([]byte, unix.SizeofInotifyEvent-1)); !errors.Is(err, errShort) {
		t.Errorf("short header: %v", err)
	}
	b := make([]byte, unix.SizeofInotifyEvent)
	b[12] = 16 // Len: a name of 16 bytes that is not there
	if _, err := parse(b); !errors.Is(err, errShort) {
		t.Errorf("short name: %v", err)
	}
}
