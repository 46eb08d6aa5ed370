package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hermes/profile-controller/pkg/s6"
)

// Services starts, stops and kills supervised services. *s6.Client implements it.
type Services interface {
	Up(ctx context.Context, dir string) error
	Down(ctx context.Context, dir string) error
	Kill(ctx context.Context, dir string) error
}

// Scanner tells s6-svscan to rescan its scandir. *s6.Client implements it.
type Scanner interface {
	Rescan(ctx context.Context, scandir string) error
	RescanPrune(ctx context.Context, scandir string) error
}

// StaleCleaner opens HERMES_HOME for one batch of the boot pass's stale-file clean-ups.
type StaleCleaner func() (StaleBatch, error)

// StaleBatch unlinks profiles' stale runtime files, one profile per call, from several
// goroutines at once.
type StaleBatch interface {
	CleanStale(profile string) (removed []string, err error)
	Close()
}

// Executor applies actions to the scandir and s6. Every action is idempotent.
type Executor struct {
	Scandir  string
	Services Services
	Scanner  Scanner
	// Owner, when set, owns the supervise skeleton of new slots.
	Owner *s6.Owner
	// CleanStale unlinks stale runtime files (nil: clean-stale is a no-op).
	CleanStale StaleCleaner
	// PickupTimeout is how long s6-svscan may go without picking up one more slot of a batch
	// before the rest of the batch fails (default 2 s); see pickup.
	PickupTimeout time.Duration
	// ServicesMax is s6-svscan's service limit, loggers included (0: unchecked). A create that
	// would pass it is refused: on s6 ≥ 2.12 one service too many stops every new one.
	ServicesMax int

	// count is the scandir's service count, shared by the executors of every configuration
	// generation (nil: the executor's own, made on first use).
	count     *serviceCount
	countOnce sync.Once
}

// serviceCount counts the scandir's services (loggers included) while counted is true: counted
// once, then kept as slots are created; a removal or Recount makes the next create count again.
type serviceCount struct {
	mu       sync.Mutex
	services int
	counted  bool
}

func (e *Executor) counter() *serviceCount {
	e.countOnce.Do(func() {
		if e.count == nil {
			e.count = &serviceCount{}
		}
	})
	return e.count
}

// ErrServiceLimit is returned for a create that would pass s6-svscan's service limit.
var ErrServiceLimit = errors.New("s6-svscan service limit reached")

// Recount forgets the kept service count: the next create counts the scandir again. The loop
// calls it once per resync, so services added by others are noticed.
func (e *Executor) Recount() {
	c := e.counter()
	c.mu.Lock()
	c.counted = false
	c.mu.Unlock()
}

// reserveServices reserves room for a create's services under ServicesMax; release gives it
// back when the create fails.
func (e *Executor) reserveServices(a Action) (release func(), err error) {
	if e.ServicesMax <= 0 {
		return func() {}, nil
	}
	need := 1
	for _, f := range a.Files {
		if strings.HasPrefix(f.Name, "log/") {
			need = 2
			break
		}
	}
	c := e.counter()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.counted {
		n, err := s6.CountServices(e.Scandir)
		if err != nil {
			return nil, err
		}
		c.services, c.counted = n, true
	}
	if n := c.services; n+need > e.ServicesMax {
		return nil, fmt.Errorf("%w: %s holds %d services (loggers count) and %s needs %d more, limit %d; raise servicesMax together with s6-svscan's -C/-c, or remove services",
			ErrServiceLimit, e.Scandir, n, a.Slot, need, e.ServicesMax)
	}
	c.services += need
	return func() {
		c.mu.Lock()
		c.counted = false
		c.mu.Unlock()
	}, nil
}

// Result is the outcome of applying one batch of actions.
type Result struct {
	// Started lists the profiles the controller started (by start, or by creating an up slot).
	Started []string
	// Errors maps a profile (or a staging entry) to the first error of its actions; later
	// actions of a failed profile are skipped.
	Errors map[string]error
	// Warnings are problems that block nothing: a stale file that is not a regular file is
	// left in place and reported, and the profile still gets its slot.
	Warnings []error
}

