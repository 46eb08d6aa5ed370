package reconciler

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/inotify"
	"github.com/hermes/profile-controller/pkg/desired"
)

// watchKind says what a watched directory is; the kinds from watchProfile on belong to one key.
type watchKind uint8

const (
	watchHome      watchKind = iota // HERMES_HOME: profiles/ and the root's state file
	watchProfiles                   // profiles/: its entries
	watchScandir                    // the scandir: its slot entries
	watchProfile                    // profiles/<key>: its state file, SOUL.md (and config.yaml)
	watchSlot                       // <scandir>/gateway-<key>
	watchLog                        // <scandir>/gateway-<key>/log
	watchSupervise                  // <scandir>/gateway-<key>/supervise
)

// keyKinds are the kinds kept per key, in keyWatch.wd's order.
const keyKinds = 4

// Masks. Entry dirs report entries coming and going; file dirs also a file closed after a
// write or changed in mode (not every write(): a gateway's temp file is not worth a wake-up
// per write); slot dirs report every change, since a watch-verified read (slotwatch.go) relies
// on them; supervise/ reports a new status renamed in and the supervisor's lock closed (it
// died). Every watch is IN_ONLYDIR|IN_DONT_FOLLOW: the kernel refuses symlinks itself.
const (
	maskEntries   = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	maskFiles     = maskEntries | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB
	maskSlot      = maskFiles | unix.IN_MODIFY
	maskSupervise = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
)

// watchEntry is what one watch descriptor watches (a value passed around, never stored: see
// keyWatch).
type watchEntry struct {
	key       string
	kind      watchKind
	candidate bool // a profiles/ entry that was not a profile when watched (counted, capped)
}

// keyWatch holds the watch descriptors of one key's directories (0: not watched), indexed by
// kind - watchProfile. Each descriptor maps to its key's keyWatch, and its kind is its index
// here: 8 bytes a watch in byWD instead of a 24-byte entry, over ~4 watches a key (at 10,000
// profiles the table was 3.1 MB of an 18 MB live heap).
type keyWatch struct {
	key       string
	wd        [keyKinds]int32
	candidate bool // the profile-dir watch is a candidate's (watchEntry.candidate)
}

// watcher turns inotify events into keys. It is a hint only: the resync covers anything it
// misses, including watches the kernel refused (inotify limits). It keeps no path per watch:
// each descriptor maps to its kind and key, so an event costs no path work at all.
type watcher struct {
	c          *Controller
	in         *inotify.Watcher
	add        func(string)
	addProfile func(string, *watcher)
	all        func()
	log        logLike

	home, profiles, scandir string

	mu         sync.Mutex
	roots      [watchProfile]int32 // the descriptors of HERMES_HOME, profiles/ and the scandir (0: none)
	byWD       map[int32]*keyWatch // every key's descriptors
	keys       map[string]*keyWatch
	candidates int // watches on profiles/ entries that were not profiles when watched
	warnedOnce bool
}

type logLike interface {
	Info(msg string, kv ...any)
	Error(err error, msg string, kv ...any)
}

func newWatcher(c *Controller, log logLike, add func(string), addProfile func(string, *watcher), all func()) *watcher {
	w := &watcher{
		c: c, add: add, addProfile: addProfile, all: all, log: log,
		home:     filepath.Clean(c.opts.HermesHome),
		scandir:  filepath.Clean(c.opts.Scandir),
		byWD:     map[int32]*keyWatch{},
		keys:     map[string]*keyWatch{},
		profiles: filepath.Clean(c.opts.HermesHome) + "/" + desired.ProfilesDirName,
	}
	in, err := inotify.New()
	if err != nil {
		log.Error(err, "File watches unavailable, relying on the periodic resync")
		w.warnedOnce = true
		return w
	}
	w.in = in
	w.watch(w.home, watchEntry{kind: watchHome}, maskFiles)
	w.watch(w.profiles, watchEntry{kind: watchProfiles}, maskEntries)
	w.watch(w.scandir, watchEntry{kind: watchScandir}, maskEntries)
	return w
}

func (w *watcher) close() {
	if w.in != nil {
		_ = w.in.Close()
	}
}

