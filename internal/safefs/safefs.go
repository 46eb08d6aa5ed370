// Package safefs reads and writes files on untrusted trees: it never follows a symlink in the
// components it opens, never blocks on a FIFO or device, and caps every read.
//
// Paths are walked with openat from a trusted directory descriptor, one component at a time,
// each opened with O_NOFOLLOW, so a component swapped for a symlink after a check is refused
// by the kernel rather than followed.
package safefs

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrTooBig is returned when a file is larger than the read cap.
var ErrTooBig = errors.New("file too big")

// ErrNotRegular is returned when a file to read is not a regular file (FIFO, socket, device, dir).
var ErrNotRegular = errors.New("not a regular file")

// ErrSymlink is returned when a component is a symbolic link.
var ErrSymlink = errors.New("is a symlink")

// Dir is an open directory descriptor. Close it when done.
type Dir struct {
	fd int
	// path is the path of a directory opened by path. A subdirectory has its parent and name
	// instead and builds its path only when a message needs one: a look opens a few
	// subdirectories per profile, and their paths are almost never wanted.
	path   string
	parent *Dir
	name   string
}

// OpenDir opens a trusted directory path (symlinks in it are followed: it is configuration).
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path}, nil
}

// Path returns the path the directory was opened by (for messages only).
func (d *Dir) Path() string {
	if d.parent != nil {
		return d.parent.Path() + "/" + d.name
	}
	return d.path
}

// FD returns the raw descriptor; it stays owned by d.
func (d *Dir) FD() int { return d.fd }

// Close closes the descriptor.
func (d *Dir) Close() error { return unix.Close(d.fd) }

func (d *Dir) join(name string) string { return d.Path() + "/" + name }

func symlinkErr(err error) error {
	// O_NOFOLLOW on a symlink gives ELOOP; O_DIRECTORY|O_NOFOLLOW on a symlink gives ENOTDIR or ELOOP.
	if errors.Is(err, unix.ELOOP) {
		return ErrSymlink
	}
	return err
}

// OpenDir opens the subdirectory name of d without following a symlink.
func (d *Dir) OpenDir(name string) (*Dir, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			// Tell a symlink apart from a plain non-directory for a clearer message.
			if st, lerr := d.Lstat(name); lerr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = ErrSymlink
			}
		}
		return nil, &os.PathError{Op: "open", Path: d.join(name), Err: symlinkErr(err)}
	}
	return &Dir{fd: fd, parent: d, name: name}, nil
}

// Lstat stats name in d without following a symlink.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &os.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return st, nil
}

// LstatIfExists is Lstat that reports a missing name as ok == false and no error, without
// building an error for it: the looks ask after names that are usually absent (a slot's down
// marker, a new supervisor's death_tally).
func (d *Dir) LstatIfExists(name string) (st unix.Stat_t, ok bool, err error) {
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return st, false, nil
		}
		return st, false, &os.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return st, true, nil
}

// IsRegular reports whether name in d is a regular file (not following symlinks).
func (d *Dir) IsRegular(name string) bool {
	st, err := d.Lstat(name)
	return err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
}

// OpenRegular opens the regular file name in d with flags (O_RDONLY, or O_WRONLY|O_APPEND, ...;
// O_CLOEXEC|O_NOCTTY|O_NONBLOCK are always added, O_CREAT is not allowed) and returns the
// descriptor and its stat. It never follows a symlink (ErrSymlink) and never opens anything but
// a regular file for I/O: the entry is first opened with O_PATH|O_NOFOLLOW, which has no side
// effects on any file type, checked with fstat, and only a regular file is then reopened through
// /proc/self/fd, which names that very inode. A FIFO, socket, device or directory is refused
// (ErrNotRegular) without ever being opened for reading or writing, even when it is swapped in
// between a caller's check and this call. Without /proc it falls back to openat with
// O_NOFOLLOW|O_NONBLOCK and refuses the result unless it is the inode that was checked (a swapped
// in device is then opened, but never read or written). The caller closes the descriptor.
func (d *Dir) OpenRegular(name string, flags int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if flags&unix.O_CREAT != 0 {
		return -1, st, &os.PathError{Op: "open", Path: d.join(name), Err: errors.New("OpenRegular cannot create")}
	}
	pfd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, st, &os.PathError{Op: "open", Path: d.join(name), Err: symlinkErr(err)}
	}
	defer unix.Close(pfd)
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, st, &os.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK: // O_PATH|O_NOFOLLOW opens the link itself
		return -1, st, &os.PathError{Op: "open", Path: d.join(name), Err: ErrSymlink}
	default:
		return -1, st, &os.PathError{Op: "open", Path: d.join(name), Err: fmt.Errorf("%w: it is %s", ErrNotRegular, Kind(st.Mode))}
	}
	flags |= unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), flags, 0)
	if err == nil {
		// The magic link names pfd's inode itself: nothing to check again. st, taken before
		// the open, is no newer than what a read of fd returns.
		return fd, st, nil
	}
	// No usable /proc: open by name again, without following, and insist on the same inode.
	fd, err = unix.Openat(d.fd, name, flags|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, st, &os.PathError{Op: "open", Path: d.join(name), Err: symlinkErr(err)}
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil {
		unix.Close(fd)
		return -1, st, &os.PathError{Op: "stat", Path: d.join(name), Err: err}
	}
	if st2.Dev != st.Dev || st2.Ino != st.Ino || st2.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, st, &os.PathError{Op: "open", Path: d.join(name), Err: fmt.Errorf("%w: replaced while being opened", ErrNotRegular)}
	}
	return fd, st2, nil
}

