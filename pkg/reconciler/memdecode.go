package reconciler

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/hermes/profile-controller/internal/jsonread"
	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// decodeRecord decodes a memory file. A fresh process reads one per profile before its first
// pass, and encoding/json spends ~20 µs on each (three scans of the bytes and reflection per
// field: a third of a no-op `reconcile --once`); readRecord walks them once. The files are
// written by encoding/json; whatever readRecord does not take (an unknown or repeated key, a
// FileID in the older object form) goes to encoding/json whole, so the result is always
// encoding/json's.
func decodeRecord(b []byte) (record, error) {
	var m record
	if err := readRecord(jsonread.New(b), &m); err == nil {
		return m, nil
	}
	m = record{}
	err := json.Unmarshal(b, &m)
	return m, err
}

// errUnknownKey sends a file to encoding/json.
var errUnknownKey = errors.New("memory file: key not on the fast path")

func readRecord(r *jsonread.Reader, m *record) error {
	err := r.Object(func(key []byte) error {
		switch string(key) {
		case "Files":
			return readFiles(r, &m.Files)
		case "Gen":
			return readString(r, &m.Gen)
		case "State":
			return readPtr(r, &m.State, readProfile)
		case "Status":
			return readPtr(r, &m.Status, readStatus)
		case "SkeletonGID":
			return readPtr(r, &m.SkeletonGID, readInt[int])
		case "Events":
			return readSlice(r, &m.Events, readEvent)
		}
		return readMemoryField(r, key, &m.Memory)
	})
	if err != nil {
		return err
	}
	return r.End()
}

func readMemoryField(r *jsonread.Reader, key []byte, m *Memory) error {
	switch string(key) {
	case "Seen":
		return readBool(r, &m.Seen)
	case "Intent":
		return readInt(r, &m.Intent)
	case "IntentSince":
		return readTime(r, &m.IntentSince)
	case "StateModTime":
		return readTime(r, &m.StateModTime)
	case "Accepted":
		return readInt(r, &m.Accepted)
	case "StartedAt":
		return readTime(r, &m.StartedAt)
	case "Crashed":
		return readBool(r, &m.Crashed)
	case "Failures":
		return readInt(r, &m.Failures)
	case "NextStart":
		return readTime(r, &m.NextStart)
	case "TerminatingSince":
		return readTime(r, &m.TerminatingSince)
	case "Killed":
		return readBool(r, &m.Killed)
	case "TermSent":
		return readBool(r, &m.TermSent)
	case "ActedOn":
		return readFileID(r, &m.ActedOn)
	case "NoStatusSince":
		return readTime(r, &m.NoStatusSince)
	case "ActedAt":
		return readTime(r, &m.ActedAt)
	case "NotServed":
		return readBool(r, &m.NotServed)
	}
	return errUnknownKey
}

func readProfile(r *jsonread.Reader, p *desired.Profile) error {
	return r.Object(func(key []byte) error {
		switch string(key) {
		case "Name":
			return readString(r, &p.Name)
		case "Dir":
			return readString(r, &p.Dir)
		case "DesiredState":
			return readString(r, &p.DesiredState)
		case "GatewayState":
			return readString(r, &p.GatewayState)
		case "DesiredStateJSON":
			return readString(r, &p.DesiredStateJSON)
		case "GatewayStateJSON":
			return readString(r, &p.GatewayStateJSON)
		case "HasStateFile":
			return readBool(r, &p.HasStateFile)
		case "StateModTime":
			return readTime(r, &p.StateModTime)
		case "BootIntent":
			return readInt(r, &p.BootIntent)
		case "Intent":
			return readInt(r, &p.Intent)
		case "Warning":
			return readString(r, &p.Warning)
		case "Port":
			return readInt(r, &p.Port)
		case "StateID":
			return readFileID(r, &p.StateID)
		case "StateStable":
			return readBool(r, &p.StateStable)
		case "Served":
			return readSlice(r, &p.Served, readString)
		}
		return errUnknownKey
	})
}

func readStatus(r *jsonread.Reader, s *s6.StatusMemo) error {
	return r.Object(func(key []byte) error {
		switch string(key) {
		case "ID":
			return readFileID(r, &s.ID)
		case "Raw":
			return readBytes(r, &s.Raw)
		case "Deaths":
			return readInt(r, &s.Deaths)
		}
		return errUnknownKey
	})
}

func readEvent(r *jsonread.Reader, e *Event) error {
	return r.Object(func(key []byte) error {
		switch string(key) {
		case "time":
			return readTime(r, &e.Time)
		case "type":
			return readString(r, &e.Type)
		case "reason":
			return readString(r, &e.Reason)
		case "message":
			return readString(r, &e.Message)
		}
		return errUnknownKey
	})
}

// readFiles reads namedFiles: an object of FileIDs by file name, unmanaged names dropped.
func readFiles(r *jsonread.Reader, f *namedFiles) error {
	if r.Null() {
		return nil
	}
	var ids observed.FileIDs
	err := r.Object(func(key []byte) error {
		var id safefs.FileID
		if err := readFileID(r, &id); err != nil {
			return err
		}
		for i, name := range observed.ManagedFiles {
			if name == string(key) {
				ids[i] = id
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.ids = nil
	if ids.Count() > 0 {
		f.ids = &ids
	}
	return nil
}

// The readers below take JSON's null as encoding/json does: a scalar, a time or a FileID is
// left as it is, a pointer or slice becomes nil.

func readFileID(r *jsonread.Reader, id *safefs.FileID) error {
	if r.Null() {
		return nil
	}
	return id.ReadJSON(r)
}

func readBool(r *jsonread.Reader, v *bool) (err error) {
	if !r.Null() {
		*v, err = r.Bool()
	}
	return err
}

func readInt[T ~int](r *jsonread.Reader, v *T) error {
	if r.Null() {
		return nil
	}
	n, err := r.Int()
	*v = T(n)
	return err
}

func readString(r *jsonread.Reader, v *string) (err error) {
	if !r.Null() {
		*v, err = r.String()
	}
	return err
}

func readTime(r *jsonread.Reader, t *time.Time) error {
	if r.Null() {
		return nil
	}
	q, err := r.Quoted()
	if err != nil {
		return err
	}
	return t.UnmarshalJSON(q)
}

// readBytes reads base64 as encoding/json does for a []byte.
func readBytes(r *jsonread.Reader, v *[]byte) error {
	if r.Null() {
		*v = nil
		return nil
	}
	s, err := r.String()
	if err != nil {
		return err
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, []byte(s))
	*v = b[:n]
	return err
}

func readPtr[T any](r *jsonread.Reader, p **T, read func(*jsonread.Reader, *T) error) error {
	if r.Null() {
		*p = nil
		return nil
	}
	v := new(T)
	if err := read(r, v); err != nil {
		return err
	}
	*p = v
	return nil
}

func readSlice[T any](r *jsonread.Reader, s *[]T, read func(*jsonread.Reader, *T) error) error {
	if r.Null() {
		*s = nil
		return nil
	}
	out := []T{}
	err := r.Array(func() error {
		var v T
		err := read(r, &v)
		out = append(out, v)
		return err
	})
	*s = out
	return err
}
