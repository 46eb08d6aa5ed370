package reconciler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// nameMax is the longest file name the file systems take (NAME_MAX).
const nameMax = 255

// roots are the directories every look starts from: HERMES_HOME (with profiles/) and the
// scandir, opened once per pass or per key so that each profile costs only its own syscalls.
type roots struct {
	vol     *desired.Volume // nil when HERMES_HOME cannot be opened (volErr says why)
	volErr  error
	scan    *safefs.Dir // nil when the scandir cannot be opened (scanErr says why)
	scanErr error
	// shared roots are opened once per resync and used by every reconcile until the next
	// (refs counts their users); see Controller.sharedRoots.
	shared bool
	refs   atomic.Int32
	// entries, while a full pass plans, are the scandir entries of each key as the pass just
	// listed them (a key missing has none): a key's look then tests only what was listed, no
	// lstat or open of an absent name. Only this controller makes gateway-* and staging
	// entries, so the listing is as current as those calls; the next pass lists again.
	entries map[string]scandirEntries
}

// scandirEntries says which of a key's scandir entries were listed.
type scandirEntries uint8

const (
	slotListed    scandirEntries = 1 << iota // gateway-<key>
	stagingListed                            // .gateway-<key>.tmp
)

// entryOf is the kind of a key's scandir entry name.
func entryOf(name string) scandirEntries {
	if s6.IsStagingName(name) {
		return stagingListed
	}
	return slotListed
}

// mayExist reports whether name's entry of kind e may exist: unknown without a listing.
func (r *roots) mayExist(name string, e scandirEntries) bool {
	return r.entries == nil || r.entries[name]&e != 0
}

// release gives back roots from openRoots (closed now) or sharedRoots (closed by the last user
// once they are replaced).
func (r *roots) release() {
	if !r.shared || r.refs.Add(-1) == 0 {
		r.close()
	}
}

// sharedRoots returns the roots the running loop opened at its last resync (nil when there
// are none): a reconcile then costs only its profile's own syscalls. They may be up to one
// resync period old; every decision that could lose something (an unregister) is re-checked
// on freshly opened roots first (see snapshot), and the next resync opens them anew.
func (c *Controller) sharedRoots() *roots {
	c.rootsMu.Lock()
	defer c.rootsMu.Unlock()
	if c.shared == nil {
		return nil
	}
	c.shared.refs.Add(1)
	return c.shared
}

// refreshRoots opens the roots every reconcile shares until the next refresh (nil: none).
func (c *Controller) refreshRoots(open bool) {
	var r *roots
	if open {
		r = c.openRoots()
		if r.vol == nil || r.scan == nil {
			r.close() // a look then opens its own, and reports what is missing
			r = nil
		} else {
			r.shared = true
			r.refs.Store(1)
		}
	}
	c.rootsMu.Lock()
	old := c.shared
	c.shared = r
	c.rootsMu.Unlock()
	if old != nil {
		old.release()
	}
}

func (c *Controller) openRoots() *roots {
	r := &roots{}
	r.vol, r.volErr = c.loader.Open()
	r.scan, r.scanErr = safefs.OpenDir(c.opts.Scandir)
	if r.scanErr != nil {
		r.scanErr = fmt.Errorf("read scandir: %w", r.scanErr)
	}
	return r
}

func (r *roots) close() {
	if r.vol != nil {
		r.vol.Close()
	}
	if r.scan != nil {
		r.scan.Close()
	}
}

