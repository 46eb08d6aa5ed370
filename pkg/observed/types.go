package observed

import (
	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/s6"
)

// ManagedFiles are the slot files the controller renders and compares, in a fixed order.
var ManagedFiles = []string{"type", "run", "finish", "log/run"}

// FileIDs holds one FileID per managed file, by its index in ManagedFiles (zero: none): a
// fixed array, so that a controller keeping them for every slot pays no map per slot.
type FileIDs [4]safefs.FileID

// Count is how many of the files have a FileID (0 for nil).
func (f *FileIDs) Count() int {
	n := 0
	if f != nil {
		for _, id := range f {
			if id != (safefs.FileID{}) {
				n++
			}
		}
	}
	return n
}

// ManagedFile is what a slot read found of one managed file.
type ManagedFile struct {
	// ID is the file's FileID when it exists as a regular file (zero otherwise).
	ID safefs.FileID
	// Data is the file's bytes, when it was read (nil when absent or Same).
	Data []byte
	// Same is true when the file was not read because it still has the FileID the caller had
	// already checked (Known.Files).
	Same bool
}

// Present reports whether the file exists as a regular file (read, or Same).
func (f *ManagedFile) Present() bool { return f.ID != (safefs.FileID{}) }

// Perm is the file's permission bits (0 when absent).
func (f *ManagedFile) Perm() uint32 { return f.ID.Mode & 0o7777 }

// SlotFiles holds what a slot read found of each managed file, by its index in ManagedFiles:
// a fixed array, so that a read allocates no map.
type SlotFiles [4]ManagedFile

// AllSameFiles is every managed file found Same, without FileIDs: the files of a slot read
// that is reused whole (shared; never modified).
var AllSameFiles = &SlotFiles{{Same: true}, {Same: true}, {Same: true}, {Same: true}}

// File returns what the read found of the managed file name (nil when name is not managed or
// no file was looked at).
func (s *Slot) File(name string) *ManagedFile {
	if i := ManagedIndex(name); i >= 0 && s.Files != nil {
		return &s.Files[i]
	}
	return nil
}

// AllSame reports whether every managed file was found unchanged (Same), so none needs comparing.
func (s *Slot) AllSame() bool {
	if s.Files == nil {
		return false
	}
	for i := range s.Files {
		if !s.Files[i].Same {
			return false
		}
	}
	return true
}

// WithoutData returns s without the bytes of its managed files (s itself when it holds none).
func (s *Slot) WithoutData() *Slot {
	if s.Files == nil {
		return s
	}
	var files SlotFiles
	data := false
	for i, f := range s.Files {
		data = data || f.Data != nil
		f.Data = nil
		files[i] = f
	}
	if !data {
		return s
	}
	c := *s
	c.Files = &files
	return &c
}

// ManagedIndex is name's index in ManagedFiles (-1 when it is not managed).
func ManagedIndex(name string) int {
	for i, n := range ManagedFiles {
		if n == name {
			return i
		}
	}
	return -1
}

// MaxManagedFileSize caps reads of a managed slot file; a bigger one always counts as drifted.
const MaxManagedFileSize = 64 << 10

// Slot is the observed state of one slot directory <scandir>/gateway-<profile>.
type Slot struct {
	// Name is the slot's directory name, "gateway-<profile>".
	Name string
	// Profile is the name without the "gateway-" prefix.
	Profile string
	// Dir is the slot's full path.
	Dir string
	// Files is what the read found of each managed file (nil: none was looked at, as when the
	// slot directory could not be opened). Shared between copies of a Slot: never modified
	// once set, only replaced.
	Files *SlotFiles
	// Down is true when the slot has a ./down marker.
	Down bool
	// Supervision is the supervisor's view of the slot.
	Supervision s6.Supervision
	// Err is a problem reading the slot's supervisor state ("" when none); reported, not fatal.
	Err error
}

// Foreign is a scandir entry named gateway-* that is not a real directory. It is reported and never touched.
type Foreign struct {
	Name   string
	Reason string
}

// State is the observed state of the scandir.
type State struct {
	// Scandir is the directory that was read.
	Scandir string
	// Slots maps a profile name to its slot.
	Slots map[string]*Slot
	// Staging lists leftover staging entries (".gateway-*.tmp"), by entry name.
	Staging []string
	// Foreign lists gateway-* entries that are not real directories.
	Foreign []Foreign
}