// Err joins every error of the result, or nil.
func (r Result) Err() error {
	var errs []error
	for _, err := range r.Errors {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// phase orders actions: file work first, then one scan, then process control, then removal.
func phase(k Kind) int {
	switch k {
	case CleanStaging, CleanStale:
		return 0
	case Update, Mark:
		return 1
	case Create, Rescan:
		return 2
	case Start, Stop, Terminate, Kill:
		return 3
	default: // Unregister
		return 4
	}
}

// Apply runs the actions in phase order. It keeps going after an error, skipping only the
// later actions of the profile that failed. After all creates and rescans it runs one
// s6-svscanctl -a; after all unregisters one s6-svscanctl -an.
func (e *Executor) Apply(ctx context.Context, actions []Action) Result {
	res := Result{Errors: map[string]error{}}
	fail := func(key string, err error) {
		if _, ok := res.Errors[key]; !ok {
			res.Errors[key] = err
		}
	}
	var picked []Action
	var unregistered []string
	for ph := 0; ph <= 4; ph++ {
		var done []error
		if ph <= phase(Create) {
			done = e.applyFileWork(ctx, actions, ph, res.Errors)
		}
		for i, a := range actions {
			if phase(a.Kind) != ph {
				continue
			}
			key := actionKey(a)
			if _, failed := res.Errors[key]; failed {
				continue
			}
			var err error
			if done != nil && !errors.Is(done[i], errNotRun) {
				err = done[i]
			} else {
				if err := ctx.Err(); err != nil {
					fail(key, fmt.Errorf("%s: %w", a, err))
					continue
				}
				err = e.apply(ctx, a, nil)
			}
			if err != nil {
				if a.Kind == CleanStale {
					res.Warnings = append(res.Warnings, fmt.Errorf("%s: %w", a, err))
				} else {
					fail(key, fmt.Errorf("%s: %w", a, err))
				}
				continue
			}
			switch a.Kind {
			case Create, Rescan:
				picked = append(picked, a)
			case Start:
				res.Started = append(res.Started, a.Profile)
			case Unregister:
				unregistered = append(unregistered, a.Profile)
			}
		}
		if ph == 2 && len(picked) > 0 {
			e.pickup(ctx, picked, &res, fail)
		}
	}
	if len(unregistered) > 0 {
		if err := e.Scanner.RescanPrune(ctx, e.Scandir); err != nil {
			for _, p := range unregistered {
				fail(p, err)
			}
		}
	}
	return res
}

func actionKey(a Action) string {
	if a.Profile != "" {
		return a.Profile
	}
	return a.Slot
}

// errNotRun marks an action applyFileWork did not run (its key failed first, or ctx ended).
var errNotRun = errors.New("not run")

// applyFileWork runs the file work of phase ph (clean-up, updates, marks, creates: no fork,
// no s6-svscanctl) of every key in parallel, each key's actions in order and none after its
// first error, and returns each action's error by index (errNotRun: not run); Apply then books
// them in order as if it had run them itself. Keys that failed earlier (failed, only read
// here) are skipped.
func (e *Executor) applyFileWork(ctx context.Context, actions []Action, ph int, failed map[string]error) []error {
	var keys []string
	byKey := map[string][]int{}
	for i, a := range actions {
		if phase(a.Kind) != ph {
			continue
		}
		k := actionKey(a)
		if _, ok := failed[k]; ok {
			continue
		}
		if byKey[k] == nil {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	errs := make([]error, len(actions))
	for i := range errs {
		errs[i] = errNotRun
	}
	var b batch
	if ph == phase(Create) && len(keys) > 0 {
		if c, err := s6.OpenCreator(e.Scandir); err == nil {
			defer c.Close()
			b.creator = c // else each create opens the scandir itself, and reports why it cannot
		}
	}
	if ph == phase(CleanStale) && e.CleanStale != nil && len(keys) > 0 {
		if sb, err := e.CleanStale(); err == nil {
			defer sb.Close()
			b.stale = sb // else each clean-up opens HERMES_HOME itself, and reports why it cannot
		}
	}
	parallel(len(keys), func(j int) {
		for _, i := range byKey[keys[j]] {
			if ctx.Err() != nil {
				return // Apply reports it
			}
			a := actions[i]
			if errs[i] = e.apply(ctx, a, &b); errs[i] != nil && a.Kind != CleanStale {
				return // a failed clean-stale is only a warning
			}
		}
	})
	return errs
}

// pickup runs one s6-svscanctl -a and waits for the supervisors of the whole batch at once. A
// failed scan leaves the slots published and consistent; the next pass sees them unsupervised
// and rescans.
func (e *Executor) pickup(ctx context.Context, picked []Action, res *Result, fail func(string, error)) {
	if err := e.Scanner.Rescan(ctx, e.Scandir); err != nil {
		for _, a := range picked {
			fail(a.Profile, fmt.Errorf("%s: %w", a, err))
		}
		return
	}
	dirs := make([]string, len(picked))
	for i, a := range picked {
		dirs[i] = filepath.Join(e.Scandir, a.Slot)
	}
	errs := s6.WaitAllSupervised(ctx, dirs, e.PickupTimeout)
	for i, a := range picked {
		if errs[i] != nil {
			fail(a.Profile, fmt.Errorf("%s: %w", a, errs[i]))
			continue
		}
		if a.Kind == Create && !a.Down {
			res.Started = append(res.Started, a.Profile)
		}
	}
}

// batch is what applyFileWork opened once for the file work of a phase (nil fields: not open).
type batch struct {
	creator *s6.Creator
	stale   StaleBatch
}

// apply runs one action, through what b holds open when it is not nil.
func (e *Executor) apply(ctx context.Context, a Action, b *batch) error {
	if b == nil {
		b = &batch{}
	}
	cr := b.creator
	dir := filepath.Join(e.Scandir, a.Slot)
	switch a.Kind {
	case CleanStaging:
		return s6.RemoveStaging(e.Scandir, a.Slot)
	case CleanStale:
		if b.stale != nil {
			_, err := b.stale.CleanStale(a.Profile)
			return err
		}
		if e.CleanStale == nil {
			return nil
		}
		sb, err := e.CleanStale()
		if err != nil {
			return err
		}
		defer sb.Close()
		_, err = sb.CleanStale(a.Profile)
		return err
	case Update:
		for _, f := range a.Files {
			if err := s6.WriteFile(dir, f); err != nil {
				return err
			}
		}
		if a.Owner != nil {
			return s6.EnsureSkeleton(dir, *a.Owner)
		}
		return nil
	case Mark:
		return s6.SetDown(dir, a.Down)
	case Create:
		release, err := e.reserveServices(a)
		if err != nil {
			return err
		}
		if cr != nil {
			err = cr.CreateSlot(a.Slot, a.Files, a.Down, e.Owner)
		} else {
			err = s6.CreateSlot(e.Scandir, a.Slot, a.Files, a.Down, e.Owner)
		}
		if err != nil {
			release()
			return err
		}
		return nil
	case Rescan:
		return nil // batched in pickup
	case Start:
		if err := s6.SetDown(dir, false); err != nil {
			return err
		}
		return e.Services.Up(ctx, dir)
	case Stop:
		if err := s6.SetDown(dir, true); err != nil {
			return err
		}
		return e.Services.Down(ctx, dir)
	case Terminate:
		if err := s6.SetDown(dir, true); err != nil {
			return err
		}
		return e.Services.Down(ctx, dir)
	case Kill:
		return e.Services.Kill(ctx, dir)
	case Unregister:
		// Only planned once the gateway is down (or was killed): removal never waits.
		e.Recount()
		return s6.RemoveSlot(e.Scandir, a.Slot)
	}
	return fmt.Errorf("unknown action kind %q", a.Kind)
}