// keyState is what the controller keeps about one key between looks: the planner's memory,
// and what proves parts of the key's state unchanged so they need not be read again.
type keyState struct {
	Memory
	// profile is the last valid read of the profile (its state fields are reused while the
	// state file keeps a stable FileID).
	profile *desired.Profile
	// sup is the last read of the slot's supervisor (its status is reused likewise).
	sup *s6.Supervision
	// Files holds, per managed file, the stable FileID of a version whose bytes and mode
	// matched the rendering of Renderer generation Gen (nil: the slot's files were not
	// compared). They are kept with the memory, so a fresh `reconcile --once` need not read and
	// render a slot that has not changed. Shared between copies: never modified, only replaced.
	Files *observed.FileIDs
	Gen   string
	// State and Status are the last stable reads of the state file and of supervise/status,
	// kept with the memory so that a fresh process (no profile or sup yet) need not read and
	// decode either again while its FileID holds.
	// Status is kept only while sup holds no stable status read of its own (see statusMemo).
	State  *desired.Profile `json:",omitempty"`
	Status *s6.StatusMemo   `json:",omitempty"`
	// SkeletonGID is the group the slot's supervise skeleton was made for by this controller
	// (nil: none known), so that a newly set or changed gatewayUser reaches existing slots once.
	SkeletonGID *int `json:",omitempty"`
	// pending is the correction the planner last said waits ("" when none); problem the last
	// problem or warning reported for the key.
	pending, problem string
	// Events is the key's recent history, newest last (at most maxEvents).
	Events []Event `json:",omitempty"`
	// watch counts the slot's watch events; verified is its last watch-verified read (nil:
	// none). See slotwatch.go.
	watch    *slotWatch
	verified *slotVerified
	// gwConfig is the last read of the profile's config.yaml (Multiplex only; nil when none, so
	// that perProfile keeps no more per key than before).
	gwConfig *desired.GatewayConfig
}

// look is one key's snapshot: the planner's input, plus what the caller reports.
type look struct {
	Input
	// gone is true when the key has no valid profile and no slot, foreign entry or staging dir:
	// there is nothing to remember, so the key is forgotten (junk names never get memory).
	gone bool
	// problem is a profile entry reported and skipped (nil when none), with its path.
	problem *desired.Problem
	// warning is a state-file warning (the profile is still served).
	warning string
	// set is the configuration generation the look was made under; its apply and commit use it.
	set *settings
	// mark is what a full read of the slot may be verified with; reused says the slot was not
	// read but reused from an earlier watch-verified read.
	mark   slotMark
	reused bool
	// gwConfig is the profile's config.yaml as read under Multiplex (zero otherwise).
	gwConfig desired.GatewayConfig
}

