// Package desired reads the volume and never writes.
//
// It turns HERMES_HOME into the desired state of every profile: which profiles exist, and, from
// each profile's gateway_state.json, whether its gateway should be Up, Down or left alone (Hold),
// at boot and at runtime (docs/behaviour.md). Everything under HERMES_HOME is untrusted: every read goes
// through internal/safefs (openat one component at a time with O_NOFOLLOW, regular files only,
// never blocking on a FIFO, reads capped), and SOUL.md is only ever lstat'ed, never opened.
//
// Choices made here where the spec is silent:
//
//   - A missing profiles/ directory is not read as "no named profiles": it may be a volume that
//     is not mounted (yet). Load then returns only the root profile, with Listed false and
//     ListErr set, so the caller unregisters nothing. The same holds when profiles/ is a symlink,
//     not a directory, or cannot be read; those cases are also reported as a Problem.
//   - An explicit JSON null for desired_state or gateway_state counts as the key being absent.
//   - profiles/default is reported as reserved whenever it is a real directory, with or without
//     a SOUL.md, because the operator most likely meant something by creating it.
//   - A directory without SOUL.md, or a non-directory entry, is not a profile and is skipped
//     silently; a symlink entry, an unusable SOUL.md or an invalid name inside a directory that
//     has a SOUL.md is reported as a Problem. Dot-prefixed entries are ignored entirely.
//   - gateway_state.json must be valid UTF-8 (an optional BOM is dropped); invalid UTF-8 counts as
//     unreadable, like a file that is too big or not a JSON object.
package desired
