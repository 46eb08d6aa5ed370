package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
	"k8s.io/client-go/util/workqueue"

	"github.com/hermes/profile-controller/pkg/desired"
)

// ShutdownGrace is how long an action in flight may run after SIGTERM before it is abandoned.
const ShutdownGrace = 1500 * time.Millisecond

// ErrLocked is returned by Lock when another controller holds the runtime dir.
var ErrLocked = errors.New("another profile-controller is running")

// Lock takes the runtime dir's lock file so that only one controller acts at a time. The
// returned func releases it. It never blocks.
func (c *Controller) Lock() (func(), error) {
	if err := os.MkdirAll(c.opts.RuntimeDir, 0o755); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	path := filepath.Join(c.opts.RuntimeDir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by pid %s", ErrLocked, path, strings.TrimSpace(string(b[:n])))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

// Run is the always-on loop: the boot pass when pending, then level-triggered reconciles of
// keys fed by file-system events and a periodic resync, until ctx is done. On ctx done it
// takes no new work, lets the action in flight finish for up to ShutdownGrace, and returns nil.
func (c *Controller) Run(ctx context.Context) error {
	log := c.opts.Log
	unlock, err := c.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	c.loadMemory()

	if c.BootPending() {
		rep := c.Pass(ctx, true, false)
		for _, l := range rep.Lines {
			log.Info("Boot pass", "profile", l.Profile, "priorState", l.PriorState, "action", l.Action)
		}
		if rep.Err != nil {
			log.Error(rep.Err, "Boot pass had errors")
		}
	}

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](500*time.Millisecond, 5*time.Minute),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "profiles"},
	)
	enqueueAll := func() {
		for _, k := range c.Keys() {
			queue.Add(k)
		}
	}

	w := newWatcher(c, log, queue.Add, enqueueAll)
	defer w.close()
	enqueueAll()

	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			for {
				key, shutdown := queue.Get()
				if shutdown {
					return
				}
				c.work(ctx, workCtx, queue, w, key)
			}
		})
	}
	go w.run(ctx)

	ticker := time.NewTicker(c.opts.ResyncPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("Shutting down")
			queue.ShutDown()
			stop := time.AfterFunc(ShutdownGrace, cancelWork)
			wg.Wait()
			stop.Stop()
			return nil
		case <-ticker.C:
			enqueueAll()
		}
	}
}

// work reconciles one key and schedules its next look.
func (c *Controller) work(ctx, workCtx context.Context, queue workqueue.TypedRateLimitingInterface[string], w *watcher, key string) {
	defer queue.Done(key)
	if ctx.Err() != nil {
		return // shutting down: never react to gateways going down now
	}
	start := time.Now()
	requeue, err := c.ReconcileKey(workCtx, key)
	c.metrics.reconciled(time.Since(start), err, requeue)
	if w.ensure(key) {
		// A watch added only now missed whatever was written before it: look once more.
		queue.Add(key)
	}
	log := c.opts.Log.WithValues("profile", key)
	switch {
	case err != nil:
		log.Error(err, "Reconcile failed", "retries", queue.NumRequeues(key))
		queue.AddRateLimited(key)
		return
	case requeue > 0:
		queue.Forget(key)
		queue.AddAfter(key, requeue)
	default:
		queue.Forget(key)
	}
	log.V(4).Info("Reconciled", "duration", time.Since(start))
}

// watcher turns file-system events into keys. It is a hint only: the resync covers anything
// it misses, including watches the kernel refused (inotify limits).
type watcher struct {
	c          *Controller
	fs         *fsnotify.Watcher
	add        func(string)
	all        func()
	log        logLike
	mu         sync.Mutex
	watched    map[string]bool
	warnedOnce bool
}

type logLike interface {
	Info(msg string, kv ...any)
	Error(err error, msg string, kv ...any)
}

func newWatcher(c *Controller, log logLike, add func(string), all func()) *watcher {
	w := &watcher{c: c, add: add, all: all, log: log, watched: map[string]bool{}}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		log.Error(err, "File watches unavailable, relying on the periodic resync")
		w.warnedOnce = true
		return w
	}
	w.fs = fw
	w.watch(c.opts.HermesHome)
	w.watch(filepath.Join(c.opts.HermesHome, "profiles"))
	w.watch(c.opts.Scandir)
	return w
}

func (w *watcher) close() {
	if w.fs != nil {
		w.fs.Close()
	}
}

// watch adds a watch once; a refusal is logged once and otherwise ignored.
func (w *watcher) watch(path string) (added bool) {
	if w.fs == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watched[path] {
		return false
	}
	if err := w.fs.Add(path); err != nil {
		if !errors.Is(err, os.ErrNotExist) && !w.warnedOnce {
			w.warnedOnce = true
			w.log.Error(err, "Could not add a file watch, relying on the periodic resync for it", "path", path)
		}
		return false
	}
	w.watched[path] = true
	return true
}

func (w *watcher) forget(path string) {
	w.mu.Lock()
	delete(w.watched, path)
	w.mu.Unlock()
}

// ensure watches a key's profile dir and its slot's supervise dir once they exist. Only valid
// names whose entries are real directories are watched: inotify follows symlinks, so a symlinked
// entry is never watched (a swap after the check only costs a harmless hint), and hostile names
// never reach a watch. It reports whether a profile-dir watch was added just now.
func (w *watcher) ensure(key string) (added bool) {
	if w.fs == nil {
		return false
	}
	if key != desired.DefaultProfile {
		if desired.ValidateName(key) != nil {
			return false
		}
		if dir := filepath.Join(w.c.opts.HermesHome, "profiles", key); !w.isWatched(dir) && isRealDir(dir) {
			added = w.watch(dir)
		}
	}
	slot := filepath.Join(w.c.opts.Scandir, desired.SlotPrefix+key)
	if sup := filepath.Join(slot, "supervise"); !w.isWatched(sup) && isRealDir(slot) && isRealDir(sup) {
		w.watch(sup)
	}
	return added
}

// isWatched reports whether path already has a watch: the common case, checked before any stat.
func (w *watcher) isWatched(path string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watched[path]
}

// isRealDir reports whether path is a directory and not a symlink.
func isRealDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

func (w *watcher) run(ctx context.Context) {
	if w.fs == nil {
		return
	}
	home := filepath.Clean(w.c.opts.HermesHome)
	profiles := filepath.Join(home, "profiles")
	scandir := filepath.Clean(w.c.opts.Scandir)
	for {
		select {
		case <-ctx.Done():
			return
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// Overflow and the like: a full resync recovers whatever was missed.
			w.log.Error(err, "File watch error, resyncing")
			w.all()
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				w.forget(ev.Name)
			}
			dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
			switch {
			case dir == home:
				if base == "profiles" {
					w.watch(profiles)
					w.all()
				} else {
					w.add(desired.DefaultProfile)
				}
			case dir == profiles:
				if !strings.HasPrefix(base, ".") {
					w.add(base)
				}
			case filepath.Dir(dir) == profiles:
				w.add(filepath.Base(dir))
			case dir == scandir:
				if k, ok := keyForScandirEntry(base); ok {
					w.add(k)
				}
			case filepath.Dir(filepath.Dir(dir)) == scandir && filepath.Base(dir) == "supervise":
				if k, ok := keyForScandirEntry(filepath.Base(filepath.Dir(dir))); ok {
					w.add(k)
				}
			}
		}
	}
}