// snapshot reads one key's full desired and observed state through r into the planner's input.
// The full pass and the per-key reconcile both build their input here, and only here. ks holds
// what proves parts of the state unchanged (nil: read everything).
func (c *Controller) snapshot(r *roots, s *settings, name string, ks *keyState, boot bool, now time.Time) look {
	in := Input{Name: name, Boot: boot, Now: now}
	if boot {
		in.ContainerBoot = c.containerBoot()
	}
	lk := look{set: s}
	if ks != nil {
		in.Memory = ks.Memory
	}

	// Desired: the profile, or why there is none.
	var prev *desired.Profile
	if ks != nil {
		prev = ks.profile
		if prev == nil {
			prev = ks.State
		}
	}
	var p desired.Profile
	var present bool
	var perr error
	if r.vol == nil {
		present, perr = name != desired.DefaultProfile, r.volErr
		if present {
			perr = fmt.Errorf("%w: %w", desired.ErrUnlisted, r.volErr)
		}
	} else {
		p, present, perr = r.vol.Profile(name, prev, now)
	}
	in.Keep = present
	switch {
	case perr == nil && present && prev.Equal(&p):
		in.Profile = prev // the read kept, unchanged: nothing allocated
	case perr == nil && present:
		read := p
		in.Profile = &read
	case errors.Is(perr, desired.ErrNotProfile):
		// A directory without SOUL.md is simply not a profile.
	case perr != nil && present:
		in.Problem = perr
		lk.problem = &desired.Problem{Name: name, Path: entryPath(r, name), Err: perr}
	}

	// Observed: staging leftover, then the slot.
	if r.scan == nil {
		in.Problem = errors.Join(in.Problem, r.scanErr)
		in.Profile = nil // nothing can be decided without the scandir
		lk.Input = in
		return lk
	}
	if len(s6.StagingName(desired.SlotPrefix+name)) > nameMax {
		// No slot or staging dir can have this name (NAME_MAX): nothing to read, and no
		// "file name too long" besides the name's own problem.
		lk.gone = in.Profile == nil
		if in.Profile != nil {
			in.Problem = fmt.Errorf("profile name %q is too long for a slot", name)
			lk.problem = &desired.Problem{Name: name, Path: in.Profile.Dir, Err: in.Problem}
			in.Profile = nil
		}
		lk.Input = in
		return lk
	}
	var slot *observed.Slot
	var serr error
	if ks != nil {
		slot = c.reusableSlot(ks, s)
	}
	if slot != nil {
		lk.reused = true // no watch event since a full read that matched: nothing to read
	} else {
		lk.mark = c.markSlot(name, ks)
		if r.mayExist(name, stagingListed) {
			if staging, err := observed.StagingAt(r.scan, name); err == nil {
				in.Staging = staging
			}
		}
		var known *observed.Known
		if ks != nil && (ks.Files != nil || ks.sup != nil || ks.Status != nil) {
			known = &observed.Known{Supervision: ks.sup}
			if ks.sup == nil && ks.Status != nil {
				known.Supervision = ks.Status.Supervision()
			}
			if ks.Gen == s.renderer.Generation() {
				known.Files = ks.Files
			}
		}
		if r.mayExist(name, slotListed) {
			slot, serr = observed.ReadSlotAt(r.scan, name, known, now)
			if serr != nil {
				in.Foreign = serr
			}
		}
	}
	in.Slot = slot

	// Render only when something must be compared or created.
	if in.Profile != nil && (slot == nil || !slot.AllSame()) {
		files, err := s.renderer.Render(*in.Profile)
		if err != nil {
			in.Problem = fmt.Errorf("render %s: %w", in.Profile.Slot(), err)
			lk.problem = &desired.Problem{Name: name, Path: in.Profile.Dir, Err: in.Problem}
			in.Profile = nil
		} else {
			in.Files = files
		}
	}
	if in.Profile != nil {
		lk.warning = in.Profile.Warning
		if slot != nil {
			in.Skeleton = skeletonWanted(s.owner, ks)
		}
	}
	if in.slotUnwanted() && r.shared {
		// About to unregister on roots that may be a resync period old (profiles/ swapped
		// since?): decide on freshly opened ones.
		fresh := c.openRoots()
		defer fresh.close()
		return c.snapshot(fresh, s, name, ks, boot, now)
	}
	if in.slotUnwanted() && r.vol != nil {
		// About to unregister: only now is the volume's identity worth two fstat calls.
		c.guard.observeIdentity(r.vol.Identity(), now, s.rules.SettlePeriod)
		in.HoldUnregister, in.HoldFor = c.guard.held(now)
	}
	lk.gone = in.Profile == nil && slot == nil && serr == nil && !in.Staging
	lk.Input = in
	return lk
}

// skeletonWanted is the owner an existing slot's supervise skeleton must be (re)made for: the
// gateway user when the slot is not known to have its skeleton, group 0 (root) when the user
// was unset after a skeleton was made for it; nil when nothing is to be done.
func skeletonWanted(owner *s6.Owner, ks *keyState) *s6.Owner {
	var have *int
	if ks != nil {
		have = ks.SkeletonGID
	}
	switch {
	case owner != nil && (have == nil || *have != owner.GID):
		return owner
	case owner == nil && have != nil && *have != 0:
		return &s6.Owner{UID: 0, GID: 0}
	}
	return nil
}

// entryPath is the path of a key's entry on the volume, for problem reports.
func entryPath(r *roots, name string) string {
	if r.vol == nil {
		return ""
	}
	if name == desired.DefaultProfile {
		return r.vol.HomePath()
	}
	return r.vol.ProfilesPath() + "/" + name
}

