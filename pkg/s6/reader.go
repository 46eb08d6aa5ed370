package s6

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// maxStatusSize caps the read of supervise/status; real files are 35 or 43 bytes.
const maxStatusSize = 64

// pollInterval is how often WaitSupervised re-reads a service directory.
const pollInterval = 5 * time.Millisecond

// pollWindow is how many still-waiting dirs one poll of WaitAllSupervised reads.
const pollWindow = 2

// ReadSupervision reads <serviceDir>/supervise/lock and supervise/status without following
// symlinks, without blocking, with capped reads, and without forking.
//
// serviceDir itself is trusted (symlinks in its path are followed); supervise/, lock and status
// are opened with O_NOFOLLOW. A supervisor is alive when some process holds an fcntl lock on
// supervise/lock; its pid is SupervisorPID. A missing serviceDir, supervise/, lock or status is
// not an error: it is a slot that has not been picked up yet, reported as Supervised false and/or
// HasStatus false. Any other problem (permission denied, a symlink or non-regular file, a status
// file of the wrong size) is an error naming the path. Safe for concurrent use.
func ReadSupervision(serviceDir string) (Supervision, error) {
	d, err := safefs.OpenDir(serviceDir)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Supervision{}, nil
		}
		return Supervision{}, err
	}
	defer d.Close()
	return ReadSupervisionAt(d, nil, time.Time{})
}

// ReadSupervisionAt is ReadSupervision on an open service directory. prev, when not nil, is an
// earlier read of the same directory: when its StatusID is stable (safefs.FileID.Stable, judged
// at now) and supervise/status still has that FileID, the decoded status is reused without a
// read. The lock is probed every time: liveness is never cached.
func ReadSupervisionAt(d *safefs.Dir, prev *Supervision, now time.Time) (Supervision, error) {
	var v Supervision
	sup, err := d.OpenDir("supervise")
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return v, nil
		}
		return v, err
	}
	defer sup.Close()

	pid, locked, err := lockHolder(sup)
	if err != nil {
		return v, err
	}
	v.Supervised, v.SupervisorPID = locked, pid

	if prev != nil && prev.HasStatus && prev.statusStable {
		if lst, err := sup.Lstat("status"); err == nil && safefs.IDOf(&lst) == prev.StatusID {
			// death_tally only grows when the service dies, which rewrites status too.
			v.HasStatus, v.Status, v.Changed, v.Deaths = true, prev.Status, prev.Changed, prev.Deaths
			v.StatusID, v.statusStable, v.raw = prev.StatusID, true, prev.raw
			return v, nil
		}
	}
	b, fst, err := sup.ReadFile("status", maxStatusSize)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return v, nil
		}
		return v, err
	}
	st, err := ParseStatus(b)
	if err != nil {
		return v, fmt.Errorf("parse %s/status: %w", sup.Path(), err)
	}
	v.HasStatus, v.Status, v.raw = true, st, string(b)
	v.Changed = time.Unix(fst.Mtim.Unix())
	v.StatusID = safefs.IDOf(&fst)
	v.statusStable = !now.IsZero() && v.StatusID.Stable(now)
	v.Deaths = deaths(sup)
	return v, nil
}

// deaths counts the records of supervise/death_tally.
func deaths(sup *safefs.Dir) int {
	// death_tally holds one 14-byte record (TAI64N, exit code, signal) per death since the
	// supervisor started: a cheap count of s6's own restarts, no read needed.
	if dt, ok, _ := sup.LstatIfExists("death_tally"); ok && dt.Mode&unix.S_IFMT == unix.S_IFREG {
		return int(dt.Size / deathRecordSize)
	}
	return 0
}

// deathRecordSize is the size of one supervise/death_tally record.
const deathRecordSize = 14

// lockHolder probes sup/lock with F_GETLK: s6-supervise holds a write lock on it while alive,
// so any conflicting lock means a live supervisor, and the kernel reports its pid. A missing
// lock file means no supervisor has ever run there. The file is opened O_NONBLOCK|O_NOCTTY, so
// even a planted FIFO or device never blocks; only a lock nobody holds is checked to be a
// regular file (a directory or FIFO is reported rather than read as "no supervisor"), which
// keeps a live slot's probe at three syscalls.
func lockHolder(sup *safefs.Dir) (pid int, locked bool, err error) {
	path := func() string { return sup.Path() + "/lock" } // for messages only
	fd, err := unix.Openat(sup.FD(), "lock", unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, false, nil
		}
		if errors.Is(err, unix.ELOOP) {
			err = safefs.ErrSymlink
		}
		return 0, false, &os.PathError{Op: "open", Path: path(), Err: err}
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk); err != nil {
		return 0, false, &os.PathError{Op: "fcntl F_GETLK", Path: path(), Err: err}
	}
	if lk.Type != unix.F_UNLCK {
		return int(lk.Pid), true, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, &os.PathError{Op: "stat", Path: path(), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, false, &os.PathError{Op: "lock", Path: path(), Err: safefs.ErrNotRegular}
	}
	return 0, false, nil
}

