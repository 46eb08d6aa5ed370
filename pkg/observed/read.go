package observed

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/s6"
)

// slotPrefix is the prefix s6 writes slots under; a test holds it equal to desired.SlotPrefix.
const slotPrefix = s6.SlotPrefix

const downFile = "down"

// Reasons recorded in Foreign.Reason.
const (
	// ReasonSymlink marks a gateway-* entry that is a symbolic link (dangling or not).
	ReasonSymlink = "symlink"
	// ReasonNotDir marks a gateway-* entry that is a regular file, FIFO, socket or device.
	ReasonNotDir = "not a directory"
	// ReasonEmptyProfile marks the entry "gateway-" itself: no valid profile maps to it.
	ReasonEmptyProfile = "empty profile name"
)

// ErrForeign is wrapped by ReadSlot when the slot's entry exists but is Foreign.
var ErrForeign = errors.New("foreign entry in scandir")

// Read lists scandir and reads every gateway-* slot. It returns an error only when the scandir
// itself cannot be opened or listed. It never writes and never follows symlinks inside the
// scandir (the scandir path itself is configuration and is followed). It does not block on
// FIFOs or devices. It is safe for concurrent use; two calls share no state.
//
// Entries are classified by name, in sorted order, so the result is deterministic:
//   - "gateway-<profile>" that is a real directory: a Slot in Slots[profile]. The entry is
//     opened once with O_DIRECTORY|O_NOFOLLOW and everything else is read relative to that
//     descriptor, so swapping it for a symlink after the check cannot redirect the reads.
//   - "gateway-<profile>" that is anything else, and "gateway-" itself: Foreign, with one of
//     the Reason* constants.
//   - ".gateway-<x>.tmp" with a non-empty <x> (s6.IsStagingName, the same test s6.RemoveStaging
//     applies), of any type: Staging, by name, without a stat.
//   - Anything else: ignored, not even stat'ed.
//
// An entry that disappears between listing and opening is left out.
//
// For each slot:
//   - Files[name] holds the bytes of each ManagedFiles entry that is a regular file of at most
//     MaxManagedFileSize bytes, reached without following a symlink (also not for the "log"
//     directory of "log/run"). A missing key means "missing or unusable, rewrite it": the file
//     is absent, a symlink, a FIFO, socket, device or directory (or below a "log" that is not a
//     real directory), bigger than the cap, or could not be read. So an oversized file always
//     counts as drifted.
//   - Modes[name] holds mode&07777 of each file in Files (setuid, setgid and sticky included,
//     so a setuid run script counts as drifted against a rendered 0755).
//   - Down is true when an entry named "down" exists, of any type (lstat).
//   - Supervision comes from s6.ReadSupervision(Dir), which reopens Dir by path (pkg/s6 has no
//     descriptor-relative variant) and opens supervise/, lock and status with O_NOFOLLOW.
//   - Err joins every unexpected problem met while reading the slot: the supervisor state,
//     the down marker, a managed file failing for another reason than the ones above (EACCES,
//     EIO), or the slot directory itself failing to open (then Files and Modes are nil). The
//     fields that could be read are filled. A slot's Err never fails Read.
func Read(scandir string) (State, error) {
	d, err := safefs.OpenDir(scandir)
	if err != nil {
		return State{}, fmt.Errorf("read scandir: %w", err)
	}
	defer d.Close()
	names, err := d.ReadDirNames()
	if err != nil {
		return State{}, fmt.Errorf("read scandir: %w", err)
	}
	slices.Sort(names)

	st := State{Scandir: scandir, Slots: make(map[string]*Slot)}
	for _, name := range names {
		switch {
		case s6.IsStagingName(name):
			st.Staging = append(st.Staging, name)
		case strings.HasPrefix(name, slotPrefix):
			slot, foreign := readEntry(d, name, nil, time.Time{})
			switch {
			case foreign != nil:
				st.Foreign = append(st.Foreign, *foreign)
			case slot != nil:
				st.Slots[slot.Profile] = slot
			}
		}
	}
	return st, nil
}

