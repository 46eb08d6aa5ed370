package reconciler

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// memoryDir is where a running controller keeps each profile's memory (runtime dir, tmpfs): one
// small JSON file per profile, so `status` can show backoffs and pending corrections and a
// restarted controller keeps its crash-loop backoff. Writing one profile's memory costs that
// profile's bytes only, whatever the number of profiles.
const memoryDir = "memory"

// maxMemoryFileSize caps the read of one memory file.
const maxMemoryFileSize = 16 << 10

// store batches writes of per-profile memory files: put and forget only mark a key, and flush
// writes every marked key once. A flush per 250 ms (Run) bounds the writes per key and second.
type store struct {
	dir   string
	mu    sync.Mutex
	dirty map[string]*record // nil value: forget (remove the file)
	once  sync.Once
	// flushMu serialises flushes (they share the temp files, .tmp0 to .tmp3).
	flushMu sync.Mutex
}

func newStore(runtimeDir string) *store {
	return &store{dir: filepath.Join(runtimeDir, memoryDir), dirty: map[string]*record{}}
}

// record is what a memory file holds: the planner's memory of the profile, and which slot files
// are known to match which rendering generation.
type record struct {
	Memory
	Files namedFiles `json:",omitzero"`
	Gen   string     `json:",omitempty"`
	// State and Status are the last stable reads of the state file and supervise/status (see
	// keyState).
	State  *desired.Profile `json:",omitempty"`
	Status *s6.StatusMemo   `json:",omitempty"`
	// SkeletonGID is the group of the slot's supervise skeleton, when the controller made one.
	SkeletonGID *int `json:",omitempty"`
	// Events is the profile's recent history (Controller.commit).
	Events []Event `json:",omitempty"`
}

func (s *store) put(key string, m record) {
	s.mu.Lock()
	s.dirty[key] = &m
	s.mu.Unlock()
}

// pending is how many keys are marked.
func (s *store) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty)
}

func (s *store) forget(key string) {
	s.mu.Lock()
	s.dirty[key] = nil
	s.mu.Unlock()
}

// fileName maps a key to its file: keys come from directory entries, so they hold no '/' or
// NUL; dot-names are kept apart from the temp file.
func fileName(key string) string { return "m-" + key }

// flush writes every marked key (temp + rename) and removes forgotten ones. It returns the
// errors joined; a key that failed stays marked unless a newer put replaced it.
func (s *store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	batch := s.dirty
	s.dirty = map[string]*record{}
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("memory dir: %w", err)
	}
	d, err := safefs.OpenDir(s.dir)
	if err != nil {
		return fmt.Errorf("memory dir: %w", err)
	}
	defer d.Close()
	keys := make([]string, 0, len(batch))
	for key := range batch {
		keys = append(keys, key)
	}
	var errMu sync.Mutex
	var errs []error
	// A boot pass writes every profile's file: spread over the Ps like the looks, each worker
	// with a temp file of its own.
	parallelWorkers(len(keys), func(w, i int) {
		key := keys[i]
		m, name := batch[key], fileName(key)
		var err error
		if m == nil {
			if err = unix.Unlinkat(d.FD(), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				err = &os.PathError{Op: "remove", Path: d.Path() + "/" + name, Err: err}
			} else {
				err = nil
			}
		} else {
			var b []byte
			if b, err = json.Marshal(m); err == nil {
				err = replaceFile(d, ".tmp"+strconv.Itoa(w), name, b)
			}
		}
		if err == nil {
			return
		}
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
		if m != nil {
			s.mu.Lock()
			if _, newer := s.dirty[key]; !newer {
				s.dirty[key] = m
			}
			s.mu.Unlock()
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("save memory in %s: %w", s.dir, errors.Join(errs...))
	}
	return nil
}

// replaceFile writes data to name in d through the temp file tmp and a rename: raw syscalls
// relative to d (os.WriteFile and os.Rename add fcntl, epoll_ctl and an lstat, and walk the
// whole path), 4 per file. Writers at the same time need temp files of their own.
func replaceFile(d *safefs.Dir, tmp, name string, data []byte) error {
	fd, err := unix.Openat(d.FD(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "open", Path: d.Path() + "/" + tmp, Err: err}
	}
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return &os.PathError{Op: "write", Path: d.Path() + "/" + tmp, Err: err}
		}
		b = b[n:]
	}
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: d.Path() + "/" + tmp, Err: err}
	}
	if err := unix.Renameat(d.FD(), tmp, d.FD(), name); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Path() + "/" + tmp, New: d.Path() + "/" + name, Err: err}
	}
	return nil
}