// WaitSupervised polls ReadSupervision on dir about every 5 ms until a supervisor holds
// <dir>/supervise/lock and supervise/status has been written. It blocks at most timeout (and
// never past ctx), returning an error naming dir and wrapping context.DeadlineExceeded when
// that runs out, ctx's error (wrapped) when
// ctx ends first, and at once any error ReadSupervision returns.
func WaitSupervised(ctx context.Context, dir string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		v, err := ReadSupervision(dir)
		if err != nil {
			return fmt.Errorf("wait for supervisor of %s: %w", dir, err)
		}
		if v.Supervised && v.HasStatus {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for supervisor of %s: %w", dir, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("wait for supervisor of %s: timed out after %s (supervised=%t, status=%t): %w",
				dir, timeout, v.Supervised, v.HasStatus, context.DeadlineExceeded)
		case <-tick.C:
		}
	}
}

// WaitAllSupervised waits, like WaitSupervised, for every dir of a batch at once, and fails the
// dirs still waiting only when stall (default 2 s) passes without one more of them being picked
// up, so a batch of any size gets the time s6-svscan needs while it keeps spawning supervisors.
// It returns one error per dir (nil for the ones picked up); a ReadSupervision error fails that
// dir at once; ctx ending fails every dir still waiting.
//
// A poll reads the waiting dirs in turn, from where the last one stopped, until pollWindow of
// them are still waiting: one of a 1,000-slot batch reads a few dirs, not all that wait, so the
// wait leaves the CPU to s6-svscan and the supervisors it spawns. The dirs picked up meanwhile
// are read as the polls come round to them (a poll passes any number of those), and before
// failing the batch a poll reads every waiting dir.
func WaitAllSupervised(ctx context.Context, dirs []string, stall time.Duration) []error {
	if stall <= 0 {
		stall = 2 * time.Second
	}
	errs := make([]error, len(dirs))
	if len(dirs) == 0 {
		return errs
	}
	waiting := make([]int, len(dirs))
	for i := range dirs {
		waiting[i] = i
	}
	next := 0 // where the next poll starts in waiting
	last := time.Now()
	for {
		began := time.Now()
		full := began.Sub(last) >= stall
		n, still, read := len(waiting), 0, 0
		for read < n && (full || still < pollWindow) {
			k := (next + read) % n
			i := waiting[k]
			read++
			v, err := ReadSupervision(dirs[i])
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("wait for supervisor of %s: %w", dirs[i], err)
			case v.Supervised && v.HasStatus:
			default:
				still++
				continue
			}
			waiting[k] = -1 // done: dropped below
			last = time.Now()
		}
		stop := (next + read) % n // the first dir this poll did not read (next itself when all were)
		left, at := waiting[:0], 0
		for k, i := range waiting {
			if k == stop {
				at = len(left)
			}
			if i >= 0 {
				left = append(left, i)
			}
		}
		waiting, next = left, at
		if len(waiting) == 0 {
			return errs
		}
		if full && time.Since(last) >= stall {
			for _, i := range waiting {
				errs[i] = fmt.Errorf("wait for supervisor of %s: s6-svscan picked up no slot of the batch for %s (%d of %d still waiting): %w",
					dirs[i], stall, len(waiting), len(dirs), context.DeadlineExceeded)
			}
			return errs
		}
		// The pause after a poll is nine times what it took (polls use at most a tenth of a
		// core), at least pollInterval, at most 250 ms.
		interval := min(max(pollInterval, 9*time.Since(began)), 250*time.Millisecond)
		select {
		case <-ctx.Done():
			for _, i := range waiting {
				errs[i] = fmt.Errorf("wait for supervisor of %s: %w", dirs[i], ctx.Err())
			}
			return errs
		case <-time.After(interval):
		}
	}
}
