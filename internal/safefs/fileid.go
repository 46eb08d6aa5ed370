package safefs

import (
	"time"

	"golang.org/x/sys/unix"
)

// RacyWindow is how recent a file's change time may be before its FileID stops proving that the
// file is unchanged. File systems stamp times from a coarse clock (a kernel tick, up to a second
// on some network and FUSE file systems), so two writes close together can leave identical
// stamps: a FileID taken within RacyWindow of the file's last change is not trusted later (the
// "racy clean" rule of git's index).
const RacyWindow = 2 * time.Second

// FileID identifies one version of a file: device, inode, size, mode, mtime and ctime. Any write,
// rename or chmod changes the ctime, which no user can set, so an equal FileID taken after the
// racy window means the same bytes. The zero FileID matches nothing.
type FileID struct {
	Dev, Ino     uint64
	Size         int64
	Mode         uint32
	Mtime, Ctime int64 // nanoseconds since the epoch
}

// IDOf returns the FileID of a stat.
func IDOf(st *unix.Stat_t) FileID {
	return FileID{
		Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mode: st.Mode,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}
}

// Stable reports whether id, taken at readAt, may later prove the file unchanged: it is not
// zero and the file's last change is older than RacyWindow at readAt. A change time in the
// future (clock skew) is never stable.
func (id FileID) Stable(readAt time.Time) bool {
	return id != (FileID{}) && id.Ctime < readAt.Add(-RacyWindow).UnixNano()
}
