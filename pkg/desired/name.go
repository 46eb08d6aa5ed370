package desired

import (
	"errors"
	"fmt"
)

// MaxSlotNameLen is s6's name_max: the longest service directory name s6-svscan accepts.
const MaxSlotNameLen = 251

// MaxNameLen is the longest valid profile name: the slot name "gateway-<name>" must fit
// MaxSlotNameLen.
const MaxNameLen = MaxSlotNameLen - len(SlotPrefix)

// NamePattern is the pattern every profile name must match (besides MaxNameLen).
const NamePattern = "^[a-z0-9][a-z0-9_-]*$"

// ValidateName checks a profile name against ^[a-z0-9][a-z0-9_-]*$ and the 251-byte slot limit.
// It returns nil for a valid name, else a one-line error saying what is wrong (the name is quoted,
// so a newline or a non-UTF-8 byte in it cannot break the line). It is pure and cheap.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("profile name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("profile name is %d bytes, at most %d allowed (the slot name %s<name> must fit s6's %d-byte limit)",
			len(name), MaxNameLen, SlotPrefix, MaxSlotNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		case c == '-' || c == '_':
			return fmt.Errorf("profile name %q starts with %q; it must start with a lowercase letter or digit (%s)",
				name, name[:1], NamePattern)
		default:
			return fmt.Errorf("profile name %q has %q at byte %d; only a-z, 0-9, '_' and '-' are allowed (%s)",
				name, name[i:i+1], i, NamePattern)
		}
	}
	return nil
}