// ReadSlot reads the single slot for profile, exactly as Read would. It returns (nil, nil) when
// no entry "gateway-<profile>" exists, an error wrapping ErrForeign when the entry exists but is
// Foreign, and an error when the scandir cannot be opened or profile is empty or holds a '/' or
// NUL. It never writes, never follows symlinks inside the scandir and never blocks.
func ReadSlot(scandir, profile string) (*Slot, error) {
	if err := checkProfile(profile); err != nil {
		return nil, err
	}
	d, err := safefs.OpenDir(scandir)
	if err != nil {
		return nil, fmt.Errorf("read scandir: %w", err)
	}
	defer d.Close()
	return ReadSlotAt(d, profile, nil, time.Time{})
}

// Known is what a caller has already checked about a slot, so that ReadSlotAt can skip reads.
type Known struct {
	// Files holds, per managed file, the FileID of a version whose bytes and mode the caller
	// has already compared: a file that still has exactly that FileID is not read again (it is
	// then Same in Slot.Files, its bytes not read). The caller only keeps stable FileIDs. Nil: none.
	Files *FileIDs
	// Supervision is an earlier read of the slot's supervisor: its decoded status is reused when
	// the status file is unchanged (s6.ReadSupervisionAt).
	Supervision *s6.Supervision
}

// ReadSlotAt is ReadSlot on an open scandir, skipping what known proves unchanged (nil: read
// everything). now dates the read (it decides which FileIDs are stable).
func ReadSlotAt(scandir *safefs.Dir, profile string, known *Known, now time.Time) (*Slot, error) {
	if err := checkProfile(profile); err != nil {
		return nil, err
	}
	slot, foreign := readEntry(scandir, slotPrefix+profile, known, now)
	if foreign != nil {
		return nil, fmt.Errorf("slot %s/%s: %w (%s); it is left alone, remove it by hand if it is not needed",
			scandir.Path(), foreign.Name, ErrForeign, foreign.Reason)
	}
	return slot, nil
}

