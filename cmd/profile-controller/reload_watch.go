package main

// What makes `run` reload: SIGHUP, and a change of the config file seen through inotify.

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/inotify"
)

// reloadDebounce coalesces a burst of events (an editor's write, rename and chmod; a ConfigMap's
// symlink swap) into one reload, this long after the last of them.
const reloadDebounce = 150 * time.Millisecond

// absPath is path made absolute (the working directory of `run` does not change).
func absPath(path string) (string, error) {
	return filepath.Abs(path)
}

// configWatch watches the directory of the config file, and the directory of the file its path
// resolves to when that is another one, so that every way of replacing the file is seen: an
// in-place write, an editor's rename into place, a Kubernetes ConfigMap's swap of its "..data"
// symlink (which changes what the path resolves to, not the path's own entry). Watching the
// file itself would lose the watch on the first rename.
type configWatch struct {
	path string // the config file, absolute
	in   *inotify.Watcher
	real string // what path resolved to at the last (re)watch

	mu   sync.Mutex
	dirs map[string]int32 // the directories watched, with their watch descriptors

	events chan string   // the paths of entries changed in the watched directories
	errs   chan error    // a read error (an overflow): the file may have changed
	done   chan struct{} // closed by close
}

// configMask is every way an entry of the config file's directory can change.
const configMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// newConfigWatch watches path's directories; a watch that cannot be set up is nil (SIGHUP still
// reloads) and its error is returned for the log.
func newConfigWatch(path string) (*configWatch, error) {
	in, err := inotify.New()
	if err != nil {
		return nil, err
	}
	w := &configWatch{path: path, in: in, dirs: map[string]int32{},
		events: make(chan string, 16), errs: make(chan error, 1), done: make(chan struct{})}
	if err := w.rewatch(); err != nil {
		_ = in.Close()
		return nil, err
	}
	go w.read()
	return w, nil
}

// read turns the watch's events into the changed entries' paths, until close.
func (w *configWatch) read() {
	defer close(w.events)
	for {
		evs, err := w.in.Read()
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			select {
			case w.errs <- err:
			case <-w.done:
			}
			return
		}
		for _, ev := range evs {
			if ev.Has(unix.IN_Q_OVERFLOW) {
				select {
				case w.errs <- errors.New("inotify event queue overflowed"):
				default:
				}
				continue
			}
			select {
			case w.events <- w.dirOf(ev.WD) + "/" + ev.Name:
			case <-w.done:
				return
			}
		}
	}
}

// dirOf is the directory watched by wd ("" when none is any more).
func (w *configWatch) dirOf(wd int32) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for d, id := range w.dirs {
		if id == wd {
			return d
		}
	}
	return ""
}

// rewatch resolves path again and watches the directories that holds (the old target's is
// dropped). The path's own directory must be watchable; its target's is best effort.
func (w *configWatch) rewatch() error {
	w.real = resolve(w.path)
	want := map[string]bool{filepath.Dir(w.path): true, filepath.Dir(w.real): true}
	w.mu.Lock()
	defer w.mu.Unlock()
	for d, wd := range w.dirs {
		if !want[d] {
			_ = w.in.Remove(wd)
			delete(w.dirs, d)
		}
	}
	var first error
	for d := range want {
		if _, ok := w.dirs[d]; ok {
			continue
		}
		wd, err := w.in.Add(d, configMask)
		if err != nil {
			if d == filepath.Dir(w.path) {
				first = err
			}
			continue
		}
		w.dirs[d] = wd
	}
	return first
}

// relevant reports whether ev may have changed the config file: an event on its path or on
// the file it resolves to, or any event after which the path resolves elsewhere.
func (w *configWatch) relevant(name string) bool {
	return name == w.path || name == w.real || resolve(w.path) != w.real
}

func (w *configWatch) close() {
	close(w.done)
	_ = w.in.Close()
}

// resolve is path with its symlinks resolved, or path itself when that fails (missing file).
func resolve(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// reloadSignals starts delivering SIGHUP to a channel: call it before anything could send one,
// since SIGHUP's default action ends the process. stop undoes it.
func reloadSignals() (hup <-chan os.Signal, stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// run reloads on every SIGHUP and, reloadDebounce after the last of a burst of relevant
// events, on a change of the config file, until ctx is done. It looks at the file once at the
// start too: a change between startup's read and the watch would otherwise be missed.
func (r *reloader) run(ctx context.Context, hup <-chan os.Signal) {
	var events <-chan string
	var errs <-chan error
	var w *configWatch
	if r.path != "" {
		var err error
		if w, err = newConfigWatch(r.path); err != nil {
			r.log.Error(err, "Could not watch the config file, reloading on SIGHUP only", "path", r.path)
		} else {
			defer w.close()
			events, errs = w.events, w.errs
		}
	}
	debounce := time.NewTimer(reloadDebounce)
	defer debounce.Stop()
	trigger := "start"
	if w == nil {
		debounce.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reload("signal")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if w.relevant(ev) {
				trigger = "file"
				debounce.Reset(reloadDebounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow may have hidden a change: look at the file.
			r.log.Error(err, "Config file watch error", "path", r.path)
			trigger = "file"
			debounce.Reset(reloadDebounce)
		case <-debounce.C:
			// Resolve (and watch) first, read after: a swap after the resolve is an event
			// that resolves elsewhere, so it is never missed.
			if err := w.rewatch(); err != nil {
				r.log.Error(err, "Could not watch the config file again", "path", r.path)
			}
			r.reload(trigger)
			trigger = "file"
		}
	}
}
