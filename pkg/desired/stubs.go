package desired

// TODO(helper): implementation lands in load.go, intent.go, name.go, port.go; signatures agreed here.

// Loader reads profiles from a HERMES_HOME. It never writes.
type Loader struct {
	// Home is HERMES_HOME. It is trusted; everything below it is not.
	Home string
}

// Load reads every profile. It never fails as a whole: problems are reported in State.Problems
// and State.Listed/ListErr.
func (l Loader) Load() State { panic("TODO") }

// LoadProfile reads one profile. present reports whether an entry named name exists under
// profiles/ (always true for "default" when HERMES_HOME exists). err is set when the entry
// exists but is not a valid profile (bad name, symlink, no SOUL.md, reserved "default" dir).
func (l Loader) LoadProfile(name string) (p Profile, present bool, err error) { panic("TODO") }

// ValidateName checks a profile name against ^[a-z0-9][a-z0-9_-]*$ and the 251-byte slot limit.
func ValidateName(name string) error { panic("TODO") }

// IntentFromState maps a decoded gateway_state.json (nil map when there is no file) to
// boot and runtime intents, plus a warning for unusable values.
func IntentFromState(doc map[string]any, hasFile bool, readErr error) (boot, runtime Intent, warning string) {
	panic("TODO")
}

// Port returns 9200 + (first 4 bytes of SHA-256(name), big-endian) % 600.
func Port(name string) int { panic("TODO") }