// StagingAt reports whether ".gateway-<profile>.tmp" exists in the open scandir, as StagingExists.
func StagingAt(scandir *safefs.Dir, profile string) (bool, error) {
	if err := checkProfile(profile); err != nil {
		return false, err
	}
	if _, err := scandir.Lstat(s6.StagingName(slotPrefix + profile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// StagingExists reports whether ".gateway-<profile>.tmp" exists in scandir, of any type (lstat,
// a dangling symlink counts). It returns an error when the scandir cannot be opened, when the
// entry cannot be stat'ed for a reason other than not existing, and when profile is empty or
// holds a '/' or NUL. It never writes and never blocks.
func StagingExists(scandir, profile string) (bool, error) {
	if err := checkProfile(profile); err != nil {
		return false, err
	}
	d, err := safefs.OpenDir(scandir)
	if err != nil {
		return false, fmt.Errorf("read scandir: %w", err)
	}
	defer d.Close()
	return StagingAt(d, profile)
}

// checkProfile keeps a profile to a single path component, so that the names built from it
// cannot walk out of the scandir through openat.
func checkProfile(profile string) error {
	if profile == "" || strings.ContainsAny(profile, "/\x00") {
		return fmt.Errorf("invalid profile name %q: want a non-empty name without '/' or NUL", profile)
	}
	return nil
}

// readEntry classifies and reads the gateway-* entry name of d. It returns a slot, a foreign
// entry, or neither when the entry vanished.
func readEntry(d *safefs.Dir, name string, known *Known, now time.Time) (*Slot, *Foreign) {
	profile := name[len(slotPrefix):]
	if profile == "" {
		return nil, &Foreign{Name: name, Reason: ReasonEmptyProfile}
	}
	slot := &Slot{Name: name, Profile: profile, Dir: d.Path() + "/" + name}
	// Opening with O_NOFOLLOW|O_DIRECTORY is the type check: it refuses symlinks and
	// non-directories (without blocking on a FIFO), and the descriptor pins the directory.
	sd, err := d.OpenDir(name)
	if err != nil {
		switch {
		case errors.Is(err, safefs.ErrSymlink):
			return nil, &Foreign{Name: name, Reason: ReasonSymlink}
		case errors.Is(err, unix.ENOTDIR):
			return nil, &Foreign{Name: name, Reason: ReasonNotDir}
		case errors.Is(err, fs.ErrNotExist):
			return nil, nil
		}
		// Something else (EACCES, EMFILE): tell by lstat what the entry is.
		lst, lerr := d.Lstat(name)
		switch {
		case lerr != nil && errors.Is(lerr, fs.ErrNotExist):
			return nil, nil
		case lerr == nil && lst.Mode&unix.S_IFMT == unix.S_IFLNK:
			return nil, &Foreign{Name: name, Reason: ReasonSymlink}
		case lerr == nil && lst.Mode&unix.S_IFMT != unix.S_IFDIR:
			return nil, &Foreign{Name: name, Reason: ReasonNotDir}
		}
		slot.Err = err
		return slot, nil
	}
	defer sd.Close()
	readSlotDir(sd, slot, known, now)
	return slot, nil
}

// readSlotDir fills slot from its open directory.
func readSlotDir(sd *safefs.Dir, slot *Slot, known *Known, now time.Time) {
	var errs []error
	files := new(SlotFiles)
	slot.Files = files
	var knownFiles FileIDs // zero: none known
	var prevSup *s6.Supervision
	if known != nil {
		if known.Files != nil {
			knownFiles = *known.Files
		}
		prevSup = known.Supervision
	}
	for i, name := range ManagedFiles {
		f := &files[i]
		if want := knownFiles[i]; want != (safefs.FileID{}) {
			if id, err := statManaged(sd, name); err == nil && id == want {
				f.ID, f.Same = id, true
				continue
			}
		}
		b, id, err := readManaged(sd, name)
		switch {
		case err == nil:
			f.ID, f.Data = id, b
		case !unusable(err):
			errs = append(errs, err)
		}
	}

	if _, down, err := sd.LstatIfExists(downFile); err != nil {
		errs = append(errs, err)
	} else {
		slot.Down = down
	}

	sv, err := s6.ReadSupervisionAt(sd, prevSup, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("read supervision of %s: %w", slot.Dir, err))
	} else {
		slot.Supervision = sv
	}
	slot.Err = errors.Join(errs...)
}

// readManaged reads the managed file name ("run", "log/run") below sd, opening each directory
// component without following symlinks, and returns its bytes and FileID.
func readManaged(sd *safefs.Dir, name string) ([]byte, safefs.FileID, error) {
	dir, base, err := managedDir(sd, name)
	if err != nil {
		return nil, safefs.FileID{}, err
	}
	if dir != sd {
		defer dir.Close()
	}
	b, st, err := dir.ReadFile(base, MaxManagedFileSize)
	if err != nil {
		return nil, safefs.FileID{}, err
	}
	return b, safefs.IDOf(&st), nil
}

// statManaged returns the FileID of the managed file name below sd if it is a regular file,
// opening each directory component without following symlinks. It reads nothing.
func statManaged(sd *safefs.Dir, name string) (safefs.FileID, error) {
	dir, base, err := managedDir(sd, name)
	if err != nil {
		return safefs.FileID{}, err
	}
	if dir != sd {
		defer dir.Close()
	}
	st, err := dir.Lstat(base)
	if err != nil {
		return safefs.FileID{}, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return safefs.FileID{}, safefs.ErrNotRegular
	}
	return safefs.IDOf(&st), nil
}

// managedDir opens the directories of name below sd (none for "run", "log" for "log/run") and
// returns the last one (sd itself when there are none; else the caller closes it) and the base.
func managedDir(sd *safefs.Dir, name string) (*safefs.Dir, string, error) {
	dir := sd
	for {
		i := strings.IndexByte(name, '/')
		if i < 0 {
			return dir, name, nil
		}
		sub, err := dir.OpenDir(name[:i])
		if dir != sd {
			dir.Close()
		}
		if err != nil {
			return nil, "", err
		}
		dir, name = sub, name[i+1:]
	}
}

// unusable reports whether err only means "this managed file is not there in a usable form",
// which the caller handles by rewriting it, as opposed to a failure worth reporting.
func unusable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, safefs.ErrSymlink) ||
		errors.Is(err, safefs.ErrNotRegular) ||
		errors.Is(err, safefs.ErrTooBig) ||
		errors.Is(err, unix.ENOTDIR) || // a parent ("log") is not a directory
		errors.Is(err, unix.ENXIO) // a socket cannot be opened
}
