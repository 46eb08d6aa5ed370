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
	scan, err := takeLock(filepath.Join(c.opts.Scandir, ScandirLockName))
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
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
