package reconciler

import (
	"fmt"
	"sync"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
)

// volumeGuard holds back unregisters while the volume looks swapped or half gone: when the
// identity of HERMES_HOME or profiles/ changes (a lazy unmount leaving the empty directory
// underneath, a volume replaced), or when more than half of the entries of profiles/ vanish from
// one listing to the next. Unregisters then wait a settle period and until two listings in a row
// agree, so a volume that comes back loses nothing.
type volumeGuard struct {
	mu        sync.Mutex
	id        [2]safefs.FileID
	known     bool
	count     int // entries of profiles/ at the last listing (-1: none yet)
	holdUntil time.Time
	stable    bool // the last two listings agreed since the hold began
	reason    string
}

func newVolumeGuard() *volumeGuard { return &volumeGuard{count: -1, stable: true} }

// observeIdentity records the volume's identity and starts a hold when it changed.
func (g *volumeGuard) observeIdentity(id [2]safefs.FileID, now time.Time, settle time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.known {
		g.id, g.known = id, true
		return
	}
	if id != g.id {
		g.hold(now, settle, fmt.Sprintf("the volume changed identity (HERMES_HOME or profiles/ is another directory: device/inode %d/%d, %d/%d before)",
			id[1].Dev, id[1].Ino, g.id[1].Dev, g.id[1].Ino))
		g.id = id
	}
}

// observeListing records the number of entries of profiles/ one full listing found.
func (g *volumeGuard) observeListing(n int, now time.Time, settle time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.count
	g.count = n
	switch {
	case prev >= 2 && n*2 < prev:
		g.hold(now, settle, fmt.Sprintf("more than half the entries of profiles/ vanished in one listing (%d, then %d)", prev, n))
	case !g.stable && n == prev:
		g.stable = true
	}
}

func (g *volumeGuard) hold(now time.Time, settle time.Duration, reason string) {
	g.holdUntil, g.reason, g.stable = now.Add(settle), reason, false
}

// held says why unregisters wait now ("" when they need not) and for how long at least.
func (g *volumeGuard) held(now time.Time) (string, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reason == "" {
		return "", 0
	}
	if now.Before(g.holdUntil) {
		return g.reason, g.holdUntil.Sub(now)
	}
	if !g.stable {
		return g.reason + "; waiting for two listings of profiles/ that agree", time.Second
	}
	g.reason = ""
	return "", 0
}
