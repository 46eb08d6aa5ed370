package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// Boot log location and rotation.
const (
	// LogsDirName is the directory under HERMES_HOME that holds the boot log.
	LogsDirName = "logs"
	// BootLogName is the boot log's file name in LogsDirName.
	BootLogName = "container-boot.log"
	// RotatedBootLogName is where a full boot log is moved; an older one there is replaced.
	RotatedBootLogName = BootLogName + ".1"
	// BootLogRotateSize is the size at which the boot log is rotated before appending.
	BootLogRotateSize = 256 << 10
)

// bootTimeLayout is strftime's %Y-%m-%dT%H:%M:%S%z.
const bootTimeLayout = "2006-01-02T15:04:05-0700"

// FormatBootLine renders one boot-log line (without a newline):
//
//	<%Y-%m-%dT%H:%M:%S%z> profile=<p> prior_state=<s> action=<a> prior_exit=<clean|unclean|unknown> folded_into_root=<True|False>
//
// t is shown in its own location. A value that is not a plain token (letters, digits and
// "_-.:+", non-empty) is Go-quoted, so the line never holds a line break or an extra field.
// An empty priorExit is "unknown".
func FormatBootLine(t time.Time, profile, priorState, action, priorExit string, foldedIntoRoot bool) string {
	if priorExit == "" {
		priorExit = "unknown"
	}
	folded := "False"
	if foldedIntoRoot {
		folded = "True"
	}
	return t.Format(bootTimeLayout) +
		" profile=" + token(profile) +
		" prior_state=" + token(priorState) +
		" action=" + token(action) +
		" prior_exit=" + token(priorExit) +
		" folded_into_root=" + folded
}

func token(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_-.:+", c) >= 0) {
			return strconv.Quote(s)
		}
	}
	return s
}

// AppendBootLog appends lines (each without its newline) to HERMES_HOME/logs/container-boot.log
// in one write. It creates logs/ (mode 0755, owned by the caller) when missing and refuses a
// logs/ that is a symlink or not a directory. The log is opened relative to the logs/
// descriptor, never following a symlink, for appending (created 0644 with O_EXCL when missing),
// and must be a regular file with a single hard link: a symlink, a FIFO, a device, a
// hard-linked file or anything else is refused without being opened for writing, and left
// untouched (see openLog). When the log is
// BootLogRotateSize or bigger before appending, it is renamed to container-boot.log.1
// (replacing an older one) and a new log is started. With no lines it does nothing at all. A
// line holding a line break is refused before anything is written. home is trusted.
func AppendBootLog(home string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	n := 0
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			return fmt.Errorf("boot log: line %d holds a line break; nothing written", i)
		}
		n += len(l) + 1
	}
	buf := make([]byte, 0, n)
	for _, l := range lines {
		buf = append(append(buf, l...), '\n')
	}

	h, err := safefs.OpenDir(home)
	if err != nil {
		return fmt.Errorf("boot log: %w", err)
	}
	defer h.Close()
	logs, err := openOrMakeDir(h, LogsDirName)
	if err != nil {
		return fmt.Errorf("boot log: %w", err)
	}
	defer logs.Close()

	f, size, err := openLog(logs)
	if err != nil {
		return fmt.Errorf("boot log: %w", err)
	}
	if size >= BootLogRotateSize {
		f.Close()
		if err := unix.Renameat(logs.FD(), BootLogName, logs.FD(), RotatedBootLogName); err != nil {
			return fmt.Errorf("boot log: rotate %s/%s to %s: %w", logs.Path(), BootLogName, RotatedBootLogName, err)
		}
		if f, _, err = openLog(logs); err != nil {
			return fmt.Errorf("boot log: %w", err)
		}
	}
	defer f.Close()
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("boot log: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("boot log: %w", err)
	}
	return nil
}

// openOrMakeDir opens the real directory name in d, creating it (0755) when it is missing.
func openOrMakeDir(d *safefs.Dir, name string) (*safefs.Dir, error) {
	sub, err := d.OpenDir(name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return sub, err
	}
	if err := unix.Mkdirat(d.FD(), name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "mkdir", Path: d.Path() + "/" + name, Err: err}
	}
	return d.OpenDir(name)
}

// openLog opens (creating) the boot log for appending and returns it with its current size.
//
// An existing log is opened with safefs.OpenRegular, so a symlink, FIFO, socket, device or
// directory there is refused without being opened for writing, even if it is swapped in after
// a check. A missing log is created with O_CREAT|O_EXCL|O_NOFOLLOW, which never follows or
// reuses anything planted meanwhile (EEXIST: look again). A log with more than one hard link
// is refused: appending would write to whatever other file shares its inode.
func openLog(logs *safefs.Dir) (*os.File, int64, error) {
	path := logs.Path() + "/" + BootLogName
	for range 3 {
		fd, st, err := logs.OpenRegular(BootLogName, unix.O_WRONLY|unix.O_APPEND)
		if errors.Is(err, fs.ErrNotExist) {
			fd, err = unix.Openat(logs.FD(), BootLogName,
				unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0o644)
			if errors.Is(err, unix.EEXIST) {
				continue
			}
			if err != nil {
				return nil, 0, &os.PathError{Op: "create", Path: path, Err: err}
			}
			if err := unix.Fstat(fd, &st); err != nil {
				unix.Close(fd)
				return nil, 0, &os.PathError{Op: "stat", Path: path, Err: err}
			}
		} else if err != nil {
			return nil, 0, err
		}
		if st.Nlink > 1 {
			unix.Close(fd)
			return nil, 0, &os.PathError{Op: "open", Path: path,
				Err: fmt.Errorf("refusing to append to a file with %d hard links (it may be another file's name); remove it", st.Nlink)}
		}
		return os.NewFile(uintptr(fd), path), st.Size, nil
	}
	return nil, 0, &os.PathError{Op: "open", Path: path, Err: errors.New("keeps appearing and disappearing; not appended")}
}
