package safefs

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/jsonread"
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

// MarshalJSON writes a FileID as the array [dev, ino, size, mode, mtime, ctime]: memory files
// hold six of them per profile, and an array of numbers decodes without matching field names.
func (id FileID) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 80)
	b = append(b, '[')
	b = strconv.AppendUint(b, id.Dev, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, id.Ino, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, id.Size, 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(id.Mode), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, id.Mtime, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, id.Ctime, 10)
	return append(b, ']'), nil
}

// UnmarshalJSON reads the array MarshalJSON writes, and the object of named fields that memory
// files held before it. null leaves id as it is.
func (id *FileID) UnmarshalJSON(b []byte) error {
	r := jsonread.New(b)
	if r.Null() {
		return r.End()
	}
	if err := id.ReadJSON(r); err == nil && r.End() == nil {
		return nil
	}
	type named FileID // the struct's own decoding, without this method
	return json.Unmarshal(b, (*named)(id))
}

// ReadJSON reads the array [dev, ino, size, mode, mtime, ctime] into id; on an error id is
// unchanged.
func (id *FileID) ReadJSON(r *jsonread.Reader) error {
	var v FileID
	n := 0
	err := r.Array(func() (err error) {
		switch n {
		case 0:
			v.Dev, err = r.Uint(math.MaxUint64)
		case 1:
			v.Ino, err = r.Uint(math.MaxUint64)
		case 2:
			v.Size, err = r.Int()
		case 3:
			var m uint64
			m, err = r.Uint(math.MaxUint32)
			v.Mode = uint32(m)
		case 4:
			v.Mtime, err = r.Int()
		case 5:
			v.Ctime, err = r.Int()
		default:
			err = errors.New("file id: more than 6 numbers")
		}
		n++
		return err
	})
	if err == nil && n != 6 {
		err = fmt.Errorf("file id: %d numbers, want 6", n)
	}
	if err == nil {
		*id = v
	}
	return err
}
