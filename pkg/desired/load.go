package desired

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
)

// ProfilesDirName is the directory under HERMES_HOME that holds the named profiles.
const ProfilesDirName = "profiles"

// SoulFileName is the regular file that makes a directory under profiles/ a profile.
const SoulFileName = "SOUL.md"

// ErrNotProfile is wrapped by LoadProfile's error when the entry exists but is not a profile at
// all: not a directory, or a directory without SOUL.md. Load skips such entries silently.
var ErrNotProfile = errors.New("not a profile")

// ErrUnlisted is wrapped by LoadProfile's error when HERMES_HOME or profiles/ cannot be read, so
// whether the entry exists is unknown. LoadProfile then reports present as true, so that a caller
// never unregisters a slot on a volume it cannot see.
var ErrUnlisted = errors.New("profiles root could not be read")

// errGone means the entry does not exist (or vanished between listing and opening).
var errGone = errors.New("entry does not exist")

// Loader reads profiles from a HERMES_HOME. It never writes.
//
// A Loader holds no open descriptors or caches; each call reads the volume afresh, and calls may
// run concurrently.
type Loader struct {
	// Home is HERMES_HOME. It is trusted; everything below it is not.
	Home string
}

// Load reads every profile. It never fails as a whole: problems are reported in State.Problems
// and State.Listed/ListErr.
//
// The root profile ("default", HERMES_HOME itself) always comes first, then the named profiles
// sorted by name. When HERMES_HOME cannot be opened, Profiles is empty, Listed is false and a
// Problem with an empty Name and Path HERMES_HOME says why. When profiles/ is missing, Profiles
// holds only the root, Listed is false and ListErr says why (no Problem: an empty volume is
// normal). When profiles/ is a symlink, not a directory or unreadable, the same holds and a
// Problem with an empty Name is added. Present is never nil. Load reads each profile's
// gateway_state.json once and never opens SOUL.md; it does not block on FIFOs.
func (l Loader) Load() State {
	st := State{Present: map[string]bool{}}
	v, err := l.Open()
	if err != nil {
		st.ListErr = err
		path := ""
		if l.Home != "" {
			path = filepath.Clean(l.Home)
		}
		st.Problems = append(st.Problems, Problem{Path: path, Err: err})
		return st
	}
	defer v.Close()
	root, _, _ := v.Profile(DefaultProfile, nil, time.Time{})
	st.Profiles = []Profile{root}
	names, err := v.Names()
	if err != nil {
		st.ListErr = err
		if !errors.Is(err, fs.ErrNotExist) {
			st.Problems = append(st.Problems, Problem{Path: v.ProfilesPath(), Err: err})
		}
		return st
	}
	sort.Strings(names)
	st.Present = make(map[string]bool, len(names))
	for _, name := range names {
		st.Present[name] = true
		p, _, err := v.named(name, nil, time.Time{})
		switch {
		case err == nil:
			st.Profiles = append(st.Profiles, p)
		case errors.Is(err, ErrNotProfile), errors.Is(err, errGone):
		default:
			st.Problems = append(st.Problems, Problem{Name: name, Path: joinPath(v.ProfilesPath(), name), Err: err})
		}
	}
	st.Listed = true
	return st
}

// LoadProfile reads one profile; it is Open followed by Volume.Profile (see there).
func (l Loader) LoadProfile(name string) (p Profile, present bool, err error) {
	v, err := l.Open()
	if err != nil {
		if name == DefaultProfile || !listable(name) {
			return Profile{}, false, err
		}
		return Profile{}, true, fmt.Errorf("%w: %w", ErrUnlisted, err)
	}
	defer v.Close()
	return v.Profile(name, nil, time.Time{})
}

// listable reports whether name can be an entry of profiles/ that Load would consider.
func listable(name string) bool {
	return name != "" && name[0] != '.' && !strings.ContainsAny(name, "/\x00")
}

