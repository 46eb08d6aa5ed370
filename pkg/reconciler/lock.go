package reconciler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned by Lock when another controller holds the runtime dir or the scandir.
var ErrLocked = errors.New("another profile-controller is running")

// ScandirLockName is the lock file a controller holds in the scandir. s6-svscan ignores
// dot-names, and the controller never touches scandir entries but its slots, their staging dirs
// and this file.
const ScandirLockName = ".profile-controller.lock"

// Lock takes the runtime dir's lock file and the scandir's, so that only one controller acts on
// either at a time (two controllers with different runtime dirs on one scandir would destroy
// each other's staging dirs and run every action twice). The returned func releases both. It
// never blocks. Once held, further calls (Run's own) succeed at once and return a no-op
// release, so a caller may take the lock before Run to learn of a second controller before
// anything else (a metrics port) is set up. A scandir that does not exist yet is not locked
// (the pass reports it).
func (c *Controller) Lock() (func(), error) {
	c.lockMu.Lock()
	defer c.lockMu.Unlock()
	if c.lockFile != nil {
		return func() {}, nil
	}
	if err := os.MkdirAll(c.opts.RuntimeDir, 0o755); err != nil {
		return nil, fmt.Errorf("runtime dir: %w", err)
	}
	run, err := takeLock(filepath.Join(c.opts.RuntimeDir, "lock"))
	if err != nil {
		return nil, err
	}
	scan, err := takeSilentLock(filepath.Join(c.opts.Scandir, ScandirLockName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		run.Close()
		return nil, err
	}
	c.lockFile, c.scanLock = run, scan
	return func() {
		c.lockMu.Lock()
		defer c.lockMu.Unlock()
		if c.lockFile == run {
			c.lockFile, c.scanLock = nil, nil
			run.Close()
			if scan != nil {
				scan.Close()
			}
		}
	}, nil
}

// takeLock opens (creating it, never through a symlink) and flocks path, and writes our pid into
// it. A lock held elsewhere is ErrLocked naming the path and the holder's pid. A missing parent
// directory is an error wrapping fs.ErrNotExist.
func takeLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("lock %s: not a regular file", path)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by pid %s", ErrLocked, path, strings.TrimSpace(string(b[:n])))
	}
	// Our pid, written only when the file does not already say it (a no-op pass writes nothing).
	want := []byte(strconv.Itoa(os.Getpid()) + "\n")
	have := make([]byte, len(want)+1)
	if n, _ := f.ReadAt(have, 0); n != len(want) || string(have[:n]) != string(want) {
		_ = f.Truncate(0)
		_, _ = f.WriteAt(want, 0)
	}
	return f, nil
}

// takeSilentLock opens (creating it empty, never through a symlink) and flocks path without
// ever writing to it, so a pass with nothing to do changes nothing in the scandir. A lock held
// elsewhere is ErrLocked naming the path and the holder's pid, which the kernel lists in
// /proc/locks.
func takeSilentLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("lock %s: not a regular file", path)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by pid %s", ErrLocked, path, flockHolder(st))
	}
	return f, nil
}

// flockHolder finds the pid holding a flock on the file st describes in /proc/locks
// ("1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF"), or "unknown".
func flockHolder(st unix.Stat_t) string {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return "unknown"
	}
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
			return f[4]
		}
	}
	return "unknown"
}
