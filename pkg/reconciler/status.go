package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
)

// ProfileStatus is desired versus observed state of one profile, as `status` prints it.
// Fields that mirror s6-svstat use its conventions (pid and exitCode are -1 when not applicable).
type ProfileStatus struct {
	Profile           string   `json:"profile"`
	Slot              string   `json:"slot"`
	Intent            string   `json:"intent"`
	BootIntent        string   `json:"bootIntent"`
	PriorState        string   `json:"priorState"`
	DesiredState      string   `json:"desiredState,omitempty"`
	GatewayState      string   `json:"gatewayState,omitempty"`
	Port              int      `json:"port"`
	Warning           string   `json:"warning,omitempty"`
	SlotExists        bool     `json:"slotExists"`
	Supervised        bool     `json:"supervised"`
	Up                bool     `json:"up"`
	WantUp            bool     `json:"wantUp"`
	NormallyUp        bool     `json:"normallyUp"`
	Ready             bool     `json:"ready"`
	Paused            bool     `json:"paused,omitempty"`
	StatusMissing     bool     `json:"statusMissing,omitempty"`
	PID               int      `json:"pid"`
	ExitCode          int      `json:"exitCode"`
	Signal            int      `json:"signal"`
	Since             string   `json:"since,omitempty"`
	Phase             string   `json:"phase"`
	Pending           string   `json:"pending,omitempty"`
	Deaths            int      `json:"deaths"`
	CrashLoopFailures int      `json:"crashLoopFailures,omitempty"`
	NextStart         string   `json:"nextStart,omitempty"`
	Drift             []string `json:"drift,omitempty"`
	Actions           []string `json:"actions,omitempty"`
	PortConflict      []string `json:"portConflict,omitempty"`
	Error             string   `json:"error,omitempty"`
	// LastExit is how the gateway's last run ended by its lifecycle ledger: "clean (exit N)",
	// "unclean" (died without an exit path) or "unknown"; while it runs the ledger says running.
	LastExit string `json:"lastExit,omitempty"`
	// Heartbeat is when the gateway last touched its heartbeat file (RFC 3339; "" when never);
	// Stale is set when s6 says up but the heartbeat is older than heartbeatTimeout (report only).
	Heartbeat string `json:"heartbeat,omitempty"`
	Stale     bool   `json:"stale,omitempty"`
	// ServedBy is the slot whose gateway serves the profile: its own, or gateway-default for a
	// profile folded into the root (topology multiplex); "" without a valid profile. Folded is
	// set for such a profile; NotServed when the root has been up for the settle period without
	// listing it in served_profiles (with multiplex.fallback ownSlot, ServedBy is then its own slot).
	// EffectiveIntent is the root's intent with the folded profiles' counted in, when it
	// differs from its own (topology multiplex).
	EffectiveIntent string `json:"effectiveIntent,omitempty"`
	ServedBy        string `json:"servedBy,omitempty"`
	Folded          bool   `json:"folded,omitempty"`
	NotServed       bool   `json:"notServed,omitempty"`
	// Events is the profile's recent history, newest last.
	Events []Event `json:"events,omitempty"`
}

// ProblemStatus is a skipped profile or foreign scandir entry.
type ProblemStatus struct {
	Name  string `json:"name"`
	Path  string `json:"path,omitempty"`
	Error string `json:"error"`
}

// StatusReport is the whole `status` answer.
type StatusReport struct {
	Profiles []ProfileStatus `json:"profiles"`
	Problems []ProblemStatus `json:"problems"`
	Foreign  []ProblemStatus `json:"foreign"`
	Staging  []string        `json:"staging"`
	// Lease is the role the running controller recorded (nil: lease off, or no controller runs).
	Lease *LeaseStatus `json:"lease,omitempty"`
	// Config is the configuration generation the running controller uses (nil when no `run`
	// publishes one in the runtime dir).
	Config *ConfigStatus `json:"config,omitempty"`
}

