package reconciler

import (
	"fmt"
	"strings"
	"time"

	"github.com/hermes/profile-controller/pkg/desired"
)

// maxEvents bounds each profile's event history, kept with its memory in the runtime dir
// (where `describe` reads it). An event is ~250 bytes of JSON, most of a memory file: 5 say
// what happened last and keep the file at 1–3 KiB; the log has every one.
const maxEvents = 5

// Event is one thing the controller did or saw about a profile, with its cause: what an
// operator reads in `describe` and in the log (one line each, at the default level).
type Event struct {
	Time time.Time `json:"time"`
	// Type is "Normal" or "Warning".
	Type string `json:"type"`
	// Reason is one CamelCase word: Created, Started, Stopped, Marked, Updated, Published,
	// Terminating, Killed, Unregistered, DriftCorrected, Settling, CrashLoopBackOff,
	// BackOffExpired, Held, Stuck, Failed, InvalidProfile, UnreadableState, ForeignEntry,
	// NotServed, Served.
	Reason string `json:"reason"`
	// Message says what and why, in one line.
	Message string `json:"message"`
}

// actionReason names the event of an applied action.
func actionReason(a Action) string {
	switch a.Kind {
	case Create:
		return "Created"
	case Start, Stop:
		if a.Drift {
			return "DriftCorrected"
		}
		if a.Kind == Start {
			return "Started"
		}
		return "Stopped"
	case Mark:
		return "Marked"
	case Update:
		return "Updated"
	case Rescan:
		return "Published"
	case Terminate:
		return "Terminating"
	case Kill:
		return "Killed"
	case Unregister:
		return "Unregistered"
	case CleanStaging:
		return "CleanedStaging"
	case CleanStale:
		return "CleanedStale"
	}
	return string(a.Kind)
}

// cause explains an action from the look that planned it: the intent and where it came from,
// the drift, the backoff that ended.
func cause(a Action, lk look, d Decision, prevPending string) string {
	p := lk.Profile
	intent := func() string {
		if p == nil {
			return "profile gone"
		}
		src := "no " + desired.StateFileName
		switch {
		case p.DesiredState != "":
			src = fmt.Sprintf("desired_state %q", p.DesiredState)
		case p.GatewayState != "":
			src = fmt.Sprintf("gateway_state %q", p.GatewayState)
		case p.HasStateFile:
			src = desired.StateFileName + " without a usable state"
		}
		out := fmt.Sprintf("intent %s (%s column) from %s in %s", p.IntentAt(lk.Boot), column(lk.Boot), src, p.Dir)
		if t := topologyCause(lk, d); t != "" {
			out += "; " + t
		}
		return out
	}
	switch a.Kind {
	case Start, Stop:
		switch {
		case a.Drift:
			return fmt.Sprintf("s6 was driven to %s by someone else at %s and left alone for the settle period; %s",
				map[bool]string{true: "down", false: "up"}[a.Kind == Start], lk.Slot.Supervision.Changed.UTC().Format(time.RFC3339), intent())
		case a.Kind == Start && strings.HasPrefix(prevPending, "CrashLoopBackOff"):
			return fmt.Sprintf("crash-loop back-off expired (failure %d); %s", d.Memory.Failures, intent())
		}
		return intent()
	case Create, Mark:
		return intent()
	case Update:
		names := make([]string, len(a.Files))
		for i, f := range a.Files {
			names[i] = f.Name
		}
		return "rendered files drifted: " + strings.Join(names, ",")
	case Terminate, Unregister, Kill:
		if strings.HasPrefix(d.Pending, "Stuck") || strings.HasPrefix(prevPending, "Stuck") {
			return "the supervisor wrote no status; re-creating the slot"
		}
		if a.Kind == Kill {
			return "the gateway outlived the unregister timeout after s6-svc -d"
		}
		return "the profile is gone"
	case Rescan:
		return "the slot is published but no supervisor runs it: s6-svscanctl -a"
	}
	return ""
}

func column(boot bool) string {
	if boot {
		return "boot"
	}
	return "runtime"
}

// pendingEvent is the event of a new pending correction (reason, type, message), or "" when
// the pending text says nothing new.
func pendingEvent(d Decision) (reason, typ, msg string) {
	word, rest, _ := strings.Cut(d.Pending, ": ")
	switch word {
	case "CrashLoopBackOff":
		m := d.Memory
		return word, "Warning", fmt.Sprintf("gateway exited within minUptime %d time(s) in a row; next start %s", m.Failures, rest)
	case "Settling":
		return word, "Normal", "an external change of s6 state is left alone for the settle period; " + rest
	case "Held":
		return word, "Warning", "unregister held: " + rest
	case "Stuck":
		return word, "Warning", rest
	case "Blocked":
		return "Blocked", "Warning", rest
	}
	return "", "", ""
}
