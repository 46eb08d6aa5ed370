package reconciler

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// parallelMax caps the workers of parallel: the work is mostly syscalls, so more workers than
// Ps only queue up.
const parallelMax = 4

// parallelChunk is how many items a worker takes at a time: few enough to even out the
// workers, enough that taking them costs nothing next to the work.
const parallelChunk = 16

// parallel calls do(i) for every i in [0, n), on up to GOMAXPROCS workers (one under `run`,
// which sets GOMAXPROCS=1), and returns when all are done. Calls for distinct i must be
// independent.
func parallel(n int, do func(i int)) { parallelWorkers(n, func(_, i int) { do(i) }) }

// parallelWorkers is parallel telling each call which worker makes it, in [0, parallelMax): calls
// with the same worker never overlap.
func parallelWorkers(n int, do func(worker, i int)) {
	workers := min(runtime.GOMAXPROCS(0), parallelMax, (n+parallelChunk-1)/parallelChunk)
	if workers <= 1 {
		for i := range n {
			do(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(parallelChunk)) - parallelChunk
				if lo >= n {
					return
				}
				for i := lo; i < min(lo+parallelChunk, n); i++ {
					do(w, i)
				}
			}
		})
	}
	wg.Wait()
}

// lookKeys looks at and plans keys into out (one entry per key, so the pass keeps the
// listing's order), in parallel: the looks of distinct keys are independent, as for the loop's
// two workers; only the root's planning under Multiplex depends on the others, and the caller
// does that after.
func (c *Controller) lookKeys(r *roots, s *settings, keys []string, boot bool, now time.Time, out []planned) {
	parallel(len(keys), func(i int) {
		lk, d := c.lookWith(r, s, keys[i], boot, now)
		out[i] = planned{lk, d}
	})
}
