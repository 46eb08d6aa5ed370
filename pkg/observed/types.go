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
	// Files holds the bytes of each managed file that exists as a regular file, keyed by
	// the names in ManagedFiles. A missing key means the file is absent (or not regular).
	Files map[string][]byte
	// Modes holds the permission bits of each file in Files or Same.
	Modes map[string]uint32
	// IDs holds the FileID of each file in Files or Same.
	IDs map[string]safefs.FileID
	// Same lists the managed files that ReadSlotAt did not read because they still have the
	// FileID the caller already checked (Known.Files).
	Same map[string]bool
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
