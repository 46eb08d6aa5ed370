package reconciler

import (
	"context"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
)

// enterStandby is the start of a controller that did not get the lease: it says so once, and
// takes down whatever slots its scandir holds (left by an earlier life as the owner).
func (c *Controller) enterStandby(ctx context.Context) {
	c.opts.Log.Info("Standby", "standby", c.Standby())
	c.publishRole()
	c.takeDownSlots(ctx)
}

// stepDown makes an owner that lost the lease a standby: no apply is admitted any more (those in
// flight finish first), then every slot of its scandir is taken down.
func (c *Controller) stepDown(ctx context.Context) {
	c.own.set(modeStandby)
	c.publishRole()
	c.takeDownSlots(ctx)
}

// takeDownSlots takes down and removes every slot of the scandir the way a gone profile's slot
// goes (planUnregister: s6-svc -d, s6-svc -k after the unregister timeout, then removal), and
// forgets every key. It returns when no slot is left or ctx is done. The gateways get SIGTERM
// from s6, which they treat as unplanned: their state files keep saying running, so the new
// owner keeps them running.
func (c *Controller) takeDownSlots(ctx context.Context) {
	log := c.opts.Log
	mem := map[string]Memory{}
	removed := 0
	for {
		scan, err := safefs.OpenDir(c.opts.Scandir)
		if err != nil {
			log.Error(err, "Standby: cannot take down the slots")
			return
		}
		names, _ := scan.ReadDirNames()
		var acts []Action
		now := c.opts.Now()
		left := 0
		for _, n := range names {
			key, ok := keyForScandirEntry(n)
			if !ok || n != desired.SlotPrefix+key {
				continue
			}
			slot, err := observed.ReadSlotAt(scan, key, nil, now)
			if err != nil || slot == nil {
				continue // foreign or gone: never touched
			}
			left++
			in := Input{Name: key, Now: now, Slot: slot, Memory: mem[key]}
			d := Decision{Memory: in.Memory}
			planUnregister(&d, in, c.settings().rules)
			for _, a := range d.Actions {
				d.Memory = d.Memory.applied(a)
				if a.Kind == Unregister {
					removed++
				}
			}
			mem[key] = d.Memory
			acts = append(acts, d.Actions...)
		}
		scan.Close()
		if len(acts) > 0 {
			res := c.settings().exec.Apply(ctx, acts)
			c.metrics.applied(acts, res)
			if err := res.Err(); err != nil {
				log.Error(err, "Standby: taking down a slot failed; trying again")
			}
		}
		if left == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.mu.Lock()
	for k := range c.keys {
		c.store.forget(k)
	}
	c.keys = map[string]*keyState{}
	c.reported = map[reportKey]string{}
	c.mu.Unlock()
	c.flushMemory()
	if removed > 0 {
		log.Info("Standby: took down every slot of this scandir", "slots", removed)
	}
}
