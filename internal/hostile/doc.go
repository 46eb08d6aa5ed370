// Package hostile is test support, and only test support: it is imported from _test.go files
// alone, never from the controller's code.
//
// It does what an attacker with write access to a volume the controller reads could do, and
// checks what the code under test did about it:
//
//   - plant: special files (a device, a FIFO, a socket), symlinks, hard links and files with an
//     exact mode (Special, DeviceOrFIFO, Symlink, Link, WriteFile, RootOwned, ShortTempDir);
//   - watch: whether an inode was ever opened (WatchOpens), whether a file outside the volume
//     changed (Sentinel) and whether a whole outside tree changed (Tree, SameTree);
//   - race: attackers that run in their own goroutine while the test calls the code under test
//     in a bounded loop (Attack, Swap, StopAll, Rounds), and a time bound on every call that
//     could block (Within, WithinValue).
//
// Every helper fails the test through the testing.TB it is given.
package hostile
