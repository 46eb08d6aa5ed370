// Package inotify is a minimal Linux inotify instance: watches on directories with the event
// mask the caller chooses, and the raw events of one read at a time, keyed by watch descriptor.
//
// It exists instead of fsnotify because the controller's watches need what fsnotify does not
// offer: a mask per watch (fsnotify always asks for IN_MODIFY, so every write() of a gateway's
// temp file is an event), IN_DONT_FOLLOW and IN_ONLYDIR (the kernel itself refuses a symlink or
// a file swapped in after our own check), and no path kept or built per watch or per event (at
// 10,000 profiles the controller holds 40,000 watches, and fsnotify keeps two maps of their
// full paths and joins a path for every event before sending it over a channel).
//
// A Watcher is safe for concurrent use: Add and Remove may run while Read blocks.
package inotify

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Event is one inotify event: the watch it came from, its mask, and the name of the entry in
// the watched directory ("" for an event about the directory itself).
type Event struct {
	WD   int32
	Mask uint32
	Name string
}

// Has reports whether the event's mask holds any bit of m.
func (e Event) Has(m uint32) bool { return e.Mask&m != 0 }

// Watcher is an inotify instance.
type Watcher struct {
	fd  int
	f   *os.File // fd, through the runtime poller: Read blocks the goroutine, not a thread
	buf []byte
}

// New returns a Watcher (IN_NONBLOCK, IN_CLOEXEC).
func New() (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &Watcher{fd: fd, f: os.NewFile(uintptr(fd), "inotify"), buf: make([]byte, 64<<10)}, nil
}

// Dir is the flags every watch gets: only a directory, never through a symlink.
const Dir = unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW

// Add watches the directory path for the events of mask (plus Dir) and returns its watch
// descriptor. Watching an inode already watched returns its existing descriptor and replaces
// its mask. A symlink or a file is refused by the kernel (ELOOP or ENOTDIR).
func (w *Watcher) Add(path string, mask uint32) (int32, error) {
	wd, err := unix.InotifyAddWatch(w.fd, path, mask|Dir)
	if err != nil {
		return 0, &os.PathError{Op: "inotify_add_watch", Path: path, Err: err}
	}
	return int32(wd), nil
}

// Remove removes the watch wd. The kernel then queues an IN_IGNORED event for it.
func (w *Watcher) Remove(wd int32) error {
	_, err := unix.InotifyRmWatch(w.fd, uint32(wd))
	return err
}

// Read blocks until events are available and returns those of one read, in order. Only one
// goroutine may call Read. After Close it returns os.ErrClosed.
func (w *Watcher) Read() ([]Event, error) {
	n, err := w.f.Read(w.buf)
	if err != nil {
		return nil, err
	}
	return parse(w.buf[:n])
}

// Close closes the instance: its watches go, and a blocked Read returns.
func (w *Watcher) Close() error { return w.f.Close() }

// errShort is a read that ends inside an event, which the kernel never returns.
var errShort = errors.New("inotify: short event")

// parse decodes the events of one read.
func parse(b []byte) ([]Event, error) {
	var evs []Event
	for len(b) > 0 {
		if len(b) < unix.SizeofInotifyEvent {
			return evs, errShort
		}
		raw := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(raw.Len)
		if end > len(b) {
			return evs, errShort
		}
		name := b[unix.SizeofInotifyEvent:end]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1] // the kernel pads names with NULs
		}
		evs = append(evs, Event{WD: raw.Wd, Mask: raw.Mask, Name: string(name)})
		b = b[end:]
	}
	return evs, nil
}
