package desired

import (
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
	homePath, home, err := l.openHome()
	if err != nil {
		st.ListErr = err
		st.Problems = append(st.Problems, Problem{Path: homePath, Err: err})
		return st
	}
	defer home.Close()
	root := loadRoot(home, homePath)

	profilesPath := joinPath(homePath, ProfilesDirName)
	profiles, err := home.OpenDir(ProfilesDirName)
	if err != nil {
		st.Profiles = []Profile{root}
		st.ListErr = fmt.Errorf("list profiles: %w; serving the root profile only, unregistering nothing", err)
		if !errors.Is(err, fs.ErrNotExist) {
			st.Problems = append(st.Problems, Problem{Path: profilesPath, Err: st.ListErr})
		}
		return st
	}
	defer profiles.Close()
	names, err := profiles.ReadDirNames()
	if err != nil {
		st.Profiles = []Profile{root}
		st.ListErr = fmt.Errorf("list profiles: %w; serving the root profile only, unregistering nothing", err)
		st.Problems = append(st.Problems, Problem{Path: profilesPath, Err: st.ListErr})
		return st
	}
	sort.Strings(names)

	st.Present = make(map[string]bool, len(names))
	st.Profiles = make([]Profile, 1, len(names)+1)
	st.Profiles[0] = root
	for _, name := range names {
		if strings.HasPrefix(name, ".") {
			continue
		}
		st.Present[name] = true
		p, err := loadEntry(profiles, name)
		switch {
		case err == nil:
			st.Profiles = append(st.Profiles, p)
		case errors.Is(err, ErrNotProfile), errors.Is(err, errGone):
		default:
			st.Problems = append(st.Problems, Problem{Name: name, Path: joinPath(profilesPath, name), Err: err})
		}
	}
	st.Listed = true
	return st
}

// LoadProfile reads one profile. present reports whether an entry named name exists under
// profiles/ (always true for "default" when HERMES_HOME exists). err is set when the entry
// exists but is not a valid profile (bad name, symlink, no SOUL.md, reserved "default" dir).
//
// "default" always means the root profile (HERMES_HOME), never profiles/default. The outcomes:
//   - p, true, nil: a valid profile, read exactly as Load reads it.
//   - _, false, nil: profiles/ was read and has no such entry (the profile is gone).
//   - _, true, err wrapping ErrNotProfile: the entry is not a directory or has no SOUL.md.
//   - _, true, err wrapping ErrUnlisted: HERMES_HOME or profiles/ cannot be read, so presence is
//     unknown and reported as true (nothing may be unregistered).
//   - _, true, err: any other problem with the entry (symlink, invalid name, unusable SOUL.md).
//   - _, false, err: name can never be an entry Load would consider (empty, contains '/', starts
//     with '.'), or for "default", HERMES_HOME cannot be opened.
func (l Loader) LoadProfile(name string) (p Profile, present bool, err error) {
	if name == DefaultProfile {
		homePath, home, err := l.openHome()
		if err != nil {
			return Profile{}, false, err
		}
		defer home.Close()
		return loadRoot(home, homePath), true, nil
	}
	if name == "" || name[0] == '.' || strings.ContainsAny(name, "/\x00") {
		return Profile{}, false, fmt.Errorf("no entry under %s/ can be named like this: %w", ProfilesDirName, ValidateName(name))
	}
	_, home, err := l.openHome()
	if err != nil {
		return Profile{}, true, fmt.Errorf("%w: %w", ErrUnlisted, err)
	}
	defer home.Close()
	profiles, err := home.OpenDir(ProfilesDirName)
	if err != nil {
		return Profile{}, true, fmt.Errorf("%w: %w", ErrUnlisted, err)
	}
	defer profiles.Close()
	p, err = loadEntry(profiles, name)
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

func loadRoot(home *safefs.Dir, path string) Profile {
	p := Profile{Name: DefaultProfile, Dir: path, Port: Port(DefaultProfile)}
	loadState(home, &p)
	return p
}

// loadEntry reads profiles/<name>. Its error wraps ErrNotProfile when the entry is simply not a
// profile, is errGone when it does not exist, and is otherwise a one-line problem naming the path.
func loadEntry(profiles *safefs.Dir, name string) (Profile, error) {
	path := joinPath(profiles.Path(), name)
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
		return Profile{}, fmt.Errorf("%q is reserved for the root profile (HERMES_HOME itself, slot %s%s), skipped; move it or rename it",
			path, SlotPrefix, DefaultProfile)
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
	loadState(d, &p)
	return p, nil
}

// loadState reads gateway_state.json in d into p: the raw values, the file's presence and mtime,
// both intents and a warning. It never opens anything but a regular file.
func loadState(d *safefs.Dir, p *Profile) {
	var (
		doc     map[string]any
		readErr error
	)
	st, err := d.Lstat(StateFileName)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
	case err != nil:
		readErr = cause(err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		readErr = fmt.Errorf("%w, not followed", safefs.ErrSymlink)
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		readErr = fmt.Errorf("%w: it is %s", safefs.ErrNotRegular, safefs.Kind(st.Mode))
	default:
		b, fst, err := d.ReadFile(StateFileName, MaxStateFileSize)
		if fst.Mode&unix.S_IFMT == unix.S_IFREG {
			p.HasStateFile = true
			p.StateModTime = time.Unix(fst.Mtim.Unix())
		}
		switch {
		case err != nil && errors.Is(err, fs.ErrNotExist):
		case err != nil:
			readErr = cause(err)
		default:
			if doc, readErr = decodeState(b); readErr == nil {
				applyState(p, doc)
			}
		}
	}
	var warning string
	p.BootIntent, p.Intent, warning = IntentFromState(doc, p.HasStateFile, readErr)
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

func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}
