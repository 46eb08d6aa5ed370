// Package observed reads the scandir and s6 state and never writes.
//
// It owns the classification of scandir entries: a real directory named gateway-<profile> is a
// slot, a gateway-* entry that is anything else is foreign, and a dot entry named
// .gateway-<profile>.tmp is a staging leftover. Every other entry is left alone: it is neither
// stat'ed nor opened.
//
// Nothing here follows a symlink inside the scandir or blocks on a FIFO or device, and every
// file read is capped (MaxManagedFileSize). The scandir path itself is configuration and is
// trusted. The supervisor's view comes from pkg/s6, which reads supervise/status and
// supervise/lock in-process.
package observed
