package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
)

// memoryFile is where a running controller keeps its per-profile memory (runtime dir, tmpfs),
// so that `status` can show backoffs and pending corrections, and a restarted controller
// keeps its crash-loop backoff.
const memoryFile = "memory.json"

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
}

// Status reads full state and reports desired versus observed per profile, with the actions a
// pass would take now. It changes nothing.
func (c *Controller) Status(ctx context.Context) (StatusReport, error) {
	_ = ctx
	c.loadMemory()
	now := c.opts.Now()
	d, o, files, problems, err := c.snapshot()
	if err != nil {
		return StatusReport{}, err
	}
	c.mu.Lock()
	mem := make(map[string]Memory, len(c.mem))
	for k, v := range c.mem {
		mem[k] = v
	}
	c.mu.Unlock()
	boot := c.BootPending()
	_, decisions := Plan(FullInput{Boot: boot, Now: now, Desired: d, Observed: o, Files: files, Memory: mem}, c.opts.Rules)

	ports := map[int][]string{}
	for _, p := range d.Profiles {
		ports[p.Port] = append(ports[p.Port], p.Name)
	}
	rep := StatusReport{Problems: []ProblemStatus{}, Foreign: []ProblemStatus{}, Staging: o.Staging}
	if rep.Staging == nil {
		rep.Staging = []string{}
	}
	seen := map[string]bool{}
	for _, p := range d.Profiles {
		seen[p.Name] = true
		ps := ProfileStatus{
			Profile: p.Name, Slot: p.Slot(), Intent: p.Intent.String(), BootIntent: p.BootIntent.String(),
			PriorState: p.PriorState(), DesiredState: p.DesiredState, GatewayState: p.GatewayState,
			Port: p.Port, Warning: p.Warning, PID: -1, ExitCode: -1, Signal: -1,
		}
		for _, other := range ports[p.Port] {
			if other != p.Name {
				ps.PortConflict = append(ps.PortConflict, other)
			}
		}
		fillObserved(&ps, o.Slots[p.Name], files[p.Name] == nil)
		if slot := o.Slots[p.Name]; slot != nil && files[p.Name] != nil {
			for _, f := range driftedFiles(files[p.Name], slot) {
				ps.Drift = append(ps.Drift, f.Name)
			}
		}
		dec := decisions[p.Name]
		for _, a := range dec.Actions {
			ps.Actions = append(ps.Actions, a.String())
		}
		ps.Pending = dec.Pending
		m := dec.Memory
		if m.Crashed {
			ps.CrashLoopFailures = m.Failures
			ps.NextStart = m.NextStart.UTC().Format(time.RFC3339)
		}
		ps.Phase = phaseOf(ps, m)
		rep.Profiles = append(rep.Profiles, ps)
	}
	names := make([]string, 0, len(o.Slots))
	for n := range o.Slots {
		if !seen[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		ps := ProfileStatus{Profile: n, Slot: desired.SlotPrefix + n, Intent: "none", BootIntent: "none", PriorState: "None", PID: -1, ExitCode: -1, Signal: -1}
		fillObserved(&ps, o.Slots[n], false)
		for _, a := range decisions[n].Actions {
			ps.Actions = append(ps.Actions, a.String())
		}
		ps.Phase = "Orphaned"
		rep.Profiles = append(rep.Profiles, ps)
	}
	for _, pr := range problems {
		rep.Problems = append(rep.Problems, ProblemStatus{Name: problemName(pr), Path: pr.Path, Error: pr.Err.Error()})
	}
	if !d.Listed && d.ListErr != nil {
		rep.Problems = append(rep.Problems, ProblemStatus{Name: "-", Error: "profiles root not listed, no slot will be unregistered: " + d.ListErr.Error()})
	}
	for _, f := range o.Foreign {
		rep.Foreign = append(rep.Foreign, ProblemStatus{Name: f.Name, Error: f.Reason})
	}
	return rep, nil
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
	if !sup.Supervised || !sup.HasStatus {
		return
	}
	st := sup.Status
	ps.Up, ps.WantUp, ps.Ready = st.Up(), st.WantUp, st.Up() && st.Ready
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
	case !ps.SlotExists:
		return "Unregistered"
	case !ps.Supervised:
		return "Unsupervised"
	case m.Crashed && !ps.WantUp:
		return "CrashLoopBackOff"
	case ps.Pending != "":
		return "Settling"
	case ps.Up:
		return "Running"
	case ps.WantUp:
		return "Starting"
	}
	return "Stopped"
}

// persisted is the JSON form of the memory file.
type persisted struct {
	Memory map[string]Memory `json:"memory"`
}

// saveMemory writes the memory file (temp + rename in the runtime dir).
func (c *Controller) saveMemory() error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	b, err := json.Marshal(persisted{Memory: c.mem})
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.opts.RuntimeDir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(c.opts.RuntimeDir, "."+memoryFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.opts.RuntimeDir, memoryFile))
}

// loadMemory reads the memory file once, if there is one; a missing or corrupt file means no memory.
func (c *Controller) loadMemory() { c.memOnce.Do(c.readMemory) }

func (c *Controller) readMemory() {
	b, err := os.ReadFile(filepath.Join(c.opts.RuntimeDir, memoryFile))
	if err != nil {
		return
	}
	var p persisted
	if json.Unmarshal(b, &p) != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range p.Memory {
		c.mem[k] = v
	}
}

var errNoChange = errors.New("no change")

// persistIfChanged saves memory when the backoff-relevant part of any entry changed.
func (c *Controller) persistIfChanged(before map[string]Memory) error {
	c.mu.Lock()
	changed := len(before) != len(c.mem)
	for k, v := range c.mem {
		if b, ok := before[k]; !ok || !sameDurable(b, v) {
			changed = true
			break
		}
	}
	c.mu.Unlock()
	if !changed {
		return errNoChange
	}
	if err := c.saveMemory(); err != nil {
		return fmt.Errorf("save %s: %w", memoryFile, err)
	}
	return nil
}

func sameDurable(a, b Memory) bool {
	return a.Intent == b.Intent && a.Accepted == b.Accepted && a.IntentSince.Equal(b.IntentSince) && a.StartedAt.Equal(b.StartedAt) &&
		a.Crashed == b.Crashed && a.Failures == b.Failures && a.NextStart.Equal(b.NextStart)
}