// Status reads full state and reports desired versus observed per profile, with the actions a
// pass would take now. It changes nothing.
func (c *Controller) Status(ctx context.Context) (StatusReport, error) {
	_ = ctx
	c.loadMemory()
	now := c.opts.Now()
	r := c.openRoots()
	defer r.close()
	if r.scan == nil {
		return StatusReport{}, r.scanErr
	}
	l, ps := c.plan(r, c.settings(), c.BootPending(), now)

	ports := map[int][]string{}
	for _, p := range ps {
		if p.Profile != nil {
			ports[p.Profile.Port] = append(ports[p.Profile.Port], p.Name)
		}
	}
	rep := StatusReport{Problems: []ProblemStatus{}, Foreign: []ProblemStatus{}, Staging: []string{}, Config: c.readConfigState()}
	for _, p := range ps {
		if p.Staging {
			rep.Staging = append(rep.Staging, "."+desired.SlotPrefix+p.Name+".tmp")
		}
		if p.problem != nil {
			rep.Problems = append(rep.Problems, ProblemStatus{Name: problemName(*p.problem), Path: p.problem.Path, Error: p.problem.Err.Error()})
		}
		if p.Foreign != nil {
			rep.Foreign = append(rep.Foreign, ProblemStatus{Name: desired.SlotPrefix + p.Name, Error: p.Foreign.Error()})
		}
		if p.Profile == nil && p.Slot == nil {
			continue
		}
		ps := profileStatus(p, ports)
		ps.Events = c.state(p.Name).Events
		if p.Profile != nil && r.vol != nil {
			c.fillForensics(&ps, r.vol.Forensics(p.Name), now)
		}
		rep.Profiles = append(rep.Profiles, ps)
	}
	for _, f := range l.foreign {
		rep.Foreign = append(rep.Foreign, ProblemStatus{Name: f.Name, Error: f.Reason})
	}
	rep.Lease = c.readRole()
	if rep.Lease != nil && rep.Lease.Role == RoleStandby {
		for i := range rep.Profiles { // a standby takes no action and has nothing pending
			rep.Profiles[i].Actions, rep.Profiles[i].Pending = nil, ""
		}
	}
	if r.vol == nil {
		rep.Problems = append(rep.Problems, ProblemStatus{Name: "-", Path: c.opts.HermesHome, Error: r.volErr.Error()})
	} else if !l.listed && l.listErr != nil {
		if !errors.Is(l.listErr, os.ErrNotExist) {
			rep.Problems = append(rep.Problems, ProblemStatus{Name: "-", Path: r.vol.ProfilesPath(), Error: l.listErr.Error()})
		}
		rep.Problems = append(rep.Problems, ProblemStatus{Name: "-", Error: "profiles root not listed, no slot will be unregistered: " + l.listErr.Error()})
	}
	return rep, nil
}

// profileStatus is one key's line of the status report.
func profileStatus(p planned, ports map[int][]string) ProfileStatus {
	name := p.Name
	ps := ProfileStatus{Profile: name, Slot: desired.SlotPrefix + name, Intent: "none", BootIntent: "none",
		PriorState: "None", PID: -1, ExitCode: -1, Signal: -1}
	if pr := p.Profile; pr != nil {
		ps.Intent, ps.BootIntent = pr.Intent.String(), pr.BootIntent.String()
		ps.PriorState, ps.DesiredState, ps.GatewayState = pr.PriorState(), pr.DesiredState, pr.GatewayState
		ps.Port, ps.Warning = pr.Port, pr.Warning
		if w := p.gwConfig.Warning; w != "" {
			ps.Warning = strings.TrimPrefix(ps.Warning+"; "+w, "; ")
		}
		ps.ServedBy, ps.Folded, ps.NotServed = servedBy(p.Input, p.Decision), p.Folded, p.NotServed
		if p.Folds != nil && p.Decision.Intent != pr.IntentAt(p.Boot) {
			ps.EffectiveIntent = p.Decision.Intent.String()
		}
		for _, other := range ports[pr.Port] {
			if other != name {
				ps.PortConflict = append(ps.PortConflict, other)
			}
		}
	}
	fillObserved(&ps, p.Slot, p.Problem != nil)
	if p.Slot != nil && p.Profile != nil && p.Slot.Err == nil {
		for _, f := range driftedFiles(p.Files, p.Slot) {
			ps.Drift = append(ps.Drift, f.Name)
		}
	}
	for _, a := range p.Actions {
		ps.Actions = append(ps.Actions, a.String())
	}
	ps.Pending = p.Pending
	m := p.Memory
	if m.Crashed {
		ps.CrashLoopFailures = m.Failures
		ps.NextStart = m.NextStart.UTC().Format(time.RFC3339)
	}
	ps.Phase = phaseOf(ps, m)
	if p.Profile == nil && ps.Phase != "Terminating" {
		ps.Phase = "Orphaned"
	}
	return ps
}

