package reconciler

import (
	"sync/atomic"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
)

// Watch-verified slots. The scandir is a local tmpfs that only s6 and this controller write,
// so inotify sees every change made to a slot: once a slot has been read in full and found to
// match while its directory, log/ and supervise/ were all watched, a later look may reuse that
// read for as long as no watch event has touched the slot since. A resync of a converged slot
// then costs no syscall for it at all; only the profile's own files (on the volume, which may
// be shared or remote, and is therefore always re-checked) are looked at.
//
// What inotify cannot report is a supervisor that dies and is not restarted (its lock is
// released without an event); s6-svscan restarts supervisors at once, and every slot is still
// read in full, lock probe included, at least every maxSlotReuses looks. An inotify queue
// overflow (watchEpoch) or a watch lost with its directory ends every reuse at once.

// maxSlotReuses is how many looks in a row may reuse a watch-verified slot: with the default
// 10 s resync each slot is read in full at least every 5 minutes.
const maxSlotReuses = 30

// slotWatch counts the watch events of one key's slot: its scandir entry, its directory, log/
// and supervise/status. Every copy of the key's keyState shares it.
type slotWatch struct{ events atomic.Uint64 }

// slotVerified is a slot read in full that matched, with the watch counts from before the read.
type slotVerified struct {
	slot   *observed.Slot // the read, without file bytes or IDs (the key's Files): every managed file Same
	events uint64         // the key's slotWatch count before the read
	epoch  uint64         // the controller's watchEpoch before the read
	gen    string         // the Renderer generation it was compared with
	reuses atomic.Int32   // looks that reused it so far (only the key's worker adds)
}

// slotMark is taken before a slot is read: the counts a verified read is valid for.
type slotMark struct {
	ok            bool // the slot's directories were all watched before the read
	events, epoch uint64
}

// markSlot returns the mark for a read of ks's slot starting now.
func (c *Controller) markSlot(name string, ks *keyState) slotMark {
	w := c.watcher.Load()
	if w == nil || ks == nil || ks.watch == nil {
		return slotMark{}
	}
	m := slotMark{events: ks.watch.events.Load(), epoch: c.watchEpoch.Load()}
	m.ok = w.slotWatched(name)
	return m
}

// reusableSlot returns ks's verified slot when no watch event has touched it since its read
// (nil: read it).
func (c *Controller) reusableSlot(ks *keyState, s *settings) *observed.Slot {
	v := ks.verified
	if v == nil || ks.watch == nil || c.watcher.Load() == nil || v.reuses.Load() >= maxSlotReuses ||
		ks.watch.events.Load() != v.events || c.watchEpoch.Load() != v.epoch || v.gen != s.renderer.Generation() {
		return nil
	}
	return v.slot
}

// verify records lk's slot as watch-verified when it was read in full under a valid mark,
// matched the rendering and needed nothing.
func verify(ks *keyState, lk look, d Decision) *slotVerified {
	slot := lk.Slot
	if !lk.mark.ok || slot == nil || slot.Err != nil || lk.Foreign != nil || lk.Staging ||
		len(d.Actions) > 0 || ks.Files.Count() != len(observed.ManagedFiles) {
		return nil
	}
	return &slotVerified{
		slot: &observed.Slot{
			Name: slot.Name, Profile: slot.Profile, Dir: slot.Dir, Down: slot.Down,
			Supervision: slot.Supervision, Files: observed.AllSameFiles,
		},
		events: lk.mark.events, epoch: lk.mark.epoch, gen: ks.Gen,
	}
}

// slotEvent counts a watch event of key's slot.
func (c *Controller) slotEvent(key string) {
	c.mu.Lock()
	if ks := c.keys[key]; ks != nil && ks.watch != nil {
		ks.watch.events.Add(1)
	}
	c.mu.Unlock()
}

// slotDirs are the directories of key's slot that a verified read needs watched.
func (w *watcher) slotDirs(key string) (slot, log, sup string) {
	slot = w.scandir + "/" + desired.SlotPrefix + key
	return slot, slot + "/log", slot + "/supervise"
}

// slotWatched reports whether the slot's directory, log/ and supervise/ are all watched.
func (w *watcher) slotWatched(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	kw := w.keys[key]
	return kw != nil && kw.wd[watchSlot-watchProfile] != 0 && kw.wd[watchLog-watchProfile] != 0 &&
		kw.wd[watchSupervise-watchProfile] != 0
}
