package volume

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// LeaseName is the volume lease: the file in HERMES_HOME whose exclusive flock makes one
// controller the owner of the volume's gateways.
const LeaseName = ".profile-controller.lease"

// MaxLeaseContent caps how much of another holder's lease file is read.
const MaxLeaseContent = 4 << 10

// ErrLeaseHeld is wrapped by the *LeaseHeldError that AcquireLease returns when another
// controller (or anything else) holds the lease's flock.
var ErrLeaseHeld = errors.New("lease held by another controller")

// Holder is who holds a lease, as its holder wrote it into the lease file.
type Holder struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
	// CheckEvery is how often the holder re-validates the lease (its resync period, e.g. "10s"),
	// so that a controller taking a replaced lease file knows how long to wait for it.
	CheckEvery string `json:"checkEvery,omitempty"`
}

// MaxCheckEvery caps the CheckEvery a holder's file may claim.
const MaxCheckEvery = 5 * time.Minute

// Period is CheckEvery as a duration: 0 when absent or unusable, at most MaxCheckEvery.
func (h Holder) Period() time.Duration {
	d, err := time.ParseDuration(h.CheckEvery)
	if err != nil || d <= 0 {
		return 0
	}
	return min(d, MaxCheckEvery)
}

// String names the holder on one line, e.g. "host gw-a pid 1234"; a holder whose file could not
// be decoded is "unknown".
func (h Holder) String() string {
	if h.Host == "" && h.PID == 0 {
		return "unknown"
	}
	return "host " + plainOrQuoted(h.Host) + " pid " + strconv.Itoa(h.PID)
}

// SinceText is Since in RFC 3339 (UTC), or "unknown".
func (h Holder) SinceText() string {
	if h.Since.IsZero() {
		return "unknown"
	}
	return h.Since.UTC().Format(time.RFC3339)
}

// plainOrQuoted keeps a host name as it is when it is a plain word, else quotes it, so a hostile
// lease file cannot add a line or a field to a message.
func plainOrQuoted(s string) string {
	if s != "" && len(s) <= 64 && strings.IndexFunc(s, func(r rune) bool {
		return r > unicode.MaxASCII || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '.' || r == '-' || r == '_')
	}) < 0 {
		return s
	}
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.QuoteToASCII(strings.ToValidUTF8(s, "?"))
}

// LeaseHeldError is AcquireLease's answer when the lock is held elsewhere: the lease file's
// path and the holder it names (Holder is zero when the file says nothing usable).
type LeaseHeldError struct {
	Path   string
	Holder Holder
	// ID is the held file's device and inode.
	ID FileKey
}

// FileKey is a file's device and inode.
type FileKey struct{ Dev, Ino uint64 }

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("%s is held by %s since %s", e.Path, e.Holder, e.Holder.SinceText())
}

func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// Lease is a held volume lease: an open descriptor of the lease file with an exclusive flock.
type Lease struct {
	f      *os.File
	path   string
	holder Holder
	id     FileKey
	check  string // the path whose inode must stay the locked one: the lease file, or HERMES_HOME
	onDir  bool   // a read-only volume without a lease file: HERMES_HOME itself is locked
	// st is the locked file's stat at open; writable is false on a read-only volume;
	// announced is set once the holder's identity is in the file.
	st        unix.Stat_t
	writable  bool
	announced bool
}

// ID is the locked file's device and inode.
func (l *Lease) ID() FileKey { return l.id }

// Path is the lease file's path.
func (l *Lease) Path() string { return l.path }

// Holder is the identity this lease wrote into its file.
func (l *Lease) Holder() Holder { return l.holder }

