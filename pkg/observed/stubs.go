package observed

// TODO(helper): implementation lands in read.go; signatures agreed here.

// Read lists scandir and reads every gateway-* slot. It returns an error only when the scandir
// itself cannot be read. It never writes and never follows symlinks.
func Read(scandir string) (State, error) { panic("TODO") }

// ReadSlot reads the single slot for profile. It returns (nil, nil) when no such entry exists,
// and an error when the entry exists but is foreign (a symlink or not a directory).
func ReadSlot(scandir, profile string) (*Slot, error) { panic("TODO") }

// StagingExists reports whether ".gateway-<profile>.tmp" exists in scandir (any type).
func StagingExists(scandir, profile string) (bool, error) { panic("TODO") }
