// Package s6 is the only package that touches s6: status files, control, scandir writes, exec
// of s6-* binaries.
//
// It reads a supervisor's view of a service directory in-process (supervise/lock and
// supervise/status, without forking s6-svstat), runs s6-svc and s6-svscanctl by absolute path
// with a timeout, and builds, edits and removes slot directories in the scandir.
//
// It must never touch anything in the scandir other than "gateway-*" slots and their
// ".gateway-*.tmp" staging entries, never follow a symlink when it writes or removes, and never
// block on a FIFO or device when it reads.
package s6