// Release drops the flock (closes the descriptor). The file stays: removing it would let a
// waiting controller lock a name another one is about to create anew.
func (l *Lease) Release() {
	if l != nil && l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

// AcquireLease takes the volume lease of home (the HERMES_HOME path, followed as configured):
// it opens HERMES_HOME/.profile-controller.lease, creating it (mode 0600, owned by the
// controller's euid) when it is missing, takes an exclusive flock without blocking, and writes
// self into it as one JSON line (pwrite at offset 0, then ftruncate to its length, on the locked
// descriptor).
//
// The file is never opened through a symlink and never opened for I/O unless it is a regular
// file: an existing entry is opened with safefs.OpenRegular (O_PATH|O_NOFOLLOW, fstat, reopen of
// that inode), a missing one is created with O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC.
// A symlink, FIFO, socket, device or directory is refused without blocking, and so is a file
// with more than one hard link (writing to it would write to whatever other file shares the
// inode). An existing file owned by another user or with another mode is taken back (fchown to
// the euid, fchmod 0600 on the locked descriptor): an image's chown -R of the volume must not
// leave the volume without an owner. Each error is one line naming the file.
//
// When another descriptor holds the flock, it returns a *LeaseHeldError (errors.Is
// ErrLeaseHeld) naming the holder read from the file (at most MaxLeaseContent bytes; garbage
// gives an unknown holder).
func AcquireLease(home string, self Holder) (*Lease, error) {
	l, err := LockLease(home, self)
	if err != nil {
		return nil, err
	}
	if err := l.Announce(); err != nil {
		l.f.Close()
		return nil, err
	}
	return l, nil
}

// LockLease is AcquireLease without writing anything: the lease is held, and the holder's
// identity is written by Announce (the file keeps naming the previous holder until then).
func LockLease(home string, self Holder) (*Lease, error) {
	path := home + "/" + LeaseName
	dir, err := safefs.OpenDir(home)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", path, unwrapPath(err))
	}
	defer dir.Close()
	fd, st, mode, err := openLeaseFile(dir, path)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	if st.Nlink > 1 && mode != onDir {
		f.Close()
		return nil, fmt.Errorf("lease %s: refusing a file with %d hard links (it may be another file's name); remove it", path, st.Nlink)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			var h Holder
			if mode != onDir {
				h = readHolder(f)
			}
			return nil, &LeaseHeldError{Path: path, Holder: h, ID: FileKey{st.Dev, st.Ino}}
		}
		return nil, fmt.Errorf("lease %s: flock: %w", path, err)
	}
	l := &Lease{f: f, path: path, holder: self, id: FileKey{st.Dev, st.Ino}, check: path, st: st, writable: mode == readWrite}
	if mode == onDir {
		l.check, l.onDir = home, true
	}
	return l, nil
}

// Announce writes the holder's identity into the locked file (taking an existing file back
// from another owner or mode first: an image's chown -R of the volume must not leave the volume
// without an owner). It writes once per Lease, and nothing on a read-only volume (the file is
// locked as it is). AcquireLease announces at once; a caller of LockLease announces before it
// first acts, so that a pass with nothing to do writes nothing.
func (l *Lease) Announce() error {
	if l.announced || !l.writable {
		return nil
	}
	fd := int(l.f.Fd())
	euid, egid := os.Geteuid(), os.Getegid()
	if int(l.st.Uid) != euid || l.st.Mode&0o7777 != 0o600 {
		if err := unix.Fchown(fd, euid, egid); err != nil && euid == 0 {
			return fmt.Errorf("lease %s: chown: %w", l.path, err)
		}
		if err := unix.Fchmod(fd, 0o600); err != nil {
			return fmt.Errorf("lease %s: chmod: %w", l.path, err)
		}
	}
	line, err := json.Marshal(l.holder)
	if err != nil {
		return fmt.Errorf("lease %s: %w", l.path, err)
	}
	line = append(line, '\n')
	if _, err := l.f.WriteAt(line, 0); err != nil {
		return fmt.Errorf("lease %s: write: %w", l.path, err)
	}
	if err := l.f.Truncate(int64(len(line))); err != nil {
		return fmt.Errorf("lease %s: truncate: %w", l.path, err)
	}
	l.announced = true
	return nil
}

// How the lease file was opened.
type openMode int

const (
	readWrite openMode = iota
	readOnly           // an existing file on a read-only volume
	onDir              // no file, and a read-only volume: HERMES_HOME itself is locked
)

