package reconciler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hermes/profile-controller/internal/volume"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
)

// Line is one profile's outcome of a pass.
type Line struct {
	Profile, PriorState, Action string
	// PriorExit is how the profile's gateway ended in the previous container (boot pass only:
	// clean, unclean or unknown, from its lifecycle ledger).
	PriorExit string
	// FoldedIntoRoot: the root gateway serves this (named, Up) profile (see foldedIntoRoot).
	FoldedIntoRoot bool
	Err            error
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

// listing is every key worth a look, from one listing of profiles/ and of the scandir.
type listing struct {
	// keys are sorted, "default" first.
	keys []string
	// profiles are the entries of profiles/ (Listed false when it could not be read).
	listed  bool
	listErr error
	// foreign are scandir entries that map to no key ("gateway-" itself).
	foreign []observed.Foreign
	// entries are the keys' scandir entries as listed (see roots.entries); nil when the
	// scandir was not listed.
	entries map[string]scandirEntries
}

// list lists the keys of a full pass: "default", every entry of profiles/ (skip: when not
// nil, entries it refuses are left out), and every slot and staging dir of the scandir.
func (c *Controller) list(r *roots, skip func(name string) bool) listing {
	set := map[string]bool{desired.DefaultProfile: true}
	var l listing
	if r.vol != nil {
		names, err := r.vol.Names()
		l.listed, l.listErr = err == nil, err
		if err == nil {
			now, settle := c.opts.Now(), c.settings().rules.SettlePeriod
			c.guard.observeIdentity(r.vol.Identity(), now, settle)
			c.guard.observeListing(len(names), now, settle)
		}
		for _, n := range names {
			if skip == nil || !skip(n) {
				set[n] = true
			}
		}
	} else {
		l.listErr = r.volErr
	}
	if r.scan != nil {
		names, err := r.scan.ReadDirNames()
		if err == nil {
			l.entries = make(map[string]scandirEntries, len(names))
		}
		for _, n := range names {
			if k, ok := keyForScandirEntry(n); ok {
				set[k] = true
				l.entries[k] |= entryOf(n)
			} else if n == desired.SlotPrefix {
				l.foreign = append(l.foreign, observed.Foreign{Name: n, Reason: observed.ReasonEmptyProfile})
			}
		}
	}
	l.keys = make([]string, 0, len(set))
	for k := range set {
		l.keys = append(l.keys, k)
	}
	sort.Slice(l.keys, func(i, j int) bool {
		a, b := l.keys[i], l.keys[j]
		if (a == desired.DefaultProfile) != (b == desired.DefaultProfile) {
			return a == desired.DefaultProfile
		}
		return a < b
	})
	return l
}

// planned is one key's look and decision within a pass.
type planned struct {
	look
	Decision
}

// plan looks at every key of a full pass and plans each one, exactly as ReconcileKey would.
func (c *Controller) plan(r *roots, s *settings, boot bool, now time.Time) (listing, []planned) {
	l := c.list(r, nil)
	out := make([]planned, 0, len(l.keys))
	c.planEach(r, s, l, boot, now, func(_ int, p planned) { out = append(out, p) })
	return l, out
}

// passChunk is how many keys a full pass looks at, in parallel, before handing them over.
const passChunk = 256

// planEach is plan over the keys of l, handing each key's look and decision to take (with the
// key's index in l.keys), in order, a chunk at a time: the chunk's keys are looked at in
// parallel (lookKeys), and a caller keeps only what it needs of each. Under Multiplex the
// root is handed over last.
func (c *Controller) planEach(r *roots, s *settings, l listing, boot bool, now time.Time, take func(i int, p planned)) {
	r.entries = l.entries
	defer func() { r.entries = nil }() // later looks (finishTerminating) follow the applies
	root, from := -1, 0
	var rootLook look
	if c.opts.Topology == Multiplex {
		// The root ("default", listed first) is looked at first (what it serves, for the
		// others), planned last (its effective intent sums up every folded profile's).
		root, from, rootLook = 0, 1, c.peek(r, s, l.keys[0], boot, now)
	}
	chunk := make([]planned, min(passChunk, len(l.keys)))
	for lo := from; lo < len(l.keys); lo += passChunk {
		part := chunk[:min(passChunk, len(l.keys)-lo)]
		c.lookKeys(r, s, l.keys[lo:lo+len(part)], boot, now, part)
		for k := range part {
			take(lo+k, bootPlanned(boot, part[k]))
			part[k] = planned{}
		}
	}
	if root >= 0 {
		p := planned{look: rootLook}
		p.Folds = c.topo.summary()
		p.Decision = PlanProfile(p.Input, s.rules)
		take(root, bootPlanned(boot, p))
	}
}

// bootPlanned adds a boot pass's clean-stale of each profile to its actions.
func bootPlanned(boot bool, p planned) planned {
	if boot && p.Profile != nil {
		p.Actions = append([]Action{{Kind: CleanStale, Profile: p.Name}}, p.Actions...)
	}
	return p
}

// Plan returns the actions a full pass would take now (the boot column when boot is set). It
// changes nothing.
func (c *Controller) Plan(boot bool) ([]Action, error) {
	c.loadMemory()
	r := c.openRoots()
	defer r.close()
	if r.scan == nil {
		return nil, r.scanErr
	}
	var out []Action
	c.planEach(r, c.settings(), c.list(r, nil), boot, c.opts.Now(), func(_ int, p planned) { out = append(out, p.Actions...) })
	return out, nil
}

// passFlushBatch is how many keys' memory records a pass lets wait for its last flush: a boot
// pass over 10,000 converged profiles would otherwise hold all of them (~400 bytes each) at once.
// Each key is still written once. A variable for tests.
var passFlushBatch = 1024

// passKey is what a pass keeps of one key for its report once the key is planned. The look
// itself is kept only while the key's actions wait for the batch: a 10,000-key pass would
// otherwise hold every key's slot read and rendering at once.
type passKey struct {
	line        Line // Profile is the key; a line of the report only when hasLine
	hasLine     bool // the key has a valid profile
	unwanted    bool // its slot is unwanted: an "unregistered" line
	terminating bool // being taken down: looked at again until its slot is gone
	notes       *passNotes
}

// passNotes are a key's problems and warnings for the report (nil in passKey when none, the
// common case).
type passNotes struct {
	problem  *desired.Problem
	foreign  error
	warnings [2]string // the state file's and config.yaml's
}

// Pass runs one full pass over every profile: the boot column when boot is set (then also
// stale-file cleanup, the boot log and the boot marker). With dryRun it only plans. Slots of
// gone profiles are taken down and removed before it returns (their gateways killed after the
// unregister timeout).
func (c *Controller) Pass(ctx context.Context, boot, dryRun bool) Report {
	tok := c.own.token()
	if !dryRun && modeOf(tok) == modeStandby {
		return Report{Err: ErrStandby}
	}
	c.loadMemory()
	now := c.opts.Now()
	r := c.openRoots()
	defer r.close()
	if r.scan == nil {
		return Report{Err: r.scanErr}
	}
	s := c.settings()
	l := c.list(r, nil)
	keys := make([]passKey, len(l.keys))
	// held are the keys with actions, for the batch: by pointer, so that growing the list never
	// copies (or holds twice) a 10,000-key boot pass's looks, and each can go once committed.
	var held []*planned
	var actions []Action
	c.planEach(r, s, l, boot, now, func(i int, p planned) {
		keys[i] = c.passKeyOf(r, boot, p)
		actions = append(actions, p.Actions...)
		if onlyCleanStale(p.Actions) {
			if !dryRun {
				// Nothing to apply, or only the boot pass's clean-stale, whose failure is a warning
				// of the pass and never the key's: commit now, as the batch would.
				c.commit(c.keyLogs.of(p.Name).V(1), p.look, p.Decision, Result{}, now)
				if c.store.pending() >= passFlushBatch {
					c.flushMemory()
				}
			}
			return
		}
		p = stripped(p)
		held = append(held, &p)
	})
	rep := Report{Foreign: l.foreign}
	for _, k := range keys {
		n := k.notes
		if n == nil {
			continue
		}
		if n.problem != nil {
			rep.Problems = append(rep.Problems, *n.problem)
		}
		if n.foreign != nil {
			rep.Foreign = append(rep.Foreign, observed.Foreign{Name: desired.SlotPrefix + k.line.Profile, Reason: n.foreign.Error()})
		}
	}
	if r.vol == nil {
		rep.Problems = append(rep.Problems, desired.Problem{Path: c.opts.HermesHome, Err: r.volErr})
	} else if !l.listed && l.listErr != nil && !errors.Is(l.listErr, os.ErrNotExist) {
		rep.Problems = append(rep.Problems, desired.Problem{Path: r.vol.ProfilesPath(), Err: l.listErr})
	}
	rep.Actions = actions
	res := Result{Errors: map[string]error{}}
	if !dryRun {
		release, ok := c.own.begin(tok)
		if !ok {
			return Report{Err: ErrStandby} // the lease was lost during the look
		}
		var announceErr error
		if len(actions) > 0 {
			announceErr = c.announceLease() // a pass with nothing to do writes nothing
		}
		res = s.exec.Apply(ctx, actions)
		if announceErr != nil {
			res.Warnings = append(res.Warnings, announceErr)
		}
		release()
		c.metrics.applied(actions, res)
		for i, p := range held {
			// A pass reports per profile in its lines (boot log, reconcile's stdout): its events are
			// kept, and logged at -v 1.
			c.commit(c.keyLogs.of(p.Name).V(1), p.look, p.Decision, res, now)
			held[i] = nil
		}
		held = nil
		var gone []string
		for _, k := range keys {
			if k.terminating && res.Errors[k.line.Profile] == nil {
				gone = append(gone, k.line.Profile)
			}
		}
		res = c.finishTerminating(ctx, tok, r, gone, res)
		c.flushMemory()
		rep.Err = res.Err()
		rep.Warnings = res.Warnings
	}
	for _, k := range keys {
		if n := k.notes; n != nil {
			for _, w := range n.warnings {
				if w != "" {
					rep.Warnings = append(rep.Warnings, errors.New(w))
				}
			}
		}
		if !k.hasLine {
			continue
		}
		line := k.line
		line.Err = res.Errors[line.Profile]
		rep.Lines = append(rep.Lines, line)
	}
	for _, pr := range rep.Problems {
		rep.Lines = append(rep.Lines, Line{Profile: problemName(pr), PriorState: "None", Action: "skipped", Err: pr.Err})
	}
	for _, k := range keys {
		if k.unwanted {
			rep.Lines = append(rep.Lines, Line{Profile: k.line.Profile, PriorState: "None", Action: "unregistered", Err: res.Errors[k.line.Profile]})
		}
	}
	switch {
	case !boot || dryRun:
	case ctx.Err() != nil:
		// Interrupted (SIGTERM): no boot log, no marker, so the next start does the boot pass
		// again, stale-file cleanup included. What was applied stays applied.
		rep.Err = errors.Join(rep.Err, fmt.Errorf("boot pass interrupted, not recorded (the next start redoes it): %w", ctx.Err()))
	default:
		warn, err := c.finishBoot(now, rep.Lines)
		if warn != nil {
			rep.Warnings = append(rep.Warnings, warn)
		}
		if err != nil {
			rep.Err = errors.Join(rep.Err, err)
		}
	}
	return rep
}

// passKeyOf is what a pass keeps of p for its report. A boot pass reads the prior exit here,
// before anything starts (a started gateway rewrites its ledger).
func (c *Controller) passKeyOf(r *roots, boot bool, p planned) passKey {
	k := passKey{
		line:        Line{Profile: p.Name},
		unwanted:    p.Input.slotUnwanted(),
		terminating: p.Profile == nil && strings.HasPrefix(p.Pending, "Terminating"),
	}
	if p.problem != nil || p.Foreign != nil || p.warning != "" || p.gwConfig.Warning != "" {
		k.notes = &passNotes{p.problem, p.Foreign, [2]string{p.warning, p.gwConfig.Warning}}
	}
	if p.Profile != nil {
		k.hasLine = true
		k.line.PriorState = p.Profile.PriorState()
		k.line.Action = outcome(boot, p.Decision.Intent, p.Actions, p.Decision)
		k.line.FoldedIntoRoot = foldedIntoRoot(p.Input, p.Decision)
		if boot && r.vol != nil {
			k.line.PriorExit = r.vol.Forensics(p.Name).PriorExit
		}
	}
	return k
}

// onlyCleanStale reports whether as holds nothing but clean-stale actions (or nothing): its
// commit needs no result, so a boot pass over converged profiles holds none of their looks.
func onlyCleanStale(as []Action) bool {
	for _, a := range as {
		if a.Kind != CleanStale {
			return false
		}
	}
	return true
}

// stripped is p without what its commit no longer needs: the slot's file bytes and the
// rendering (its actions hold the files they write).
func stripped(p planned) planned {
	p.Input.Files = nil
	if p.Slot != nil {
		p.Slot = p.Slot.WithoutData()
	}
	return p
}

// finishTerminating looks again at the keys a pass is taking down until their slots are gone,
// so that a one-shot pass leaves no slot of a gone profile behind (the loop instead requeues).
func (c *Controller) finishTerminating(ctx context.Context, tok uint64, r *roots, keys []string, res Result) Result {
	for len(keys) > 0 {
		wait := time.Duration(0)
		for _, k := range keys {
			lk, d := c.look(r, k, false, c.opts.Now())
			if d.RequeueAfter > 0 && (wait == 0 || d.RequeueAfter < wait) {
				wait = d.RequeueAfter
			}
			release, ok := c.own.begin(tok)
			if !ok {
				res.Errors[k] = ErrStandby
				continue
			}
			kr := lk.set.exec.Apply(ctx, d.Actions)
			release()
			c.metrics.applied(d.Actions, kr)
			c.commit(c.keyLogs.of(k).V(1), lk, d, kr, c.opts.Now())
			if err := kr.Errors[k]; err != nil {
				res.Errors[k] = err
			}
		}
		next := keys[:0]
		for _, k := range keys {
			if c.state(k).pending != "" && res.Errors[k] == nil {
				next = append(next, k)
			}
		}
		keys = next
		if len(keys) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			for _, k := range keys {
				res.Errors[k] = fmt.Errorf("unregister %s%s: %w", desired.SlotPrefix, k, ctx.Err())
			}
			return res
		case <-time.After(min(wait, 50*time.Millisecond)):
		}
	}
	return res
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

// finishBoot appends the boot log and writes the boot marker. A boot log that cannot be written
// (a read-only or full volume) is a warning: the slots converged, and the record of that is the
// marker, which is an error to miss (the next start would redo the boot pass).
func (c *Controller) finishBoot(now time.Time, lines []Line) (warning, err error) {
	if c.opts.BootLog != nil {
		var out []string
		for _, l := range lines {
			if l.Action == "unregistered" {
				continue
			}
			out = append(out, volume.FormatBootLine(now, l.Profile, l.PriorState, bootAction(l), l.PriorExit, l.FoldedIntoRoot))
		}
		// The boot logger's errors say "boot log: ..." themselves.
		warning = c.opts.BootLog(out)
	}
	if err := os.MkdirAll(c.opts.RuntimeDir, 0o755); err != nil {
		return warning, fmt.Errorf("runtime dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(c.opts.RuntimeDir, BootMarker), []byte(now.UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return warning, fmt.Errorf("boot marker: %w", err)
	}
	return warning, nil
}

// bootAction is a line's action in the boot log: what really happened. A profile whose actions
// failed was not started, whatever was planned.
func bootAction(l Line) string {
	switch {
	case l.Action == "skipped", l.Err != nil:
		return "skipped"
	case l.Action == "started":
		return "started"
	}
	return "registered"
}

// outcome names what a pass did for one profile.
func outcome(boot bool, intent desired.Intent, acts []Action, d Decision) string {
	if boot {
		if intent == desired.Up || d.KeptUp {
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