// remember updates ks after a look: the profile and supervisor read, and the managed files now
// known to match the rendering (only stable FileIDs of files that were compared and agreed).
func (c *Controller) remember(ks *keyState, lk look, d Decision) {
	ks.Memory = d.Memory
	ks.pending = d.Pending
	ks.profile = lk.Profile
	switch p := lk.Profile; {
	case p == nil:
		ks.State = nil
	case p.StateStable && p.Warning == "":
		// A warning names the profile's path, which a later process may see elsewhere.
		ks.State = p
	}
	ks.gwConfig = nil
	if lk.gwConfig != (desired.GatewayConfig{}) {
		gc := lk.gwConfig
		ks.gwConfig = &gc
	}
	if ks.watch == nil {
		ks.watch = &slotWatch{}
	}
	if lk.reused && len(d.Actions) == 0 {
		ks.verified.reuses.Add(1) // Files, Gen and sup stay those of the verified read
		return
	}
	prev, prevSup := ks.Files, ks.sup
	ks.verified = nil
	ks.sup, ks.Files, ks.Gen = nil, nil, ""
	slot := lk.Slot
	if slot == nil {
		ks.SkeletonGID = nil // no slot, no skeleton (a create records its own in commit)
		ks.Status = nil
		return
	}
	if slot.Err == nil {
		ks.sup = prevSup // an unchanged read keeps its copy: nothing allocated
		if prevSup == nil || *prevSup != slot.Supervision {
			sup := slot.Supervision
			ks.sup = &sup
		}
	}
	switch {
	case ks.sup != nil && ks.sup.HasMemo():
		ks.Status = nil // sup holds the last stable status read
	case ks.Status == nil && prevSup != nil:
		ks.Status = prevSup.Memo() // keep the last stable one, which prevSup held
	}
	if lk.Profile == nil || slot.Err != nil {
		return // the files were not compared
	}
	var files observed.FileIDs
	if lk.reused && prev != nil {
		files = *prev // a watch-verified slot: its files are those of the verified read
	} else {
		for i := range observed.ManagedFiles {
			if f := slot.File(observed.ManagedFiles[i]); f != nil && f.Present() && (f.Same || f.ID.Stable(lk.Now)) {
				files[i] = f.ID
			}
		}
	}
	for _, a := range d.Actions {
		if a.Kind == Update {
			for _, f := range a.Files {
				if i := slices.Index(observed.ManagedFiles, f.Name); i >= 0 {
					files[i] = safefs.FileID{} // drifted
				}
			}
		}
	}
	ks.Files, ks.Gen = sharedFiles(prev, files), lk.set.renderer.Generation()
	ks.verified = verify(ks, lk, d)
	if ks.verified != nil {
		ks.sup = &ks.verified.slot.Supervision // the same read: one copy
	}
}

// statusMemo is the key's last stable read of supervise/status, for its memory file (nil: none):
// its supervisor read's when that holds one, else the one kept.
func (ks *keyState) statusMemo() *s6.StatusMemo {
	if ks.sup != nil && ks.sup.HasMemo() {
		return ks.sup.Memo()
	}
	return ks.Status
}

// statusMemoID is the FileID of statusMemo's read (false: none), without building it.
func (ks *keyState) statusMemoID() (safefs.FileID, bool) {
	if ks.sup != nil && ks.sup.HasMemo() {
		return ks.sup.StatusID, true
	}
	if ks.Status != nil {
		return ks.Status.ID, true
	}
	return safefs.FileID{}, false
}

// sharedFiles is files as a keyState keeps them: prev when they are the same, so that a look
// that found nothing new allocates nothing.
func sharedFiles(prev *observed.FileIDs, files observed.FileIDs) *observed.FileIDs {
	if prev != nil && *prev == files {
		return prev
	}
	return &files
}

// keyForScandirEntry maps "gateway-<n>" and ".gateway-<n>.tmp" to n.
func keyForScandirEntry(name string) (string, bool) {
	if s6.IsStagingName(name) {
		return strings.TrimSuffix(strings.TrimPrefix(name, "."+desired.SlotPrefix), ".tmp"), true
	}
	if k, ok := strings.CutPrefix(name, desired.SlotPrefix); ok && k != "" {
		return k, true
	}
	return "", false
}
