package observed

import (
	"errors"
	"reflect"
	"testing"
)

func TestReadSlot(t *testing.T) {
	tests := []struct {
		name        string
		build       func(tr tree)
		profile     string
		scandir     string // relative to the tree; "" is the tree itself
		wantSlot    bool
		wantErr     bool
		wantForeign bool
	}{
		{name: "absent", build: func(tree) {}, profile: "a"},
		{name: "only a staging entry", build: func(tr tree) { tr.dir(".gateway-a.tmp") }, profile: "a"},
		{name: "other profile only", build: func(tr tree) { tr.slot("b") }, profile: "a"},
		{name: "real slot", build: func(tr tree) { tr.slot("a"); tr.slot("b") }, profile: "a", wantSlot: true},
		{
			name: "real slot with supervision",
			build: func(tr tree) {
				tr.slot("a")
				tr.fixture("2.13.2.0-up.status", "gateway-a/supervise/status")
				tr.dir(".gateway-a.tmp")
			},
			profile: "a", wantSlot: true,
		},
		{
			name:    "symlink",
			build:   func(tr tree) { tr.slot("b"); tr.symlink("gateway-b", "gateway-a") },
			profile: "a", wantErr: true, wantForeign: true,
		},
		{name: "regular file", build: func(tr tree) { tr.file("gateway-a", "", 0o644) }, profile: "a", wantErr: true, wantForeign: true},
		{name: "FIFO", build: func(tr tree) { tr.fifo("gateway-a") }, profile: "a", wantErr: true, wantForeign: true},
		{name: "empty profile", build: func(tr tree) { tr.dir("gateway-") }, profile: "", wantErr: true},
		{name: "profile with a slash", build: func(tr tree) { tr.slot("a") }, profile: "a/log", wantErr: true},
		{name: "profile walking up", build: func(tr tree) { tr.dir("gateway-x") }, profile: "x/../../etc", wantErr: true},
		{name: "profile with NUL", build: func(tr tree) { tr.slot("a") }, profile: "a\x00", wantErr: true},
		{name: "missing scandir", build: func(tree) {}, profile: "a", scandir: "nope", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := buildScandir(t, tc.build, tc.scandir)
			var (
				slot *Slot
				err  error
			)
			within(t, func() { slot, err = ReadSlot(dir, tc.profile) })
			if (err != nil) != tc.wantErr {
				t.Fatalf("ReadSlot err = %v, want error: %v", err, tc.wantErr)
			}
			if errors.Is(err, ErrForeign) != tc.wantForeign {
				t.Errorf("errors.Is(%v, ErrForeign) = %v, want %v", err, !tc.wantForeign, tc.wantForeign)
			}
			if (slot != nil) != tc.wantSlot {
				t.Fatalf("slot = %+v, want a slot: %v", slot, tc.wantSlot)
			}
			if slot == nil {
				return
			}
			// ReadSlot and Read agree on every field.
			st, err := readWithin(t, dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := st.Slots[tc.profile]; !reflect.DeepEqual(slot, want) {
				t.Errorf("ReadSlot = %+v\n    Read = %+v", slot, want)
			}
		})
	}
}

func TestStagingExists(t *testing.T) {
	tests := []struct {
		name    string
		build   func(tr tree)
		profile string
		scandir string
		want    bool
		wantErr bool
	}{
		{name: "absent", build: func(tree) {}, profile: "a"},
		{name: "slot only", build: func(tr tree) { tr.slot("a") }, profile: "a"},
		{name: "other profile's staging", build: func(tr tree) { tr.dir(".gateway-b.tmp") }, profile: "a"},
		{name: "directory", build: func(tr tree) { tr.dir(".gateway-a.tmp/log") }, profile: "a", want: true},
		{name: "regular file", build: func(tr tree) { tr.file(".gateway-a.tmp", "", 0o644) }, profile: "a", want: true},
		{name: "dangling symlink", build: func(tr tree) { tr.symlink("/nowhere", ".gateway-a.tmp") }, profile: "a", want: true},
		{name: "FIFO", build: func(tr tree) { tr.fifo(".gateway-a.tmp") }, profile: "a", want: true},
		{name: "empty profile", build: func(tr tree) { tr.dir(".gateway-.tmp") }, profile: "", wantErr: true},
		{name: "profile with a slash", build: func(tree) {}, profile: "a/b", wantErr: true},
		{name: "missing scandir", build: func(tree) {}, profile: "a", scandir: "nope", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := buildScandir(t, tc.build, tc.scandir)
			var (
				got bool
				err error
			)
			within(t, func() { got, err = StagingExists(dir, tc.profile) })
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("StagingExists = %v, %v; want %v, error: %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
