package hostile

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Every race runs at most MaxRounds rounds or Budget, whichever ends first.
const (
	MaxRounds = 2000
	Budget    = 5 * time.Second
)

// Rounds calls round(0), round(1), ... until it has made MaxRounds calls, Budget has passed, or
// round returns false. It returns how many calls it made.
func Rounds(round func(i int) bool) int {
	deadline := time.Now().Add(Budget)
	i := 0
	for i < MaxRounds && time.Now().Before(deadline) {
		ok := round(i)
		i++
		if !ok {
			break
		}
	}
	return i
}

// Within runs fn and fails the test (t.Fatal) unless fn returns within limit: code that reads
// an untrusted tree must never block, on a FIFO or anything else.
func Within(t testing.TB, limit time.Duration, fn func()) {
	t.Helper()
	WithinValue(t, limit, func() struct{} { fn(); return struct{}{} })
}

// WithinValue is Within for a function with a result, which it returns.
func WithinValue[T any](t testing.TB, limit time.Duration, fn func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	select {
	case v := <-done:
		return v
	case <-time.After(limit):
		t.Fatalf("did not return within %v (blocked on a FIFO?)", limit)
		panic("unreachable")
	}
}

// Attack runs an attacker in its own goroutine: attack(0), attack(1), ... as fast as it can,
// until the returned stop is called. A round returns whether it landed (counted) and an error,
// which fails the test (t.Errorf) and ends the attack. stop ends the attack, waits for it and
// returns how many rounds landed; it may be called more than once, and is called when the test
// ends (so a test that fails early never leaves an attacker running).
func Attack(t testing.TB, attack func(round int) (landed bool, err error)) (stop func() int64) {
	var (
		done   atomic.Bool
		landed atomic.Int64
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !done.Load(); i++ {
			ok, err := attack(i)
			if err != nil {
				t.Errorf("attack round %d: %v", i, err)
				return
			}
			if ok {
				landed.Add(1)
			}
		}
	}()
	stop = func() int64 {
		done.Store(true)
		wg.Wait()
		return landed.Load()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// Swap is an attacker that keeps exchanging Dir/Name with each of Spares in turn, twice in a
// row each (so Name has its own entry back in between), with renameat2 RENAME_EXCHANGE: atomic,
// both names always exist, and every inode keeps its identity.
type Swap struct {
	Dir, Name string
	Spares    []string
	// Refill, when set, puts back Name or a spare that the code under test removed, before
	// each exchange. It may fail with EEXIST (the name came back by itself).
	Refill func(dirfd int, name string) error
	// MayVanish says the code under test may remove or rename Name or a spare: an exchange that
	// finds one side missing is then retried rather than an error. A set Refill implies it.
	MayVanish bool
}

// Start opens Dir (the directory it is now: later renames of Dir itself are not followed, and
// Dir must not be a symlink) and starts the attacker; see Attack for stop, which returns how
// many exchanges were made.
func (s Swap) Start(t testing.TB) (stop func() int64) {
	t.Helper()
	fd, err := unix.Open(s.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before Attack's own cleanup, so it runs after the attacker has stopped.
	t.Cleanup(func() { unix.Close(fd) })
	mayVanish := s.MayVanish || s.Refill != nil
	return Attack(t, func(i int) (bool, error) {
		spare := s.Spares[(i/2)%len(s.Spares)]
		if s.Refill != nil {
			for _, n := range []string{s.Name, spare} {
				if err := unix.Fstatat(fd, n, new(unix.Stat_t), unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
					if err := s.Refill(fd, n); err != nil && !errors.Is(err, unix.EEXIST) {
						return false, fmt.Errorf("refill %s: %w", n, err)
					}
				}
			}
		}
		err := unix.Renameat2(fd, s.Name, fd, spare, unix.RENAME_EXCHANGE)
		switch {
		case err == nil:
			return true, nil
		case mayVanish && errors.Is(err, unix.ENOENT):
			return false, nil
		default:
			return false, fmt.Errorf("exchange %s and %s in %s: %w", s.Name, spare, s.Dir, err)
		}
	})
}

// StopAll stops every attacker and returns the sum of what their stops returned.
func StopAll(stops []func() int64) int64 {
	var n int64
	for _, stop := range stops {
		n += stop()
	}
	return n
}
