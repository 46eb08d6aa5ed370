package volume

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
)

// staleFileNames are the runtime files a dead gateway leaves in its profile directory; the boot
// pass removes them, because no gateway of this container can be running before it.
var staleFileNames = []string{"gateway.pid", "processes.json"}

// CleanStale unlinks gateway.pid and processes.json in dir when they are regular files, and
// returns the paths it removed. A missing file is fine. An entry of another type (a symlink, a directory, a FIFO)
// is left alone and reported in err, naming it; the other file is still handled. The type is
// checked with fstatat(AT_SYMLINK_NOFOLLOW) and the entry removed with unlinkat on dir's
// descriptor, which never follows a symlink even if the entry is swapped in between. Idempotent.
func CleanStale(dir *safefs.Dir) (removed []string, err error) {
	var errs []error
	for _, name := range staleFileNames {
		path := dir.Path() + "/" + name
		st, err := dir.Lstat(name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("clean stale file: %w", err))
			}
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			errs = append(errs, fmt.Errorf("clean stale file: refusing to unlink %q: it is %s, not a regular file", path, safefs.Kind(st.Mode)))
			continue
		}
		if err := unix.Unlinkat(dir.FD(), name, 0); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("clean stale file: unlink %q: %w", path, err))
			}
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// CleanStaleProfile runs CleanStale in one profile's directory: HERMES_HOME itself for
// "default", else HERMES_HOME/profiles/<name>, opened one component at a time with O_NOFOLLOW
// (a symlinked profiles/ or profile directory is an error and nothing is removed). home is
// trusted; name must pass desired.ValidateName (or be "default").
func CleanStaleProfile(home, name string) (removed []string, err error) {
	h, err := OpenHome(home)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.CleanStale(name)
}

// Home is HERMES_HOME opened for a batch of CleanStaleProfile calls: a boot pass cleans every
// profile, and opening home and profiles/ once instead of for each saves 4 of 8 syscalls a
// profile. Its methods may be called from several goroutines at once.
type Home struct {
	home     *safefs.Dir
	profiles *safefs.Dir // nil with profilesErr when profiles/ cannot be opened
	// profilesErr is why profiles/ is not open, reported by each named profile's clean-up (a
	// volume with the root profile only has no profiles/).
	profilesErr error
}

// OpenHome opens home (trusted) and, when it can, its profiles/ without following a symlink.
func OpenHome(home string) (*Home, error) {
	dir, err := safefs.OpenDir(home)
	if err != nil {
		return nil, fmt.Errorf("clean stale files: %w", err)
	}
	h := &Home{home: dir}
	if h.profiles, h.profilesErr = dir.OpenDir(desired.ProfilesDirName); h.profilesErr != nil {
		h.profiles = nil
	}
	return h, nil
}

// CleanStale is CleanStaleProfile on the opened home.
func (h *Home) CleanStale(name string) (removed []string, err error) {
	if name == desired.DefaultProfile {
		return CleanStale(h.home)
	}
	if err := desired.ValidateName(name); err != nil {
		return nil, fmt.Errorf("clean stale files: %w", err)
	}
	if h.profiles == nil {
		return nil, fmt.Errorf("clean stale files: %w", h.profilesErr)
	}
	pdir, err := h.profiles.OpenDir(name)
	if err != nil {
		return nil, fmt.Errorf("clean stale files: %w", err)
	}
	defer pdir.Close()
	return CleanStale(pdir)
}

// Close closes the directories.
func (h *Home) Close() {
	if h.profiles != nil {
		h.profiles.Close()
	}
	h.home.Close()
}
