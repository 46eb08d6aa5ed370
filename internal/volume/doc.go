// Package volume is the only code that writes under HERMES_HOME: the boot log, the boot-pass
// stale-file unlinks and the volume lease (HERMES_HOME/.profile-controller.lease).
//
// Like the readers, it treats everything below HERMES_HOME as untrusted: it walks with openat and
// O_NOFOLLOW from a descriptor of HERMES_HOME, refuses symlinks and non-regular files, never
// blocks on a FIFO, and never writes or unlinks through a symlink. It writes nothing else, and
// nothing at all when it has nothing to write.
package volume
