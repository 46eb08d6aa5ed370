package observed

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/hermes/profile-controller/pkg/desired"
)

func TestSlotPrefixMatchesDesired(t *testing.T) {
	if slotPrefix != desired.SlotPrefix {
		t.Fatalf("observed slotPrefix %q != desired.SlotPrefix %q", slotPrefix, desired.SlotPrefix)
	}
}

func TestReadClassifies(t *testing.T) {
	tests := []struct {
		name        string
		build       func(tr tree)
		wantSlots   []string
		wantForeign []Foreign
		wantStaging []string
	}{
		{
			name:      "empty scandir",
			build:     func(tree) {},
			wantSlots: []string{},
		},
		{
			name: "real directories are slots",
			build: func(tr tree) {
				tr.slot("alpha")
				tr.dir("gateway-beta")
			},
			wantSlots: []string{"alpha", "beta"},
		},
		{
			name:      "profile names are not validated here",
			build:     func(tr tree) { tr.dir("gateway-Odd.Name.tmp") },
			wantSlots: []string{"Odd.Name.tmp"},
		},
		{
			name: "symlink to a directory is foreign",
			build: func(tr tree) {
				tr.slot("real")
				tr.symlink(tr.path("gateway-real"), "gateway-linked")
			},
			wantSlots:   []string{"real"},
			wantForeign: []Foreign{{Name: "gateway-linked", Reason: ReasonSymlink}},
		},
		{
			name:        "dangling symlink is foreign",
			build:       func(tr tree) { tr.symlink("/nowhere/at/all", "gateway-dangling") },
			wantSlots:   []string{},
			wantForeign: []Foreign{{Name: "gateway-dangling", Reason: ReasonSymlink}},
		},
		{
			name:        "regular file is foreign",
			build:       func(tr tree) { tr.file("gateway-file", "x", 0o644) },
			wantSlots:   []string{},
			wantForeign: []Foreign{{Name: "gateway-file", Reason: ReasonNotDir}},
		},
		{
			name:        "FIFO is foreign and not opened for reading",
			build:       func(tr tree) { tr.fifo("gateway-fifo") },
			wantSlots:   []string{},
			wantForeign: []Foreign{{Name: "gateway-fifo", Reason: ReasonNotDir}},
		},
		{
			name:        "socket is foreign",
			build:       func(tr tree) { tr.socket("gateway-sock") },
			wantSlots:   []string{},
			wantForeign: []Foreign{{Name: "gateway-sock", Reason: ReasonNotDir}},
		},
		{
			name:        "bare prefix is foreign",
			build:       func(tr tree) { tr.dir("gateway-") },
			wantSlots:   []string{},
			wantForeign: []Foreign{{Name: "gateway-", Reason: ReasonEmptyProfile}},
		},
		{
			name: "staging entries of any type, by name",
			build: func(tr tree) {
				tr.slot("a")
				tr.dir(".gateway-a.tmp/log")
				tr.file(".gateway-b.tmp", "x", 0o644)
				tr.symlink("/nowhere", ".gateway-c.tmp")
				tr.fifo(".gateway-d.tmp")
			},
			wantSlots:   []string{"a"},
			wantStaging: []string{".gateway-a.tmp", ".gateway-b.tmp", ".gateway-c.tmp", ".gateway-d.tmp"},
		},
		{
			name: "other entries are ignored",
			build: func(tr tree) {
				tr.slot("a")
				tr.dir("other-service")
				tr.dir(".s6-svscan")
				tr.dir("Gateway-upper")
				tr.dir("xgateway-y")
				tr.dir("gateway")
				tr.dir(".gateway-x")
				tr.dir(".gateway-.tmp")
				tr.dir("gateway-.tmp") // not a dot entry: the slot of profile ".tmp"
				tr.file(".gateway-x.tmp.bak", "", 0o644)
				tr.symlink("/nowhere", "dangling-other")
				tr.symlink("/nowhere", ".gateway-y")
				tr.fifo("fifo-other")
				tr.fifo("gateway.fifo")
			},
			wantSlots: []string{".tmp", "a"},
		},
		{
			name: "mixed, reported in name order",
			build: func(tr tree) {
				tr.slot("zeta")
				tr.symlink("/nowhere", "gateway-m")
				tr.file("gateway-b", "", 0o644)
				tr.dir(".gateway-z.tmp")
				tr.slot("alpha")
				tr.dir(".gateway-a.tmp")
				tr.fifo("gateway-f")
			},
			wantSlots: []string{"alpha", "zeta"},
			wantForeign: []Foreign{
				{Name: "gateway-b", Reason: ReasonNotDir},
				{Name: "gateway-f", Reason: ReasonNotDir},
				{Name: "gateway-m", Reason: ReasonSymlink},
			},
			wantStaging: []string{".gateway-a.tmp", ".gateway-z.tmp"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			tc.build(tr)
			st := mustRead(t, tr.root)
			if st.Scandir != tr.root {
				t.Errorf("Scandir = %q, want %q", st.Scandir, tr.root)
			}
			if got := profiles(st); !reflect.DeepEqual(got, tc.wantSlots) {
				t.Errorf("slots = %q, want %q", got, tc.wantSlots)
			}
			if !reflect.DeepEqual(st.Foreign, tc.wantForeign) {
				t.Errorf("Foreign = %+v, want %+v", st.Foreign, tc.wantForeign)
			}
			if !reflect.DeepEqual(st.Staging, tc.wantStaging) {
				t.Errorf("Staging = %q, want %q", st.Staging, tc.wantStaging)
			}
			for p, s := range st.Slots {
				if s.Profile != p || s.Name != "gateway-"+p || s.Dir != tr.root+"/gateway-"+p {
					t.Errorf("slot %q: Name=%q Profile=%q Dir=%q", p, s.Name, s.Profile, s.Dir)
				}
				if s.Err != nil {
					t.Errorf("slot %q: Err = %v", p, s.Err)
				}
			}
		})
	}
}

func TestReadScandirErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(tr tree) string
	}{
		{"missing", func(tr tree) string { return tr.path("nope") }},
		{"regular file", func(tr tree) string { tr.file("f", "", 0o644); return tr.path("f") }},
		{"dangling symlink", func(tr tree) string { tr.symlink("/nowhere", "l"); return tr.path("l") }},
		{"FIFO", func(tr tree) string { tr.fifo("p"); return tr.path("p") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			dir := tc.build(tr)
			st, err := readWithin(t, dir)
			if err == nil {
				t.Fatalf("Read(%s) = %+v, want an error", dir, st)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %s", err, dir)
			}
		})
	}
}

func TestReadFollowsTheScandirPath(t *testing.T) {
	// The scandir path is configuration (s6-overlay's /run/service is itself a symlink).
	tr := newTree(t)
	tr.slot("a")
	other := t.TempDir()
	link := other + "/service"
	if err := os.Symlink(tr.root, link); err != nil {
		t.Fatal(err)
	}
	st, err := readWithin(t, link)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Slots["a"]
	if s == nil {
		t.Fatal("no slot a via a symlinked scandir")
	}
	if files, _ := filesOf(s); s.Dir != link+"/gateway-a" || len(files) != len(ManagedFiles) {
		t.Fatalf("slot a via a symlinked scandir = %+v", s)
	}
}

func TestReadNeverWrites(t *testing.T) {
	tr := newTree(t)
	outside := newTree(t)
	outside.file("shadow", "SECRET\n", 0o600)
	outside.fixture("2.11.3.2-up.status", "supervise/status")
	outside.slot("target")

	tr.slot("full")
	tr.fixture("2.13.2.0-up.status", "gateway-full/supervise/status")
	tr.file("gateway-full/supervise/lock", "", 0o644)
	tr.file("gateway-full/down", "", 0o644)
	tr.dir("gateway-bare") // no supervise/: reading must not create it, nor event/
	tr.slot("odd")
	mustRemove(tr, "gateway-odd/run")
	tr.symlink(outside.path("shadow"), "gateway-odd/run")
	mustRemove(tr, "gateway-odd/finish")
	tr.fifo("gateway-odd/finish")
	tr.file("gateway-odd/type", strings.Repeat("y", MaxManagedFileSize+1), 0o644)
	tr.symlink(outside.path("supervise"), "gateway-odd/supervise")
	tr.symlink(outside.path("gateway-target"), "gateway-linked")
	tr.fifo("gateway-fifo")
	tr.dir(".gateway-new.tmp")
	tr.fifo("unrelated-fifo")
	tr.symlink("/nowhere", "unrelated-dangling")

	before, beforeOutside := snapshot(t, tr.root), snapshot(t, outside.root)
	if _, err := readWithin(t, tr.root); err != nil {
		t.Fatal(err)
	}
	within(t, func() {
		for _, p := range []string{"full", "bare", "odd", "linked", "fifo", "new", "missing"} {
			_, _ = ReadSlot(tr.root, p)
			_, _ = StagingExists(tr.root, p)
		}
	})
	if d := diffSnapshots(before, snapshot(t, tr.root)); d != "" {
		t.Errorf("scandir changed:\n%s", d)
	}
	if d := diffSnapshots(beforeOutside, snapshot(t, outside.root)); d != "" {
		t.Errorf("symlink targets changed:\n%s", d)
	}
}

func TestReadDeterministic(t *testing.T) {
	tr := newTree(t)
	for _, p := range []string{"m", "c", "x", "a", "k"} {
		tr.slot(p)
		tr.fixture("2.15.1.0-never-started.status", "gateway-"+p+"/supervise/status")
		tr.dir(".gateway-" + p + ".tmp")
		tr.symlink("/nowhere", "gateway-"+p+"-link")
	}
	first, err := readWithin(t, tr.root)
	if err != nil {
		t.Fatal(err)
	}
	second, err := readWithin(t, tr.root)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("two reads of the same tree differ:\n%+v\n%+v", first, second)
	}
	wantStaging := []string{".gateway-a.tmp", ".gateway-c.tmp", ".gateway-k.tmp", ".gateway-m.tmp", ".gateway-x.tmp"}
	if !reflect.DeepEqual(first.Staging, wantStaging) {
		t.Errorf("Staging = %q, want %q", first.Staging, wantStaging)
	}
	var names []string
	for _, f := range first.Foreign {
		names = append(names, f.Name)
	}
	wantForeign := []string{"gateway-a-link", "gateway-c-link", "gateway-k-link", "gateway-m-link", "gateway-x-link"}
	if !reflect.DeepEqual(names, wantForeign) {
		t.Errorf("Foreign = %q, want %q", names, wantForeign)
	}
}

// within fails the test when fn does not return in time (a blocked open on a FIFO).
