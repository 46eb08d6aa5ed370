package s6

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/hermes/profile-controller/internal/safefs"
)

// Status file sizes: 35 bytes for s6 2.2–2.12 and 2.14+, 43 bytes for s6 2.13.x (adds a pgid).
const (
	statusSize     = 35
	statusSizePGID = 43
)

// taiOffset converts a TAI64 label to Unix seconds for any time after 2017-01-01
// (2^62 + the 37 s TAI−UTC offset), as skalibs does without a TAI system clock.
const taiOffset = uint64(1)<<62 + 37

// Status is a decoded supervise/status file.
type Status struct {
	// Stamp is the time of the last up/down transition.
	Stamp time.Time
	// ReadyStamp is the time of the last readiness (up) or finish completion (down).
	ReadyStamp time.Time
	// PID is the service's pid (the finish script's while Finishing), 0 when none.
	PID int
	// PGID is the process group (43-byte files only, else 0).
	PGID int
	// WStat is the raw wait status of the last process that died (stale while up).
	WStat uint16
	// Flag bits.
	Paused, Finishing, WantUp, Ready bool
}

// maxPID bounds the pid and pgid fields: pid_t is 32 bits, so a bigger value is a corrupt file
// (and converting it to int could give a negative pid, which kill(2) reads as a process group).
const maxPID = math.MaxInt32

// ParseStatus decodes a 35- or 43-byte status file. Any other size is an error, and so is a pid
// or pgid that does not fit a pid_t. It never panics.
func ParseStatus(b []byte) (Status, error) {
	var st Status
	var wo, fo int
	switch len(b) {
	case statusSize:
		wo, fo = 32, 34
	case statusSizePGID:
		pgid := binary.BigEndian.Uint64(b[32:40])
		if pgid > maxPID {
			return Status{}, fmt.Errorf("status file has pgid %d, out of range", pgid)
		}
		st.PGID = int(pgid)
		wo, fo = 40, 42
	default:
		return Status{}, fmt.Errorf("status file has %d bytes, want %d or %d", len(b), statusSize, statusSizePGID)
	}
	st.Stamp = tain(b[0:12])
	st.ReadyStamp = tain(b[12:24])
	pid := binary.BigEndian.Uint64(b[24:32])
	if pid > maxPID {
		return Status{}, fmt.Errorf("status file has pid %d, out of range", pid)
	}
	st.PID = int(pid)
	st.WStat = binary.BigEndian.Uint16(b[wo : wo+2])
	f := b[fo]
	st.Paused, st.Finishing, st.WantUp, st.Ready = f&1 != 0, f&2 != 0, f&4 != 0, f&8 != 0
	return st, nil
}

func tain(b []byte) time.Time {
	label := binary.BigEndian.Uint64(b[0:8])
	nano := binary.BigEndian.Uint32(b[8:12])
	return time.Unix(int64(label-taiOffset), int64(nano)).UTC()
}

// Up reports whether the service process is running (a pid, and not the finish script's).
func (s Status) Up() bool { return s.PID != 0 && !s.Finishing }

// NotStarted reports the s6 ≥ 2.13.2 "not started yet" marker (paused bit with no pid).
func (s Status) NotStarted() bool { return s.PID == 0 && !s.Finishing && s.Paused }

// ExitCode returns the last exit code and true when the last death was a normal exit.
func (s Status) ExitCode() (int, bool) {
	if s.Up() || s.NotStarted() || s.WStat&0x7f != 0 {
		return -1, false
	}
	return int(s.WStat >> 8), true
}

// Signal returns the signal number and true when the last death was by a signal.
func (s Status) Signal() (int, bool) {
	if s.Up() || s.WStat&0x7f == 0 {
		return -1, false
	}
	return int(s.WStat & 0x7f), true
}

// Supervision is the supervisor's view of one service directory.
type Supervision struct {
	// Supervised is true when an s6-supervise process holds supervise/lock.
	Supervised bool
	// SupervisorPID is the pid holding the lock (0 when not supervised).
	SupervisorPID int
	// HasStatus is true when supervise/status was read and parsed.
	HasStatus bool
	// Status is the decoded status file (zero unless HasStatus).
	Status Status
	// Changed is the status file's mtime: s6-supervise rewrites it on every change of the
	// supervisor's state (want up/down included), so it dates the last change anyone made.
	Changed time.Time
	// Deaths counts the service's deaths since its supervisor started (supervise/death_tally).
	Deaths int
	// StatusID identifies the status file version that was decoded (zero without one).
	StatusID     safefs.FileID
	statusStable bool
	// raw is the status file as read ("" without one), for Memo; a string keeps the struct
	// comparable.
	raw string
}

// StatusMemo is a stable read of supervise/status that outlives the process: the bytes as read
// (which always encode, whatever times they hold), their FileID and the death count then.
type StatusMemo struct {
	ID     safefs.FileID
	Raw    []byte
	Deaths int `json:",omitempty"`
}

// Memo returns v's status read as a StatusMemo, or nil when v holds no stable one.
func (v Supervision) Memo() *StatusMemo {
	if !v.HasMemo() {
		return nil
	}
	return &StatusMemo{ID: v.StatusID, Raw: []byte(v.raw), Deaths: v.Deaths}
}

// HasMemo reports whether v holds a stable status read, which Memo returns (without building it).
func (v Supervision) HasMemo() bool { return v.HasStatus && v.statusStable && v.raw != "" }

// Supervision turns m back into a read that ReadSupervisionAt takes as prev (nil when its bytes
// do not parse). Only its status part is set: liveness is always probed.
func (m *StatusMemo) Supervision() *Supervision {
	st, err := ParseStatus(m.Raw)
	if err != nil {
		return nil
	}
	return &Supervision{HasStatus: true, Status: st, Changed: time.Unix(0, m.ID.Mtime), Deaths: m.Deaths,
		StatusID: m.ID, statusStable: true, raw: string(m.Raw)}
}

// WantUp reports whether a live supervisor wants the service up.
func (v Supervision) WantUp() bool { return v.Supervised && v.HasStatus && v.Status.WantUp }

// Up reports whether a live supervisor runs the service now.
func (v Supervision) Up() bool { return v.Supervised && v.HasStatus && v.Status.Up() }