// Volume is HERMES_HOME opened once for reading many profiles: the root directory and, when it
// could be opened, profiles/. Its methods may be called concurrently. Close it when done.
type Volume struct {
	home     *safefs.Dir
	homePath string
	profiles *safefs.Dir
	// listErr says why profiles/ could not be opened (nil when it was).
	listErr error
}

// Open opens HERMES_HOME (following symlinks: it is configuration) and its profiles/ directory
// (never through a symlink). It fails only when HERMES_HOME cannot be opened; a profiles/ that
// cannot be opened is reported by Names and Profile.
func (l Loader) Open() (*Volume, error) {
	path, home, err := l.openHome()
	if err != nil {
		return nil, err
	}
	v := &Volume{home: home, homePath: path}
	profiles, err := home.OpenDir(ProfilesDirName)
	if err != nil {
		v.listErr = fmt.Errorf("list profiles: %w; serving the root profile only, unregistering nothing", err)
		return v, nil
	}
	v.profiles = profiles
	return v, nil
}

// Identity identifies the directories this Volume opened: device and inode of HERMES_HOME and
// of profiles/ (zero when profiles/ was not opened). A change means another file system, or
// another directory, now answers to the same paths (a lazy unmount, a volume swapped under us).
func (v *Volume) Identity() (id [2]safefs.FileID) {
	var st unix.Stat_t
	if unix.Fstat(v.home.FD(), &st) == nil {
		id[0] = safefs.FileID{Dev: st.Dev, Ino: st.Ino}
	}
	if v.profiles != nil && unix.Fstat(v.profiles.FD(), &st) == nil {
		id[1] = safefs.FileID{Dev: st.Dev, Ino: st.Ino}
	}
	return id
}

// Close closes the volume's descriptors.
func (v *Volume) Close() {
	if v.profiles != nil {
		v.profiles.Close()
	}
	v.home.Close()
}

// HomePath returns HERMES_HOME, cleaned.
func (v *Volume) HomePath() string { return v.homePath }

// ProfilesPath returns the path of profiles/.
func (v *Volume) ProfilesPath() string { return joinPath(v.homePath, ProfilesDirName) }

// Listed reports whether profiles/ was opened; when not, ListErr says why.
func (v *Volume) Listed() bool { return v.profiles != nil }

// ListErr is why profiles/ could not be opened, or nil.
func (v *Volume) ListErr() error { return v.listErr }

// Names lists the entries of profiles/ that Load would consider (not starting with "."),
// unsorted. It fails when profiles/ could not be opened or listed.
func (v *Volume) Names() ([]string, error) {
	if v.profiles == nil {
		return nil, v.listErr
	}
	names, err := v.profiles.ReadDirNames()
	if err != nil {
		return nil, fmt.Errorf("list profiles: %w; serving the root profile only, unregistering nothing", err)
	}
	out := names[:0]
	for _, n := range names {
		if n[0] != '.' {
			out = append(out, n)
		}
	}
	return out, nil
}

// HasSoul reports, cheaply and without reading anything, whether profiles/<name> is a real
// directory holding an entry SOUL.md: whether the name is worth a full look. It never follows a
// symlink. A false answer for an entry that becomes a profile later is corrected by the next look.
func (v *Volume) HasSoul(name string) bool {
	if v.profiles == nil || !listable(name) {
		return false
	}
	d, err := v.profiles.OpenDir(name)
	if err != nil {
		return false
	}
	defer d.Close()
	_, err = d.Lstat(SoulFileName)
	return err == nil
}

