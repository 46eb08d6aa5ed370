package reconciler

import (
	"strings"

	"github.com/hermes/profile-controller/pkg/s6"
)

// Kind names an action.
type Kind string

// The actions of the behaviour contract (docs/behaviour.md), plus rescan for a published slot no
// supervisor has picked up yet, and terminate and kill for the slot of a profile that is gone.
const (
	Create       Kind = "create"
	Start        Kind = "start"
	Stop         Kind = "stop"
	Mark         Kind = "mark"
	Update       Kind = "update"
	Unregister   Kind = "unregister"
	CleanStaging Kind = "clean-staging"
	CleanStale   Kind = "clean-stale"
	Rescan       Kind = "rescan"
	// Terminate is s6-svc -d on the slot of a profile that is gone (no wait); Kill is s6-svc -k
	// on one whose gateway outlived the unregister timeout. Unregister then removes the slot.
	Terminate Kind = "terminate"
	Kill      Kind = "kill"
)

// Action is one step that brings observed state toward desired state. It is plain data.
type Action struct {
	Kind Kind
	// Profile is the profile the action is for ("" for clean-staging).
	Profile string
	// Slot is the slot directory name ("gateway-<profile>"), or the staging entry for clean-staging.
	Slot string
	// Down is, for create, whether the slot is published with ./down; for mark, whether
	// ./down is created (true) or removed (false).
	Down bool
	// Files are the files to write: all of them for create, the drifted ones for update.
	Files []s6.File
	// Drift marks a start or stop that corrects an external change after the settle period.
	Drift bool
	// Owner is, for update, the gateway user whose supervise skeleton the slot gets (nil: the
	// skeleton is not touched).
	Owner *s6.Owner
}

// String renders the action for logs, plan output and tests, e.g. "create gateway-coder (down)".
func (a Action) String() string {
	var b strings.Builder
	b.WriteString(string(a.Kind))
	if a.Kind == CleanStale {
		b.WriteString(" " + a.Profile)
		return b.String()
	}
	b.WriteString(" " + a.Slot)
	switch a.Kind {
	case Create:
		if a.Down {
			b.WriteString(" (down)")
		} else {
			b.WriteString(" (up)")
		}
	case Mark:
		if a.Down {
			b.WriteString(" +down")
		} else {
			b.WriteString(" -down")
		}
	case Update:
		names := make([]string, len(a.Files))
		for i, f := range a.Files {
			names[i] = f.Name
		}
		if len(names) > 0 {
			b.WriteString(" " + strings.Join(names, ","))
		}
		if a.Owner != nil {
			b.WriteString(" +skeleton")
		}
	case Start, Stop:
		if a.Drift {
			b.WriteString(" (drift)")
		}
	}
	return b.String()
}