// watch adds a watch for e; a refusal other than a missing, non-directory or symlinked path is
// logged once and otherwise ignored (the resync covers it).
func (w *watcher) watch(path string, e watchEntry, mask uint32) bool {
	if w.in == nil {
		return false
	}
	wd, err := w.in.Add(path, mask)
	if err != nil {
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
			w.mu.Lock()
			warn := !w.warnedOnce
			w.warnedOnce = true
			w.mu.Unlock()
			if warn {
				w.log.Error(err, "Could not add a file watch, relying on the periodic resync for it", "path", path)
			}
		}
		return false
	}
	var stale int32
	defer func() {
		if stale != 0 {
			_ = w.in.Remove(stale) // gone already if its directory was
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	// The same inode watched again (a directory renamed) gets the same descriptor: it now
	// belongs to e alone. A descriptor e had for another inode (replaced at e's path before its
	// event came) watches nothing of e's any more: it is removed.
	if old, ok := w.entryLocked(wd); ok && old != e {
		w.unsetLocked(wd, old)
	}
	if prev := w.heldLocked(e); prev != 0 && prev != wd {
		pe, _ := w.entryLocked(prev)
		w.unsetLocked(prev, pe)
		stale = prev
	}
	if e.kind < watchProfile {
		w.roots[e.kind] = wd
	} else {
		kw := w.keys[e.key]
		if kw == nil {
			kw = &keyWatch{key: e.key}
			w.keys[e.key] = kw
		}
		kw.wd[e.kind-watchProfile] = wd
		if e.kind == watchProfile {
			kw.candidate = e.candidate
		}
		w.byWD[wd] = kw
	}
	if e.candidate {
		w.candidates++
	}
	return true
}

// entryLocked is what wd watches, if anything (w.mu held).
func (w *watcher) entryLocked(wd int32) (watchEntry, bool) {
	if wd == 0 {
		return watchEntry{}, false
	}
	for k, r := range w.roots {
		if r == wd {
			return watchEntry{kind: watchKind(k)}, true
		}
	}
	if kw := w.byWD[wd]; kw != nil {
		for i, x := range kw.wd {
			if x == wd {
				return watchEntry{key: kw.key, kind: watchProfile + watchKind(i), candidate: i == 0 && kw.candidate}, true
			}
		}
	}
	return watchEntry{}, false
}

// heldLocked is the descriptor e's directory is watched with now (0: none; w.mu held).
func (w *watcher) heldLocked(e watchEntry) int32 {
	if e.kind < watchProfile {
		return w.roots[e.kind]
	}
	if kw := w.keys[e.key]; kw != nil {
		return kw.wd[e.kind-watchProfile]
	}
	return 0
}

// unsetLocked forgets that wd watches e (w.mu held).
func (w *watcher) unsetLocked(wd int32, e watchEntry) {
	if e.candidate {
		w.candidates--
	}
	if e.kind < watchProfile {
		if w.roots[e.kind] == wd {
			w.roots[e.kind] = 0
		}
		return
	}
	delete(w.byWD, wd)
	kw := w.keys[e.key]
	if kw == nil || kw.wd[e.kind-watchProfile] != wd {
		return
	}
	kw.wd[e.kind-watchProfile] = 0
	if e.kind == watchProfile {
		kw.candidate = false
	}
	if kw.wd == [keyKinds]int32{} {
		delete(w.keys, e.key)
	}
}

// drop removes the watches of key's kinds (those it has), at once: a directory renamed away
// keeps its watch, which must not pass for one on the directory now at that path.
func (w *watcher) drop(key string, kinds ...watchKind) {
	w.mu.Lock()
	var gone []int32
	if kw := w.keys[key]; kw != nil {
		for _, k := range kinds {
			if wd := kw.wd[k-watchProfile]; wd != 0 {
				gone = append(gone, wd)
				e, _ := w.entryLocked(wd)
				w.unsetLocked(wd, e)
			}
		}
	}
	w.mu.Unlock()
	for _, wd := range gone {
		_ = w.in.Remove(wd) // gone already when the directory was deleted
	}
}

// has reports whether key's directory of kind is watched.
func (w *watcher) has(key string, kind watchKind) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	kw := w.keys[key]
	return kw != nil && kw.wd[kind-watchProfile] != 0
}

// ensure watches a key's profile dir and its slot's directory, log/ and supervise/ once they
// exist. Only valid names are watched, and the kernel refuses symlinks and non-directories. It
// reports whether a profile-dir watch was added just now.
func (w *watcher) ensure(key string) (added bool) {
	if w.in == nil || w.complete(key) {
		return false
	}
	if key != desired.DefaultProfile {
		if desired.ValidateName(key) != nil {
			return false
		}
		if !w.has(key, watchProfile) {
			added = w.watch(w.profiles+"/"+key, watchEntry{kind: watchProfile, key: key}, maskFiles)
		}
	}
	slot, logDir, sup := w.slotDirs(key)
	if !w.has(key, watchSlot) && !w.watch(slot, watchEntry{kind: watchSlot, key: key}, maskSlot) {
		return added
	}
	if !w.has(key, watchLog) {
		w.watch(logDir, watchEntry{kind: watchLog, key: key}, maskSlot)
	}
	if !w.has(key, watchSupervise) {
		w.watch(sup, watchEntry{kind: watchSupervise, key: key}, maskSupervise)
	}
	return added
}

// complete reports whether every watch ensure adds for key is in place: the common case.
func (w *watcher) complete(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	kw := w.keys[key]
	return kw != nil && (kw.wd[0] != 0 || key == desired.DefaultProfile) &&
		kw.wd[watchSlot-watchProfile] != 0 && kw.wd[watchLog-watchProfile] != 0 && kw.wd[watchSupervise-watchProfile] != 0
}