// Profile reads one profile. present reports whether an entry named name exists under
// profiles/ (always true for "default"). err is set when the entry exists but is not a valid
// profile (bad name, symlink, no SOUL.md, reserved "default" dir).
//
// prev, when not nil, is an earlier read of the same profile: when its StateID is stable and
// gateway_state.json still has that FileID, the state fields are taken from prev instead of
// reading and decoding the file again. now dates the read for that rule (safefs.FileID.Stable).
//
// "default" always means the root profile (HERMES_HOME), never profiles/default. The outcomes:
//   - p, true, nil: a valid profile, read exactly as Load reads it.
//   - _, false, nil: profiles/ was read and has no such entry (the profile is gone).
//   - _, true, err wrapping ErrNotProfile: the entry is not a directory or has no SOUL.md.
//   - _, true, err wrapping ErrUnlisted: profiles/ cannot be read, so presence is unknown and
//     reported as true (nothing may be unregistered).
//   - _, true, err: any other problem with the entry (symlink, invalid name, unusable SOUL.md).
//   - _, false, err: name can never be an entry Load would consider (empty, contains '/', starts
//     with '.').
func (v *Volume) Profile(name string, prev *Profile, now time.Time) (Profile, bool, error) {
	if name == DefaultProfile {
		return loadRoot(v.home, v.homePath, prev, now), true, nil
	}
	return v.named(name, prev, now)
}

// named reads the entry profiles/<name> ("default" included: that entry is reserved).
func (v *Volume) named(name string, prev *Profile, now time.Time) (Profile, bool, error) {
	if !listable(name) {
		return Profile{}, false, fmt.Errorf("no entry under %s/ can be named like this: %w", ProfilesDirName, ValidateName(name))
	}
	if v.profiles == nil {
		return Profile{}, true, fmt.Errorf("%w: %w", ErrUnlisted, v.listErr)
	}
	p, err := loadEntry(v.profiles, name, prev, now)
	switch {
	case err == nil:
		return p, true, nil
	case errors.Is(err, errGone):
		return Profile{}, false, nil
	default:
		return Profile{}, true, err
	}
}

// openHome opens HERMES_HOME (following symlinks: it is configuration) and returns its cleaned path.
func (l Loader) openHome() (string, *safefs.Dir, error) {
	if l.Home == "" {
		return "", nil, errors.New("HERMES_HOME is not set; no profile can be read")
	}
	path := filepath.Clean(l.Home)
	d, err := safefs.OpenDir(path)
	if err != nil {
		return path, nil, fmt.Errorf("HERMES_HOME cannot be opened: %w; no profile is served", err)
	}
	return path, d, nil
}

func loadRoot(home *safefs.Dir, path string, prev *Profile, now time.Time) Profile {
	p := Profile{Name: DefaultProfile, Dir: path, Port: Port(DefaultProfile)}
	loadState(home, &p, prev, now)
	return p
}

// loadEntry reads profiles/<name>. Its error wraps ErrNotProfile when the entry is simply not a
// profile, is errGone when it does not exist, and is otherwise a one-line problem naming the path.
func loadEntry(profiles *safefs.Dir, name string, prev *Profile, now time.Time) (Profile, error) {
	path := joinPathAs(profiles.Path(), name, prev)
	d, err := profiles.OpenDir(name)
	if err != nil {
		c := cause(err)
		switch {
		case errors.Is(c, fs.ErrNotExist):
			return Profile{}, errGone
		case errors.Is(c, safefs.ErrSymlink):
			return Profile{}, fmt.Errorf("%q %w, not followed (profiles must be real directories); skipped", path, c)
		case errors.Is(c, unix.ENOTDIR):
			return Profile{}, fmt.Errorf("%q is not a directory: %w", path, ErrNotProfile)
		default:
			return Profile{}, fmt.Errorf("%q cannot be opened: %w; skipped", path, c)
		}
	}
	defer d.Close()
	if name == DefaultProfile {
		return Profile{}, fmt.Errorf("%s/%s/ is reserved for the root profile (HERMES_HOME itself, slot %s%s): %q skipped; move it or rename it",
			ProfilesDirName, DefaultProfile, SlotPrefix, DefaultProfile, path)
	}
	soul, err := d.Lstat(SoulFileName)
	if err != nil {
		c := cause(err)
		if errors.Is(c, fs.ErrNotExist) {
			return Profile{}, fmt.Errorf("%q has no %s: %w", path, SoulFileName, ErrNotProfile)
		}
		return Profile{}, fmt.Errorf("%q: %s cannot be checked: %w; skipped", path, SoulFileName, c)
	}
	if err := ValidateName(name); err != nil {
		return Profile{}, fmt.Errorf("%q: invalid %w; skipped", path, err)
	}
	switch soul.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return Profile{}, fmt.Errorf("%q: %s %w, not followed (it must be a regular file); skipped", path, SoulFileName, safefs.ErrSymlink)
	default:
		return Profile{}, fmt.Errorf("%q: %s is %s, not a regular file; skipped", path, SoulFileName, safefs.Kind(soul.Mode))
	}
	p := Profile{Name: name, Dir: path, Port: Port(name)}
	loadState(d, &p, prev, now)
	return p, nil
}