// ReadFile reads the regular file name in d, at most max bytes. It refuses symlinks
// (ErrSymlink), non-regular files (ErrNotRegular; a FIFO or device is never opened for reading,
// see OpenRegular) and files bigger than max (ErrTooBig). It returns the file's stat too (for a
// refused file, the stat of what was found, when it could be taken).
func (d *Dir) ReadFile(name string, limit int64) ([]byte, unix.Stat_t, error) {
	fd, st, err := d.OpenRegular(name, unix.O_RDONLY)
	if err != nil {
		return nil, st, err
	}
	defer unix.Close(fd)
	return d.readOpen(fd, st, name, limit)
}

// ReadOwnFile is ReadFile for a tree that only this process writes (the runtime dir), reading
// into buf (grown to limit+1 bytes when smaller; the result aliases it). It costs three
// syscalls, not ReadFile's six: one open with O_NOFOLLOW|O_NONBLOCK|O_NOCTTY instead of
// OpenRegular's O_PATH, fstat and reopen, and one read(2) of up to limit+1 bytes, which a
// regular file answers in full or up to its end. Only an unusual read (nothing, an error, or
// more than limit) takes an fstat, to refuse what is not a regular file (ErrNotRegular) or is
// too big (ErrTooBig), as ReadFile does; a socket fails the open. A FIFO or device is opened
// there, without blocking, so never use it on an untrusted tree, where a planted FIFO must not
// even be opened (and a FIFO with a live writer would be read: in a tree only this process
// writes there is none).
func (d *Dir) ReadOwnFile(name string, limit int64, buf []byte) ([]byte, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) { // what opening a socket gives
			err = fmt.Errorf("%w: it is a socket", ErrNotRegular)
		}
		return nil, &os.PathError{Op: "open", Path: d.join(name), Err: symlinkErr(err)}
	}
	defer unix.Close(fd)
	if int64(cap(buf)) <= limit {
		buf = make([]byte, limit+1)
	}
	buf = buf[:limit+1]
	n, err := unix.Read(fd, buf)
	for errors.Is(err, unix.EINTR) {
		n, err = unix.Read(fd, buf)
	}
	if err == nil && n > 0 && int64(n) <= limit {
		return buf[:n], nil
	}
	var st unix.Stat_t
	if serr := unix.Fstat(fd, &st); serr != nil {
		return nil, &os.PathError{Op: "stat", Path: d.join(name), Err: serr}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, &os.PathError{Op: "open", Path: d.join(name), Err: fmt.Errorf("%w: it is %s", ErrNotRegular, Kind(st.Mode))}
	case err != nil:
		return nil, &os.PathError{Op: "read", Path: d.join(name), Err: err}
	case int64(n) > limit:
		return nil, &os.PathError{Op: "read", Path: d.join(name), Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooBig, st.Size, limit)}
	}
	return buf[:0], nil
}

// readOpen reads the open regular file fd (stat st) capped at limit.
func (d *Dir) readOpen(fd int, st unix.Stat_t, name string, limit int64) ([]byte, unix.Stat_t, error) {
	if st.Size > limit {
		return nil, st, &os.PathError{Op: "read", Path: d.join(name), Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooBig, st.Size, limit)}
	}
	// Plain read(2) on the raw descriptor (no poller registration); the size can change after
	// fstat, so read up to one byte past the cap to notice growth.
	b := make([]byte, 0, min(st.Size, limit)+1)
	for int64(len(b)) <= limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, st, &os.PathError{Op: "read", Path: d.join(name), Err: err}
		}
		if n == 0 {
			break
		}
		short := len(b)+n < cap(b)
		b = b[:len(b)+n]
		if short && int64(len(b)) == st.Size {
			// A regular file reads short only at its end: no second read(2) for the EOF.
			break
		}
	}
	if int64(len(b)) > limit {
		return nil, st, &os.PathError{Op: "read", Path: d.join(name), Err: fmt.Errorf("%w: limit %d", ErrTooBig, limit)}
	}
	return b, st, nil
}

// ReadDirNames lists d's entry names (unsorted, without "." and "..").
func (d *Dir) ReadDirNames() ([]string, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: d.Path(), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.Path())
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, &os.PathError{Op: "readdir", Path: d.Path(), Err: err}
	}
	return names, nil
}

// ReadFile reads path capped at max bytes, refusing a symlink in the last component and
// non-regular files, without blocking.
func ReadFile(path string, limit int64) ([]byte, unix.Stat_t, error) {
	dir, name := splitPath(path)
	d, err := OpenDir(dir)
	if err != nil {
		return nil, unix.Stat_t{}, err
	}
	defer d.Close()
	return d.ReadFile(name, limit)
}

func splitPath(path string) (dir, name string) {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			if i == 0 {
				return "/", path[1:]
			}
			return path[:i], path[i+1:]
		}
	}
	return ".", path
}

// Kind names the file type in a stat mode for messages: "a regular file", "a directory",
// "a symlink", "a FIFO", "a socket", "a character device", "a block device".
func Kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	default:
		return "a file of unknown type"
	}
}
