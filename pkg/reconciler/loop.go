package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/client-go/util/workqueue"

	"github.com/hermes/profile-controller/pkg/desired"
)

// ShutdownGrace is how long an action in flight may run after SIGTERM before it is abandoned.
const ShutdownGrace = 1500 * time.Millisecond

// feedLowWater is how many resync keys may wait in the queue at once: the resync feeds its
// keys a few at a time, so an event for another profile never waits behind a whole resync.
const feedLowWater = 2

// flushPeriod is how often marked memory files are written.
const flushPeriod = 250 * time.Millisecond

// maxCandidateWatches caps the watches on entries of profiles/ that are not profiles yet (no
// SOUL.md): enough for profiles being created, never exhausted by junk on the volume. Past it,
// such an entry becomes a profile at the next resync.
const maxCandidateWatches = 1000

// Run is the always-on loop: the boot pass when pending, then level-triggered reconciles of
// keys fed by file-system events and a periodic resync, until ctx is done. On ctx done it
// takes no new work, lets the action in flight finish for up to ShutdownGrace, and returns nil.
//
// Events go straight to the queue; the resync lists every key once per period and feeds them
// a few at a time (feedLowWater), so events for other profiles never wait behind it. Entries of
// profiles/ that are not profiles (no SOUL.md) are never queued, and never get memory.
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
		if ctx.Err() != nil {
			return nil // stopped during the boot pass: it is not recorded, the next start redoes it
		}
	} else {
		c.prime()
	}

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](500*time.Millisecond, 5*time.Minute),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: controllerName, MetricsProvider: c.metrics.queueProvider()},
	)
	c.enqueue = queue.Add // the topology's wake-ups (topology.go); set before any worker runs
	kick := make(chan struct{}, 1)
	resync := make(chan struct{}, 1)
	requestResync := func() {
		select {
		case resync <- struct{}{}:
		default:
		}
	}

	w := newWatcher(c, log, queue.Add, c.profileHint(queue.Add), requestResync)
	defer w.close()
	requestResync()

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
				c.metrics.working(1)
				c.busy.Add(1)
				c.work(ctx, workCtx, queue, w, key)
				c.busy.Add(-1)
				c.metrics.working(-1)
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		})
	}
	go w.run(ctx)
	go c.feed(ctx, queue, kick, resync)
	if c.opts.OnReady != nil {
		c.opts.OnReady()
	}

	ticker := time.NewTicker(c.opts.ResyncPeriod)
	defer ticker.Stop()
	flush := time.NewTicker(flushPeriod)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			log.Info("Shutting down")
			queue.ShutDown()
			stop := time.AfterFunc(ShutdownGrace, cancelWork)
			wg.Wait()
			stop.Stop()
			c.refreshRoots(false)
			c.flushMemory()
			return nil
		case <-ticker.C:
			c.exec.Recount()
			requestResync()
		case <-flush.C:
			c.flushMemory()
		}
	}
}

// feed runs each requested resync: one listing of profiles/ and the scandir, then every key
// into the queue while the queue holds fewer than feedLowWater keys.
func (c *Controller) feed(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], kick, resync <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync:
		}
		c.refreshRoots(true)
		r := c.openRoots()
		l := c.list(r, func(name string) bool { return !c.known(name) && (r.vol == nil || !r.vol.HasSoul(name)) })
		r.close()
		for _, k := range l.keys {
			for queue.Len() >= feedLowWater {
				select {
				case <-ctx.Done():
					return
				case <-kick:
				}
			}
			queue.Add(k)
		}
		// Finished when the queue has drained what was fed: a wedged worker keeps it from
		// finishing, and /healthz says so after three resync periods.
		if c.drained(ctx, queue, kick) {
			now := time.Now()
			c.health.lastResync.Store(now.UnixNano())
			c.metrics.resynced(now)
		}
	}
}

// drained waits, at most one resync period, until the queue holds no key and no worker is in a
// reconcile.
func (c *Controller) drained(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], kick <-chan struct{}) bool {
	deadline := time.NewTimer(c.opts.ResyncPeriod)
	defer deadline.Stop()
	for {
		if queue.Len() == 0 && c.busy.Load() == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-kick:
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
	if c.known(key) && w.ensure(key) {
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

// known reports whether the controller keeps state for key (a profile or a slot it has seen).
func (c *Controller) known(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[key] != nil
}

// profileHint gates events for entries of profiles/: a key already known, or an entry holding
// SOUL.md, is queued; anything else (junk, or a profile still being created) is not, and gets a
// watch (capped) so that its SOUL.md appearing is an event of its own.
func (c *Controller) profileHint(add func(string)) func(name string, w *watcher) {
	return func(name string, w *watcher) {
		if c.known(name) {
			add(name)
			return
		}
		v, err := c.loader.Open()
		if err != nil {
			add(name) // let the reconcile report it
			return
		}
		soul := v.HasSoul(name)
		v.Close()
		if soul {
			add(name)
			return
		}
		w.watchCandidate(name)
	}
}

// watcher turns file-system events into keys. It is a hint only: the resync covers anything
// it misses, including watches the kernel refused (inotify limits).
type watcher struct {
	c          *Controller
	fs         *fsnotify.Watcher
	add        func(string)
	addProfile func(string, *watcher)
	all        func()
	log        logLike
	mu         sync.Mutex
	watched    map[string]bool
	candidates int // watches on profiles/ entries that were not profiles when watched
	warnedOnce bool
}

type logLike interface {
	Info(msg string, kv ...any)
	Error(err error, msg string, kv ...any)
}

func newWatcher(c *Controller, log logLike, add func(string), addProfile func(string, *watcher), all func()) *watcher {
	w := &watcher{c: c, add: add, addProfile: addProfile, all: all, log: log, watched: map[string]bool{}}
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

// watchCandidate watches profiles/<name> when it is a real directory with a valid name, up to
// maxCandidateWatches such watches.
func (w *watcher) watchCandidate(name string) {
	if w.fs == nil || desired.ValidateName(name) != nil {
		return
	}
	dir := filepath.Join(w.c.opts.HermesHome, "profiles", name)
	w.mu.Lock()
	full := w.candidates >= maxCandidateWatches
	w.mu.Unlock()
	if full || w.isWatched(dir) || !isRealDir(dir) {
		return
	}
	if w.watch(dir) {
		w.mu.Lock()
		w.candidates++
		w.mu.Unlock()
	}
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
			// Only names that can change a decision bring a look: a gateway's read-merge-write
			// of its state file (temp file created, written, closed, renamed) is one look, not five.
			case dir == home:
				switch base {
				case "profiles":
					w.watch(profiles)
					w.all()
				case desired.StateFileName:
					w.add(desired.DefaultProfile)
				}
			case dir == profiles:
				if !strings.HasPrefix(base, ".") {
					w.addProfile(base, w)
				}
			case filepath.Dir(dir) == profiles:
				if base == desired.StateFileName || base == desired.SoulFileName ||
					(base == desired.ConfigFileName && w.c.opts.Topology == Multiplex) {
					w.addProfile(filepath.Base(dir), w)
				}
			case dir == scandir:
				if k, ok := keyForScandirEntry(base); ok {
					w.add(k)
				}
			case filepath.Dir(filepath.Dir(dir)) == scandir && filepath.Base(dir) == "supervise":
				// s6-supervise renames each new status file in.
				if base != "status" {
					continue
				}
				if k, ok := keyForScandirEntry(filepath.Base(filepath.Dir(dir))); ok {
					w.add(k)
				}
			}
		}
	}
}