func fillObserved(ps *ProfileStatus, slot *observed.Slot, renderFailed bool) {
	if renderFailed {
		ps.Error = "render failed"
	}
	if slot == nil {
		return
	}
	ps.SlotExists = true
	ps.NormallyUp = !slot.Down
	if slot.Err != nil {
		ps.Error = slot.Err.Error()
	}
	sup := slot.Supervision
	ps.Supervised = sup.Supervised
	ps.StatusMissing = sup.Supervised && !sup.HasStatus && slot.Err == nil
	if !sup.Supervised || !sup.HasStatus {
		return
	}
	st := sup.Status
	ps.Up, ps.WantUp, ps.Ready = st.Up(), st.WantUp, st.Up() && st.Ready
	ps.Paused = st.Up() && st.Paused // s6-svc -p: the process is stopped (SIGSTOP), not serving
	if st.Up() {
		ps.PID = st.PID
	}
	if code, ok := st.ExitCode(); ok {
		ps.ExitCode = code
	}
	if sig, ok := st.Signal(); ok {
		ps.Signal = sig
	}
	ps.Since = st.Stamp.UTC().Format(time.RFC3339)
	ps.Deaths = sup.Deaths
}

func phaseOf(ps ProfileStatus, m Memory) string {
	switch {
	case !m.TerminatingSince.IsZero():
		return "Terminating"
	case !ps.SlotExists:
		return "Unregistered"
	case !ps.Supervised:
		return "Unsupervised"
	case ps.StatusMissing:
		// A live supervisor that wrote no status: s6-svstat fails, and the gateway may run.
		return "NoStatus"
	case ps.NotServed:
		return "NotServed"
	case m.Crashed && !ps.WantUp:
		return "CrashLoopBackOff"
	case strings.HasPrefix(ps.Pending, "Blocked"):
		return "Blocked"
	case strings.HasPrefix(ps.Pending, "Held"):
		return "Held"
	case ps.Pending != "":
		return "Settling"
	case ps.Paused:
		return "Paused"
	case ps.Up:
		return "Running"
	case ps.WantUp:
		return "Starting"
	}
	return "Stopped"
}

// fillForensics adds the gateway's last exit and heartbeat to a status line.
func (c *Controller) fillForensics(ps *ProfileStatus, f desired.Forensics, now time.Time) {
	switch {
	case ps.Up && f.PriorExit == desired.PriorExitUnclean:
		// The ledger of the run going on now says running: there is no last exit to tell.
	case f.PriorExit == desired.PriorExitClean:
		ps.LastExit = "clean"
		if f.ExitCode >= 0 {
			ps.LastExit = fmt.Sprintf("clean (exit %d)", f.ExitCode)
		}
	default:
		ps.LastExit = f.PriorExit
	}
	if f.HeartbeatAt.IsZero() {
		return // never written: the check is off
	}
	ps.Heartbeat = f.HeartbeatAt.UTC().Format(time.RFC3339)
	ps.Stale = ps.Up && now.Sub(f.HeartbeatAt) > c.settings().heartbeatTimeout
}