// openLeaseFile opens the regular file LeaseName in dir for reading and writing, creating it
// when missing, and returns its descriptor, stat and how it was opened. On a read-only volume
// an existing file is opened read-only (flock works on it), and a missing one cannot be created:
// HERMES_HOME itself is opened (read-only) to be locked instead, so that controllers booting on
// a read-only volume still exclude each other.
func openLeaseFile(dir *safefs.Dir, path string) (int, unix.Stat_t, openMode, error) {
	for range 3 {
		fd, st, err := dir.OpenRegular(LeaseName, unix.O_RDWR)
		if errors.Is(err, unix.EROFS) {
			fd, st, err = dir.OpenRegular(LeaseName, unix.O_RDONLY)
			if err == nil {
				return fd, st, readOnly, nil
			}
		}
		if err == nil {
			return fd, st, readWrite, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return -1, st, 0, fmt.Errorf("lease %s: %w", path, unwrapPath(err))
		}
		fd, err = unix.Openat(dir.FD(), LeaseName,
			unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
		if errors.Is(err, unix.EEXIST) {
			continue // planted or created meanwhile: look at what it is
		}
		if errors.Is(err, unix.EROFS) {
			fd, err = unix.Openat(dir.FD(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Fstat(fd, &st)
			}
			if err != nil {
				return -1, st, 0, fmt.Errorf("lease %s: read-only volume: %w", path, err)
			}
			return fd, st, onDir, nil
		}
		if err != nil {
			return -1, st, 0, fmt.Errorf("lease %s: create: %w", path, err)
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, st, 0, fmt.Errorf("lease %s: stat: %w", path, err)
		}
		// The umask may have taken bits away; 0600 exactly, whatever it is.
		if st.Mode&0o7777 != 0o600 {
			if err := unix.Fchmod(fd, 0o600); err != nil {
				unix.Close(fd)
				return -1, st, 0, fmt.Errorf("lease %s: chmod: %w", path, err)
			}
		}
		return fd, st, readWrite, nil
	}
	return -1, unix.Stat_t{}, 0, fmt.Errorf("lease %s: keeps appearing and disappearing; not taken", path)
}

// unwrapPath drops an *os.PathError's path and op (the caller names the file once).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readHolder reads the holder a lease file names, at most MaxLeaseContent bytes; anything that
// is not one JSON object of the right shape is an unknown holder.
func readHolder(f *os.File) Holder {
	buf := make([]byte, MaxLeaseContent+1)
	n, _ := f.ReadAt(buf, 0)
	if n > MaxLeaseContent {
		return Holder{}
	}
	var h Holder
	if json.Unmarshal(buf[:n], &h) != nil || h.PID < 0 {
		return Holder{}
	}
	return h
}

// ReadLeaseHolder reads the holder HERMES_HOME's lease file names, without creating, locking or
// writing anything: for a controller that never takes the lease (role standby). The file is
// opened only when it is a regular file (safefs.OpenRegular), and read only when it has one link. The holder may be stale: the file
// keeps the last owner's identity after it exits.
func ReadLeaseHolder(home string) (Holder, error) {
	path := home + "/" + LeaseName
	dir, err := safefs.OpenDir(home)
	if err != nil {
		return Holder{}, fmt.Errorf("lease %s: %w", path, unwrapPath(err))
	}
	defer dir.Close()
	fd, st, err := dir.OpenRegular(LeaseName, unix.O_RDONLY)
	if err != nil {
		return Holder{}, fmt.Errorf("lease %s: %w", path, unwrapPath(err))
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if st.Nlink > 1 {
		return Holder{}, fmt.Errorf("lease %s: refusing a file with %d hard links (it may be another file's name); remove it", path, st.Nlink)
	}
	return readHolder(f), nil
}

// Validate checks that the lease is still the volume's: the locked descriptor's device and inode
// equal those of the path now (lstat, so a symlink put in its place does not match). A lease
// taken on a read-only volume without a lease file (HERMES_HOME itself locked) is valid while
// HERMES_HOME is the same directory and no lease file exists. A lease
// file deleted, renamed, or replaced by another file, a symlink or anything else is an error
// naming the file; the caller then takes the lease anew or steps down.
func (l *Lease) Validate() error {
	if l == nil || l.f == nil {
		return errors.New("lease released")
	}
	var fst, pst unix.Stat_t
	if err := unix.Fstat(int(l.f.Fd()), &fst); err != nil {
		return fmt.Errorf("lease %s: stat of the locked file: %w", l.path, err)
	}
	if err := unix.Lstat(l.check, &pst); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("lease %s: the locked file was removed or renamed", l.path)
		}
		return fmt.Errorf("lease %s: %w", l.path, err)
	}
	if pst.Dev != fst.Dev || pst.Ino != fst.Ino {
		return fmt.Errorf("lease %s: replaced by %s (not the locked file)", l.check, safefs.Kind(pst.Mode))
	}
	if l.onDir {
		// Locking HERMES_HOME stands for the file only while there is none: once one appears
		// (the volume writable again), the lease is the file's.
		if err := unix.Lstat(l.path, &pst); !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("lease %s: now exists (HERMES_HOME was locked while the volume was read-only)", l.path)
		}
	}
	return nil
}
