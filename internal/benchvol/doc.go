// Package benchvol is benchmark support, and only benchmark support: it is imported by
// benchmarks (_test.go files in pkg/) and by the scenario driver in test/bench, never by the
// controller's code.
//
// It builds the trees the benchmarks run on, fast and at any size:
//
//   - MakeHome writes a HERMES_HOME: the root profile, named profiles "p00000", "p00001", …
//     whose gateways were running, and junk directories "junk00000", … that are not profiles;
//   - Converge publishes, for each profile, the slot the controller would leave behind once it
//     converged, with a supervise/status file that says "up, want up" in s6's own layout, so that
//     a controller pass over it has nothing to do;
//   - HoldLocks stands in for the s6-supervise processes of those slots: it holds a lock on each
//     supervise/lock, which is how any reader tells that a supervisor is alive.
//
// With the three, a converged system of 10,000 profiles costs no process at all, and a pass over
// it must neither fork nor write. Nothing here talks to s6 or forks.
package benchvol
