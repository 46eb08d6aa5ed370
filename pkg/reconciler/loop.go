package reconciler

import (
	"context"
	"sync"
	"time"

	"k8s.io/client-go/util/workqueue"
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
	c.publishConfigState(true)
	defer c.publishConfigState(false)
	defer c.ReleaseLease()

	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](500*time.Millisecond, 5*time.Minute),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: controllerName, MetricsProvider: c.metrics.queueProvider()},
	)
	defer queue.ShutDown()
	kick := make(chan struct{}, 1)
	resync := make(chan struct{}, 1)
	requestResync := func() {
		select {
		case resync <- struct{}{}:
		default:
		}
	}
	// The watches are in place before the first pass lists anything: an entry made after that
	// listing is an event (read once the workers run), one made before it is listed. Armed
	// after the pass, a profile dir made in between and given its SOUL.md after the resync's
	// listing would wait for the next resync.
	w := newWatcher(c, log, queue.Add, c.profileHint(queue.Add), requestResync)
	defer w.close()
	if !c.start(ctx) {
		return nil // stopped during the boot pass: it is not recorded, the next start redoes it
	}
	c.enqueue = queue.Add // the topology's wake-ups (topology.go); set before any worker runs
	c.watcher.Store(w)
	defer c.watcher.Store(nil)
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
	go w.run()
	go c.feed(ctx, queue, kick, resync)
	if c.opts.OnReady != nil {
		c.opts.OnReady()
	}

	ticker := time.NewTicker(c.settings().resyncPeriod)
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
			c.settings().exec.Recount()
			c.checkLease(ctx)
			requestResync()
		case <-c.reconfigured:
			// A new configuration generation (Reconfigure): its period from now on, and a
			// look at every key under it at once.
			ticker.Reset(c.settings().resyncPeriod)
			c.settings().exec.Recount()
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
		if modeOf(c.own.token()) != modeOwner {
			// A standby looks at no key; its resync is done (a standby is healthy).
			now := time.Now()
			c.health.lastResync.Store(now.UnixNano())
			c.metrics.resynced(now)
			continue
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
	deadline := time.NewTimer(c.settings().resyncPeriod)
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
	log := c.keyLogs.of(key)
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
// watch (capped) so that its SOUL.md appearing is an event of its own. A SOUL.md that lands
// between the first look and the watch makes no event: the look is made again once the watch
// is in place.
func (c *Controller) profileHint(add func(string)) func(name string, w *watcher) {
	return func(name string, w *watcher) {
		if c.known(name) {
			add(name)
			return
		}
		soul, err := c.hasSoul(name)
		if err == nil && !soul && w.watchCandidate(name) {
			soul, err = c.hasSoul(name)
		}
		if err != nil || soul {
			add(name) // on an error, the reconcile reports it
		}
	}
}

// hasSoul reports whether profiles/name holds SOUL.md.
func (c *Controller) hasSoul(name string) (bool, error) {
	v, err := c.loader.Open()
	if err != nil {
		return false, err
	}
	defer v.Close()
	return v.HasSoul(name), nil
}
