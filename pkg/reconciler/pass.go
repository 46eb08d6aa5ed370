package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hermes/profile-controller/internal/volume"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// Line is one profile's outcome of a pass.
type Line struct {
	Profile, PriorState, Action string
	Err                         error
}

// String renders the line as `reconcile` prints it.
// Err is not part of it.
func (l Line) String() string {
	return fmt.Sprintf("reconcile: profile=%s prior_state=%s action=%s", l.Profile, l.PriorState, l.Action)
}

// Report is the outcome of a full pass.
type Report struct {
	Lines   []Line
	Actions []Action
	// Problems are profiles that were reported and skipped.
	Problems []desired.Problem
	Foreign  []observed.Foreign
	// Warnings block nothing (e.g. a stale file that is a symlink, left in place).
	Warnings []error
	// Err is set when the pass could not run or some action failed.
	Err error
}

// snapshot reads full desired and observed state and renders every profile.
func (c *Controller) snapshot() (desired.State, observed.State, map[string][]s6.File, []desired.Problem, error) {
	d := c.loader.Load()
	o, err := observed.Read(c.opts.Scandir)
	if err != nil {
		return d, o, nil, nil, fmt.Errorf("read scandir: %w", err)
	}
	files := make(map[string][]s6.File, len(d.Profiles))
	problems := append([]desired.Problem(nil), d.Problems...)
	for _, p := range d.Profiles {
		f, err := c.opts.Renderer.Render(p)
		if err != nil {
			problems = append(problems, desired.Problem{Name: p.Name, Path: p.Dir, Err: err})
			continue
		}
		files[p.Name] = f
	}
	return d, o, files, problems, nil
}

// Pass runs one full pass over every profile: the boot column when boot is set (then also
// stale-file cleanup, the boot log and the boot marker). With dryRun it only plans.
func (c *Controller) Pass(ctx context.Context, boot, dryRun bool) Report {
	c.loadMemory()
	now := c.opts.Now()
	d, o, files, problems, err := c.snapshot()
	if err != nil {
		return Report{Err: err}
	}
	c.mu.Lock()
	mem := make(map[string]Memory, len(c.mem))
	for k, v := range c.mem {
		mem[k] = v
	}
	c.mu.Unlock()
	actions, decisions := Plan(FullInput{Boot: boot, Now: now, Desired: d, Observed: o, Files: files, Memory: mem}, c.opts.Rules)
	rep := Report{Actions: actions, Problems: problems, Foreign: o.Foreign}
	res := Result{Errors: map[string]error{}}
	if !dryRun {
		res = c.exec.Apply(ctx, actions)
		c.metrics.applied(actions, res)
		c.commit(decisions, res, now)
		rep.Err = res.Err()
		rep.Warnings = res.Warnings
	}
	byProfile := map[string][]Action{}
	for _, a := range actions {
		byProfile[a.Profile] = append(byProfile[a.Profile], a)
	}
	for _, p := range d.Profiles {
		if _, ok := files[p.Name]; !ok {
			continue
		}
		rep.Lines = append(rep.Lines, Line{
			Profile: p.Name, PriorState: p.PriorState(),
			Action: outcome(boot, p.IntentAt(boot), byProfile[p.Name], decisions[p.Name]),
			Err:    res.Errors[p.Name],
		})
	}
	for _, pr := range problems {
		rep.Lines = append(rep.Lines, Line{Profile: problemName(pr), PriorState: "None", Action: "skipped", Err: pr.Err})
	}
	for _, a := range actions {
		if a.Kind == Unregister {
			rep.Lines = append(rep.Lines, Line{Profile: a.Profile, PriorState: "None", Action: "unregistered", Err: res.Errors[a.Profile]})
		}
	}
	if boot && !dryRun {
		if err := c.finishBoot(now, rep.Lines); err != nil {
			rep.Err = errors.Join(rep.Err, err)
		}
	}
	return rep
}

func problemName(p desired.Problem) string {
	if p.Name == "" {
		return "-"
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f {
			return '?'
		}
		return r
	}, p.Name), "?")
}

// finishBoot appends the boot log and writes the boot marker.
func (c *Controller) finishBoot(now time.Time, lines []Line) error {
	var errs []error
	if c.opts.BootLog != nil {
		var out []string
		for _, l := range lines {
			if l.Action == "unregistered" {
				continue
			}
			out = append(out, volume.FormatBootLine(now, l.Profile, l.PriorState, bootAction(l.Action)))
		}
		if err := c.opts.BootLog(out); err != nil {
			errs = append(errs, fmt.Errorf("boot log: %w", err))
		}
	}
	if err := os.MkdirAll(c.opts.RuntimeDir, 0o755); err != nil {
		errs = append(errs, fmt.Errorf("runtime dir: %w", err))
	} else if err := os.WriteFile(filepath.Join(c.opts.RuntimeDir, BootMarker), []byte(now.UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("boot marker: %w", err))
	}
	return errors.Join(errs...)
}

func bootAction(a string) string {
	switch a {
	case "started", "registered", "skipped":
		return a
	case "failed":
		return "skipped"
	}
	return "registered"
}

// outcome names what a pass did for one profile.
func outcome(boot bool, intent desired.Intent, acts []Action, d Decision) string {
	if boot {
		if intent == desired.Up {
			return "started"
		}
		return "registered"
	}
	out := "unchanged"
	for _, a := range acts {
		switch a.Kind {
		case Create:
			if a.Down {
				return "registered"
			}
			return "started"
		case Start:
			return "started"
		case Stop:
			return "stopped"
		case Update, Mark, Rescan:
			out = "updated"
		}
	}
	if out == "unchanged" && d.Pending != "" {
		return "pending"
	}
	return out
}
