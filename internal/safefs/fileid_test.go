package safefs

import (
	"encoding/json"
	"math"
	"testing"
)

// A FileID is written as six numbers and read back equal, the older object form still reads, and
// anything else is an error that leaves the FileID alone.
func TestFileIDJSON(t *testing.T) {
	id := FileID{Dev: math.MaxUint64, Ino: 7, Size: -1, Mode: math.MaxUint32, Mtime: math.MinInt64, Ctime: 1796240533597575241}
	b, err := json.Marshal(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[18446744073709551615,7,-1,4294967295,-9223372036854775808,1796240533597575241]`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var back FileID
	if err := json.Unmarshal(b, &back); err != nil || back != id {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, id)
	}
	var old FileID
	if err := json.Unmarshal([]byte(`{"Dev":40,"Ino":7,"Size":9,"Mode":33261,"Mtime":5,"Ctime":6}`), &old); err != nil ||
		old != (FileID{Dev: 40, Ino: 7, Size: 9, Mode: 33261, Mtime: 5, Ctime: 6}) {
		t.Errorf("object form = %+v, %v", old, err)
	}
	for _, in := range []string{`[1,2,3,4,5]`, `[1,2,3,4,5,6,7]`, `[1,2,3,4294967296,5,6]`, `[-1,2,3,4,5,6]`, `[1,2,3,4,5,6.5]`, `"x"`} {
		got := id
		if err := json.Unmarshal([]byte(in), &got); err == nil || got != id {
			t.Errorf("Unmarshal(%s) = %+v, %v; want an error and no change", in, got, err)
		}
	}
}