// loadState reads gateway_state.json in d into p: the raw values, the file's presence and mtime,
// both intents and a warning. It never opens anything but a regular file. When prev holds a
// stable read of the very same file version, its state fields are reused without a read.
func loadState(d *safefs.Dir, p *Profile, prev *Profile, now time.Time) {
	var (
		doc         map[string]any
		readErr     error
		bomPrefixed bool
	)
	if prev != nil && prev.StateStable {
		st, err := d.Lstat(StateFileName)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && safefs.IDOf(&st) == prev.StateID {
			name, dir, port := p.Name, p.Dir, p.Port
			*p = *prev
			p.Name, p.Dir, p.Port = name, dir, port
			return
		}
	}
	// The read checks the entry itself (O_PATH and fstat, see safefs.OpenRegular): a missing
	// file, a symlink or a FIFO is told apart without a stat of its own.
	b, fst, err := d.ReadFile(StateFileName, MaxStateFileSize)
	if fst.Mode&unix.S_IFMT == unix.S_IFREG {
		p.HasStateFile = true
		p.StateModTime = time.Unix(fst.Mtim.Unix())
		if err == nil {
			p.StateID = safefs.IDOf(&fst)
			p.StateStable = !now.IsZero() && p.StateID.Stable(now)
		}
	}
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
	case err != nil && errors.Is(err, safefs.ErrSymlink):
		readErr = fmt.Errorf("%w, not followed", safefs.ErrSymlink)
	case err != nil:
		readErr = cause(err)
	default:
		bomPrefixed = bytes.HasPrefix(b, utf8BOM)
		if doc, readErr = decodeState(b); readErr == nil {
			applyState(p, doc)
		}
	}
	var warning string
	p.BootIntent, p.Intent, warning = IntentFromState(doc, p.HasStateFile, readErr)
	if warning == "" && readErr == nil && bomPrefixed {
		// Accepted here, but the gateway's own reader refuses it and rewrites the file without
		// desired_state, which would undo the operator's request: tell the operator.
		warning = "starts with a UTF-8 byte order mark; accepted, but the gateway rejects it and rewrites the file without desired_state: save it without the BOM"
	}
	if warning != "" {
		p.Warning = joinPath(p.Dir, StateFileName) + ": " + warning
	}
}

// cause drops the path from a *fs.PathError: messages here name the path themselves.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// joinPathAs is joinPath(dir, name), reusing prev's Dir when it is that path (nothing allocated).
func joinPathAs(dir, name string, prev *Profile) string {
	if prev != nil {
		sep := "/"
		if strings.HasSuffix(dir, "/") {
			sep = ""
		}
		if d := prev.Dir; len(d) == len(dir)+len(sep)+len(name) && strings.HasPrefix(d, dir) &&
			strings.HasPrefix(d[len(dir):], sep) && strings.HasSuffix(d, name) {
			return d
		}
	}
	return joinPath(dir, name)
}

func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}
