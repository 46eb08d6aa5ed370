package reconciler

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hermes/profile-controller/internal/jsonread"
	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/observed"
)

// fill sets every exported field reachable from v to a value that is not zero: strings with
// characters JSON escapes, negative numbers, times with nanoseconds, one element per slice.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(-1000 * *n))
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(1<<31 + *n))
	case reflect.String:
		v.SetString(`"quoted" <b> & é \ ` + string(rune('a'+*n%26)))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{0, 1, 2, byte(*n)})
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i), n)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 10, 0, *n, 123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	default:
		panic("fill: no value for " + v.Type().String())
	}
}

// fullRecord is a record with every field set.
func fullRecord() record {
	var m record
	n := 0
	fill(reflect.ValueOf(&m).Elem(), &n)
	var ids observed.FileIDs
	fill(reflect.ValueOf(&ids).Elem(), &n)
	m.Files = namedFiles{&ids}
	return m
}

// The fast reader takes every field a memory file can hold: a field added to record, Memory,
// desired.Profile, s6.StatusMemo or Event without a case in memdecode.go fails here (it would
// still decode, through encoding/json, at five times the cost).
func TestMemoryFileFastPathTakesEveryField(t *testing.T) {
	b, err := json.Marshal(fullRecord())
	if err != nil {
		t.Fatal(err)
	}
	var fast record
	if err := readRecord(jsonread.New(b), &fast); err != nil {
		t.Fatalf("fast path refused a full record: %v\n%s", err, b)
	}
	var slow record
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Errorf("fast path and encoding/json differ:\n%+v\n%+v", fast, slow)
	}
}

// A decoded record owns its bytes: store.load reads every memory file into one reused buffer
// per worker, so a record holding a slice of its file would change under the next read.
func TestDecodedRecordOwnsItsBytes(t *testing.T) {
	b, err := json.Marshal(fullRecord())
	if err != nil {
		t.Fatal(err)
	}
	want, err := decodeRecord(slices.Clone(b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the record changed with the buffer it was read from:\n%+v\n%+v", got, want)
	}
}

// A memory file in the older form (FileIDs as objects) or with a key of another case still
// decodes, through encoding/json.
func TestMemoryFileOlderFormsDecode(t *testing.T) {
	old := `{"Seen":true,"Intent":1,"Files":{"run":{"Dev":40,"Ino":7,"Size":9,"Mode":33261,"Mtime":5,"Ctime":6},"gone":{"Dev":1}},` +
		`"State":{"Name":"p","StateID":{"Dev":40,"Ino":8,"Size":27,"Mode":33188,"Mtime":1,"Ctime":2}},"failures":3}`
	if err := readRecord(jsonread.New([]byte(old)), new(record)); err == nil {
		t.Fatal("the fast path took FileID objects")
	}
	m, err := decodeRecord([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	run := safefs.FileID{Dev: 40, Ino: 7, Size: 9, Mode: 33261, Mtime: 5, Ctime: 6}
	if !m.Seen || m.Failures != 3 || m.Files.ids == nil || m.Files.ids[1] != run || m.Files.ids.Count() != 1 ||
		m.State == nil || m.State.StateID.Ino != 8 {
		t.Errorf("decoded %+v (files %v, state %+v)", m.Memory, m.Files.ids, m.State)
	}
}

// Whatever the bytes, decodeRecord gives what encoding/json gives, and the fast path takes
// nothing encoding/json refuses.
func FuzzDecodeRecord(f *testing.F) {
	full, _ := json.Marshal(fullRecord())
	f.Add(full)
	f.Add([]byte(`{"Seen":true,"Intent":1,"IntentSince":"2026-12-02T19:42:13.145836298Z","Files":{"run":[40,7,233,33261,1,2],"type":[40,8,8,33188,1,2]},` +
		`"Gen":"1c3cf4da","State":{"Name":"p1","Dir":"/h/profiles/p1","GatewayStateJSON":"\"running\"","Port":9292,"StateID":[40,9,27,33188,3,4],"StateStable":true},` +
		`"Status":{"ID":[40,10,35,33188,5,6],"Raw":"QAAAAGsQZqojkANVQAAAAGsQZqojkANVAAAAAAAAK78AAAQ="},` +
		`"Events":[{"time":"2026-12-02T10:00:00Z","type":"Normal","reason":"Started","message":"s6-svc -u \u003cslot\u003e"}]}`))
	f.Add([]byte(`{"Files":null,"State":null,"Status":{"ID":null,"Raw":""},"SkeletonGID":null,"Events":[],"Seen":null}`))
	f.Add([]byte(`{"Seen":true,"Seen":false}`))
	f.Add([]byte(`{"State":{"Served":["a",null,"\ud83d"]},"Failures":-0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast record
		fastErr := readRecord(jsonread.New(b), &fast)
		var slow record
		slowErr := json.Unmarshal(b, &slow)
		if fastErr == nil {
			if slowErr != nil {
				t.Fatalf("fast path took what encoding/json refuses (%v): %q", slowErr, b)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("fast path and encoding/json differ on %q:\n%+v\n%+v", b, fast, slow)
			}
		}
		got, err := decodeRecord(b)
		if (err == nil) != (slowErr == nil) || (err == nil && !reflect.DeepEqual(got, slow)) {
			t.Fatalf("decodeRecord(%q) = %+v, %v; encoding/json: %+v, %v", b, got, err, slow, slowErr)
		}
	})
}