// watchCandidate watches profiles/<name> when it is a directory with a valid name, up to
// maxCandidateWatches such watches. It reports whether it added the watch just now.
func (w *watcher) watchCandidate(name string) bool {
	if w.in == nil || desired.ValidateName(name) != nil || w.has(name, watchProfile) {
		return false
	}
	w.mu.Lock()
	full := w.candidates >= maxCandidateWatches
	w.mu.Unlock()
	return !full && w.watch(w.profiles+"/"+name, watchEntry{kind: watchProfile, key: name, candidate: true}, maskFiles)
}

// hintListed hands every entry of a profiles/ watched just now to addProfile: the entries made
// before the watch (mkdir -p profiles/<name>) made no event, and a resync would not watch them
// for their SOUL.md.
func (w *watcher) hintListed() {
	v, err := w.c.loader.Open()
	if err != nil {
		return // the resync reports it
	}
	names, err := v.Names()
	v.Close()
	if err != nil {
		return
	}
	for _, name := range names {
		w.addProfile(name, w)
	}
}

// keyChanged counts a watch event of key's slot and queues the key.
func (w *watcher) keyChanged(key string) {
	w.c.slotEvent(key)
	w.add(key)
}

func (w *watcher) run() {
	if w.in == nil {
		return
	}
	for {
		evs, err := w.in.Read()
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			w.overflow(err)
			continue
		}
		for _, ev := range evs {
			w.handle(ev)
		}
	}
}

// overflow: events were lost. A full resync recovers whatever was missed, and no
// watch-verified slot is trusted any more.
func (w *watcher) overflow(err error) {
	w.c.watchEpoch.Add(1)
	w.log.Error(err, "File watch error, resyncing")
	w.all()
}

var errOverflow = errors.New("inotify event queue overflowed")

// handle turns one event into keys. Only names that can change a decision bring a look: a
// gateway's read-merge-write of its state file is one look.
func (w *watcher) handle(ev inotify.Event) {
	if ev.Has(unix.IN_Q_OVERFLOW) {
		w.overflow(errOverflow)
		return
	}
	w.mu.Lock()
	e, ok := w.entryLocked(ev.WD)
	if ok && ev.Has(unix.IN_IGNORED) {
		w.unsetLocked(ev.WD, e) // the directory is gone, or its watch was removed
	}
	w.mu.Unlock()
	if !ok || ev.Has(unix.IN_IGNORED) {
		return
	}
	if ev.Has(unix.IN_DELETE_SELF | unix.IN_MOVE_SELF) {
		w.lost(ev.WD, e)
		return
	}
	switch e.kind {
	case watchHome:
		switch ev.Name {
		case desired.ProfilesDirName:
			if w.watch(w.profiles, watchEntry{kind: watchProfiles}, maskEntries) {
				w.hintListed()
			}
			w.all()
		case desired.StateFileName:
			w.add(desired.DefaultProfile)
		}
	case watchProfiles:
		if ev.Has(unix.IN_MOVED_FROM | unix.IN_DELETE) {
			w.drop(ev.Name, watchProfile)
		}
		if !strings.HasPrefix(ev.Name, ".") {
			w.addProfile(ev.Name, w)
		}
	case watchProfile:
		if ev.Name == desired.StateFileName || ev.Name == desired.SoulFileName ||
			(ev.Name == desired.ConfigFileName && w.c.opts.Topology == Multiplex) {
			w.addProfile(e.key, w)
		}
	case watchScandir:
		k, ok := keyForScandirEntry(ev.Name)
		if !ok {
			return
		}
		if ev.Has(unix.IN_MOVED_FROM|unix.IN_DELETE) && strings.HasPrefix(ev.Name, desired.SlotPrefix) {
			w.drop(k, watchSlot, watchLog, watchSupervise)
		}
		w.keyChanged(k)
	case watchSlot, watchLog:
		// A managed file, the down marker, log/ or supervise/; not s6's event/ fifodir.
		if ev.Name != "event" {
			w.keyChanged(e.key)
		}
	case watchSupervise:
		// s6-supervise renames each new status in, and its lock is closed when it dies.
		if ev.Name == "status" || ev.Name == "lock" {
			w.keyChanged(e.key)
		}
	}
}

// lost handles a watched directory deleted or moved away: its watch (and, for a slot, those
// under it) no longer watches what is at its path.
func (w *watcher) lost(wd int32, e watchEntry) {
	switch e.kind {
	case watchSlot:
		w.drop(e.key, watchSlot, watchLog, watchSupervise)
		w.keyChanged(e.key)
	case watchLog, watchSupervise:
		w.drop(e.key, e.kind)
		w.keyChanged(e.key)
	case watchProfile:
		w.drop(e.key, watchProfile)
		w.addProfile(e.key, w)
	default:
		// A root moved or deleted: watch what is at its path now (if anything), and resync.
		w.mu.Lock()
		w.unsetLocked(wd, e)
		w.mu.Unlock()
		_ = w.in.Remove(wd)
		path := map[watchKind]string{watchHome: w.home, watchProfiles: w.profiles, watchScandir: w.scandir}[e.kind]
		mask := uint32(maskEntries)
		if e.kind == watchHome {
			mask = maskFiles
		}
		w.watch(path, watchEntry{kind: e.kind}, mask)
		w.all()
	}
}
