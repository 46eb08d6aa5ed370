// Package reconciler plans and applies: it turns desired state (pkg/desired) and observed state
// (pkg/observed) into actions and runs them through pkg/s6.
//
// The heart is the pure planner, Plan and PlanProfile: no I/O, no clock reads (now is passed in),
// no logger, deterministic order. Executor applies actions in phases (file work, one
// s6-svscanctl -a, process control, unregister and one -an). Controller runs full passes (the
// boot pass, reconcile --once) and the level-triggered runtime loop, in which file-system events
// and a periodic resync only enqueue profile keys and each key is reconciled from a fresh read
// of its full state, never concurrently with itself.
//
// It must never write under HERMES_HOME except through internal/volume (boot log, stale files),
// never touch scandir entries other than gateway-* slots and their staging dirs, and never
// unregister a slot while its profile directory exists or the profiles root cannot be listed.
package reconciler
