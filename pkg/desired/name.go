package desired

import (
	"errors"
	"fmt"
)

// MaxSlotNameLen is s6's name_max: the longest service directory name s6-svscan accepts.
const MaxSlotNameLen = 251

// MaxNameLen is the longest valid profile name. The slot "gateway-<name>" must fit s6's
// MaxSlotNameLen (251, so 243), and the staging dir ".gateway-<name>.tmp" must fit the file
// system's 255-byte NAME_MAX, which is the tighter bound: 242.
const MaxNameLen = 255 - len("."+SlotPrefix) - len(".tmp")

// NamePattern is the pattern every profile name must match (besides MaxNameLen).
const NamePattern = "^[a-z0-9][a-z0-9_-]*$"

// ValidateName checks a profile name against ^[a-z0-9][a-z0-9_-]*$ and MaxNameLen (242 bytes).
// It returns nil for a valid name, else a one-line error saying what is wrong (the name is quoted,
// so a newline or a non-UTF-8 byte in it cannot break the line). It is pure and cheap.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("profile name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("profile name is %d bytes, at most %d allowed (the staging dir .%s<name>.tmp must fit 255 bytes)",
			len(name), MaxNameLen, SlotPrefix)
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
