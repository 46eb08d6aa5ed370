package desired

import (
	"slices"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
)

// Intent is what the controller wants a profile's gateway to do.
type Intent int

const (
	// Hold keeps whatever the gateway is doing now (runtime only).
	Hold Intent = iota
	// Up means the gateway should run.
	Up
	// Down means the gateway should not run.
	Down
)

// String returns "hold", "up" or "down".
func (i Intent) String() string {
	switch i {
	case Up:
		return "up"
	case Down:
		return "down"
	default:
		return "hold"
	}
}

// DefaultProfile is the name of the root profile, served by the slot gateway-default.
const DefaultProfile = "default"

// SlotPrefix prefixes every slot name in the scandir.
const SlotPrefix = "gateway-"

// StateFileName is the per-profile state file written by the gateway and the operator.
const StateFileName = "gateway_state.json"

// MaxStateFileSize caps reads of gateway_state.json; a bigger file counts as unreadable.
const MaxStateFileSize = 64 << 10

// Profile is the desired state of one valid profile, derived from its directory.
type Profile struct {
	// Name is the profile name ("default" for the root).
	Name string `json:",omitzero"`
	// Dir is the profile directory (HERMES_HOME itself for "default").
	Dir string `json:",omitzero"`
	// DesiredState and GatewayState are the raw string values from gateway_state.json
	// ("" when absent or not a string).
	DesiredState, GatewayState string `json:",omitzero"`
	// DesiredStateJSON and GatewayStateJSON are the same two values as compact JSON text, whatever
	// their type ("" when the key is absent or null), e.g. `"running"`, `42`. PriorState uses them.
	DesiredStateJSON, GatewayStateJSON string `json:",omitzero"`
	// HasStateFile reports whether gateway_state.json exists as a regular file.
	HasStateFile bool `json:",omitzero"`
	// StateModTime is the state file's mtime: when the intent was last written. Zero without a file.
	StateModTime time.Time `json:",omitzero"`
	// BootIntent and Intent are the boot-pass and runtime columns of the intent table.
	BootIntent, Intent Intent `json:",omitzero"`
	// Warning is a one-line problem with the state file ("" when none); the profile is still served.
	Warning string `json:",omitzero"`
	// Port is the deterministic port derived from the name.
	Port int `json:",omitzero"`
	// StateID identifies the version of gateway_state.json the state fields were read from (zero
	// without a regular file); StateStable reports that it can prove a later read unchanged
	// (safefs.FileID.Stable). Volume.Profile reuses a previous read on an equal, stable StateID.
	StateID     safefs.FileID `json:",omitzero"`
	StateStable bool          `json:",omitzero"`
	// Served is the state file's served_profiles: the profiles a (root) gateway says it serves,
	// in file order (nil when the key is absent or not a list; entries that are not strings are
	// dropped).
	Served []string `json:",omitzero"`
}

// Slot returns the s6 slot name, "gateway-<name>".
func (p Profile) Slot() string { return SlotPrefix + p.Name }

// IntentAt returns BootIntent for a boot pass and Intent otherwise.
func (p Profile) IntentAt(boot bool) Intent {
	if boot {
		return p.BootIntent
	}
	return p.Intent
}

// Problem is a profile directory (or the profiles root) that was reported and skipped.
type Problem struct {
	// Name is the entry name under profiles/ ("" for the profiles root itself, or HERMES_HOME).
	Name string
	// Path is the path that has the problem.
	Path string
	// Err says what is wrong, in one line.
	Err error
}

// State is the desired state of every profile on the volume.
type State struct {
	// Profiles are the valid profiles, "default" first, then sorted by name.
	Profiles []Profile
	// Problems are entries that were skipped, with the reason.
	Problems []Problem
	// Present is the set of names that exist as entries under profiles/ (valid or not, any type).
	// No slot whose name is in Present may be unregistered.
	Present map[string]bool
	// Listed is true only when profiles/ was read completely. When false, no slot may be
	// unregistered (an unmounted or unreadable volume must not wipe every slot).
	Listed bool
	// ListErr is why profiles/ could not be listed, when Listed is false.
	ListErr error
}

// Equal reports whether two reads of a profile say the same.
func (p *Profile) Equal(q *Profile) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.Name == q.Name && p.Dir == q.Dir && p.DesiredState == q.DesiredState && p.GatewayState == q.GatewayState &&
		p.DesiredStateJSON == q.DesiredStateJSON && p.GatewayStateJSON == q.GatewayStateJSON &&
		p.HasStateFile == q.HasStateFile && p.StateModTime.Equal(q.StateModTime) &&
		p.BootIntent == q.BootIntent && p.Intent == q.Intent && p.Warning == q.Warning && p.Port == q.Port &&
		p.StateID == q.StateID && p.StateStable == q.StateStable &&
		slices.Equal(p.Served, q.Served) && (p.Served == nil) == (q.Served == nil)
}
