package reconciler

import (
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/s6"
)

// Backoff bounds for controller-initiated restarts of a crash-looping gateway.
const (
	crashBackoffBase  = 10 * time.Second
	crashBackoffMax   = 5 * time.Minute
	crashBackoffReset = 10 * time.Minute
)

// Memory is what the controller remembers about one profile between passes: when the
// intent last changed, the crash-loop bookkeeping, the unregister of a gone profile. It is kept
// in one small file per profile in the runtime dir (store.go), so `status` sees it and a
// restarted controller keeps its backoff; a container restart (tmpfs) starts with none.
type Memory struct {
	// Seen is false until the profile was first observed.
	Seen bool `json:",omitzero"`
	// Intent is the runtime intent last seen; IntentSince is when it took that value (the
	// state file's mtime then), or when the operator last wrote the file while the gateway was down.
	Intent      desired.Intent `json:",omitzero"`
	IntentSince time.Time      `json:",omitzero"`
	// StateModTime is the state file mtime last seen.
	StateModTime time.Time `json:",omitzero"`
	// Accepted is the supervisor state (Up or Down) last agreed on: set by the controller's own
	// create, start and stop, and whenever intent and supervisor agree. Hold means unknown (a
	// fresh controller). A supervisor still in the accepted state did not move: a disagreement
	// then comes from a new intent and is acted on at once, whatever the timestamps say.
	Accepted desired.Intent `json:",omitzero"`
	// StartedAt is when the controller last started the gateway; zero once judged.
	StartedAt time.Time `json:",omitzero"`
	// Crashed is true when the last down was a controller start that died within MinUptime.
	Crashed bool `json:",omitzero"`
	// Failures counts consecutive crashes; NextStart is when the next start may happen.
	Failures  int       `json:",omitzero"`
	NextStart time.Time `json:",omitzero"`
	// TerminatingSince is when the controller first saw the slot of a gone profile and began
	// taking it down; Killed is set once it sent SIGKILL (see planUnregister).
	TerminatingSince time.Time `json:",omitzero"`
	Killed           bool      `json:",omitzero"`
	// TermSent is set once the controller's s6-svc -d of a terminating slot went through.
	TermSent bool `json:",omitzero"`
	// ActedOn is the supervise/status version the controller saw when it last sent a start or
	// stop (at ActedAt): while the status keeps that version, the supervisor has not applied
	// the command yet, and the planner waits instead of reading it as someone else's change.
	ActedOn safefs.FileID `json:",omitzero"`
	// NoStatusSince is when a live supervisor was first seen without a status file.
	NoStatusSince time.Time `json:",omitzero"`
	ActedAt       time.Time `json:",omitzero"`
	// NotServed is set while a folded profile is NotServed (topology.go): once decided, it lasts
	// until the root lists the profile, a controller restart included.
	NotServed bool `json:",omitzero"`
}

// backoffDelay is 10 s, 20 s, 40 s, … capped at 5 min, for the n-th consecutive crash (n ≥ 1).
func backoffDelay(n int) time.Duration {
	d := crashBackoffBase
	for i := 1; i < n && d < crashBackoffMax; i++ {
		d *= 2
	}
	return min(d, crashBackoffMax)
}

// observe folds one observation of a profile and its supervisor into m. It is pure.
func (m Memory) observe(p desired.Profile, sup s6.Supervision, now time.Time, minUptime time.Duration) Memory {
	// A state file's mtime is only trusted up to now: one in the future (a host with a wrong
	// clock, touch -d 2030) would make every later external change look older than the intent.
	since := p.StateModTime
	if since.IsZero() || since.After(now) {
		since = now
	}
	switch {
	case !m.Seen:
		m.Seen, m.Intent, m.IntentSince = true, p.Intent, since
	case p.Intent != m.Intent:
		// A new intent is a fresh request: it also clears any crash-loop backoff, and a stop
		// asked for right after a start is not a crash.
		m.Intent, m.IntentSince = p.Intent, since
		m.Failures, m.NextStart, m.Crashed, m.StartedAt = 0, time.Time{}, false, time.Time{}
	case p.StateModTime.After(m.StateModTime) && !sup.Up() && p.StateModTime.After(sup.Changed):
		// Written after the gateway went down, so not by the gateway: the operator (or the
		// CLI) wrote the intent again. That is a fresh request too.
		m.IntentSince = since
		m.Failures, m.NextStart, m.Crashed = 0, time.Time{}, false
	}
	m.StateModTime = p.StateModTime

	if !sup.HasStatus {
		return m
	}
	st := sup.Status
	if started := m.StartedAt; !started.IsZero() {
		switch {
		case !st.WantUp && sup.Changed.After(started):
			m.StartedAt = time.Time{}
			// Only a gateway that exited by itself with 0 or 78 (which the finish script turns
			// into "do not restart") crashed; one stopped by a signal was stopped by someone,
			// and that settles like any external change.
			if code, exited := st.ExitCode(); exited && (code == 0 || code == 78) && sup.Changed.Sub(started) < minUptime {
				m.Failures++
				m.Crashed = true
				m.NextStart = sup.Changed.Add(backoffDelay(m.Failures))
			}
		case st.Up() && now.Sub(started) >= minUptime:
			m.StartedAt = time.Time{}
		}
	}
	if st.Up() && st.WantUp && now.Sub(st.Stamp) >= crashBackoffReset {
		m.Failures, m.NextStart, m.Crashed = 0, time.Time{}, false
	}
	return m
}

// started records a start by the controller at now.
func (m Memory) started(now time.Time) Memory {
	m.StartedAt, m.Crashed = now, false
	return m
}

// applied records the supervisor state an applied action leaves behind.
func (m Memory) applied(a Action) Memory {
	switch a.Kind {
	case Create:
		m.Accepted = desired.Up
		if a.Down {
			m.Accepted = desired.Down
		}
	case Start:
		m.Accepted = desired.Up
	case Stop:
		m.Accepted = desired.Down
	case Terminate:
		m.TermSent = true
	}
	return m
}

// agree records that the supervisor's want (up or not) is accepted.
func (m Memory) agree(wantUp bool) Memory {
	m.Accepted = desired.Down
	if wantUp {
		m.Accepted = desired.Up
	}
	return m
}

// moved reports whether the supervisor left the accepted state (unknown counts as moved).
func (m Memory) moved(wantUp bool) bool {
	return m.Accepted == desired.Hold || (m.Accepted == desired.Up) != wantUp
}