// load reads every memory file, handing each profile's memory to each as it is decoded (so
// that 10,000 of them are never held twice at once). Decoding is most of a fresh process's
// start at scale: it is spread over the Ps like a pass's looks, so each may run concurrently.
func (s *store) load(each func(key string, m *record)) {
	d, err := safefs.OpenDir(s.dir)
	if err != nil {
		return
	}
	defer d.Close()
	names, _ := d.ReadDirNames()
	// One read buffer per worker: a decoded record owns all its bytes.
	var bufs [parallelMax][]byte
	parallelWorkers(len(names), func(w, i int) {
		key, ok := strings.CutPrefix(names[i], "m-")
		if !ok {
			return
		}
		b, err := d.ReadOwnFile(names[i], maxMemoryFileSize, bufs[w])
		if err != nil {
			return
		}
		bufs[w] = b
		if m, err := decodeRecord(b); err == nil {
			each(key, &m)
		}
	})
}

// loadMemory reads the memory files once, if there are any; a missing or corrupt one means no
// memory of that profile.
func (c *Controller) loadMemory() {
	c.store.once.Do(func() {
		c.store.load(func(k string, m *record) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.keys[k] == nil {
				c.keys[k] = &keyState{Memory: m.Memory, Files: m.Files.ids, Gen: m.Gen, State: m.State, Status: m.Status, SkeletonGID: m.SkeletonGID, Events: m.Events}
			}
		})
	})
}

// flushMemory writes the marked memory files; a failure is logged only.
func (c *Controller) flushMemory() {
	if err := c.store.flush(); err != nil {
		c.opts.Log.Error(err, "Could not persist controller memory")
	}
}

// sameDurable reports whether two key states would write the same memory file.
func sameDurable(x, y *keyState) bool {
	if x.Gen != y.Gen || !sameFiles(x.Files, y.Files) || !sameState(x.State, y.State) || !sameStatus(x, y) ||
		!sameGID(x.SkeletonGID, y.SkeletonGID) || len(x.Events) != len(y.Events) ||
		(len(x.Events) > 0 && x.Events[len(x.Events)-1] != y.Events[len(y.Events)-1]) {
		return false
	}
	a, b := x.Memory, y.Memory
	return a.Intent == b.Intent && a.Accepted == b.Accepted && a.IntentSince.Equal(b.IntentSince) && a.StartedAt.Equal(b.StartedAt) &&
		a.Crashed == b.Crashed && a.Failures == b.Failures && a.NextStart.Equal(b.NextStart) &&
		a.TerminatingSince.Equal(b.TerminatingSince) && a.Killed == b.Killed && a.TermSent == b.TermSent &&
		a.NotServed == b.NotServed
}

func sameFiles(a, b *observed.FileIDs) bool {
	var x, y observed.FileIDs // nil: none
	if a != nil {
		x = *a
	}
	if b != nil {
		y = *b
	}
	return x == y
}

func sameGID(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// namedFiles are a key's Files as a memory file holds them: an object by file name, so that
// the file stays readable whatever the order of observed.ManagedFiles. A record waiting for a
// flush shares the key's array; the object is built only when the file is written.
type namedFiles struct{ ids *observed.FileIDs }

func (f namedFiles) IsZero() bool { return f.ids.Count() == 0 }

// MarshalJSON is only called with files to write (omitzero).
func (f namedFiles) MarshalJSON() ([]byte, error) {
	m := make(map[string]safefs.FileID, len(observed.ManagedFiles))
	for i, id := range f.ids {
		if id != (safefs.FileID{}) {
			m[observed.ManagedFiles[i]] = id
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON drops names no longer managed; no known file leaves ids nil.
func (f *namedFiles) UnmarshalJSON(b []byte) error {
	var m map[string]safefs.FileID
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var ids observed.FileIDs
	for i, name := range observed.ManagedFiles {
		ids[i] = m[name]
	}
	f.ids = nil
	if ids.Count() > 0 {
		f.ids = &ids
	}
	return nil
}

// sameState and sameStatus compare kept reads by the file version they were decoded from.
func sameState(a, b *desired.Profile) bool {
	return (a == nil) == (b == nil) && (a == nil || a.StateID == b.StateID)
}

func sameStatus(x, y *keyState) bool {
	a, aok := x.statusMemoID()
	b, bok := y.statusMemoID()
	return aok == bok && a == b
}
