package observed

import (
	"bytes"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hermes/profile-controller/pkg/s6"
)

func TestReadSlotContents(t *testing.T) {
	const s = "gateway-a/"
	full := map[string]string{
		"type":    "longrun\n",
		"run":     "#!/bin/sh\nexec gateway a\n",
		"finish":  "#!/bin/sh\nexit 0\n",
		"log/run": "#!/bin/sh\nexec logutil-service /var/log/a\n",
	}
	fullModes := map[string]uint32{"type": 0o644, "run": 0o755, "finish": 0o755, "log/run": 0o755}
	big := strings.Repeat("x", MaxManagedFileSize)
	// slotWith builds the complete slot a, then lets change alter it.
	slotWith := func(change func(tr tree)) func(tr tree) {
		return func(tr tree) {
			tr.slot("a")
			change(tr)
		}
	}
	// replacing builds the complete slot a with the managed file rel removed (and log/, for
	// log/run, when dir is set), then lets plant put something else in its place.
	replacing := func(rel string, dir bool, plant func(tr tree, rel string)) func(tr tree) {
		return slotWith(func(tr tree) {
			mustRemove(tr, s+rel)
			if dir {
				mustRemove(tr, filepath.Dir(s+rel))
				rel = filepath.Dir(rel)
			}
			plant(tr, s+rel)
		})
	}
	// secretLink plants a file holding SECRET at the tree path secret, then at rel a symlink to
	// target: a name relative to rel's directory, or with abs the tree path target.
	secretLink := func(secret, target string, abs bool) func(tr tree, rel string) {
		return func(tr tree, rel string) {
			tr.file(secret, "SECRET\n", 0o600)
			to := target
			if abs {
				to = tr.path(target)
			}
			tr.symlink(to, rel)
		}
	}

	tests := []struct {
		name  string
		build func(tr tree)
		// missing is the managed file the build made unreadable: the want is the complete slot
		// without it, unless wantFiles and wantModes are set.
		missing   string
		wantFiles map[string]string
		wantModes map[string]uint32
		wantDown  bool
	}{
		{name: "complete slot", build: slotWith(func(tree) {})},
		{
			name:      "empty slot",
			build:     func(tr tree) { tr.dir("gateway-a") },
			wantFiles: map[string]string{},
			wantModes: map[string]uint32{},
		},
		{
			name: "empty files are present",
			build: func(tr tree) {
				tr.file(s+"type", "", 0o600)
			},
			wantFiles: map[string]string{"type": ""},
			wantModes: map[string]uint32{"type": 0o600},
		},
		{
			name:    "run symlinked to a secret outside is not read",
			build:   replacing("run", false, secretLink("elsewhere/shadow", "elsewhere/shadow", true)),
			missing: "run",
		},
		{
			name:    "run as a relative symlink to a regular file is not read",
			build:   replacing("run", false, secretLink(s+"real-run", "real-run", false)),
			missing: "run",
		},
		{name: "run as a FIFO does not block", build: replacing("run", false, tree.fifo), missing: "run"},
		{name: "run as a socket", build: replacing("run", false, tree.socket), missing: "run"},
		{name: "run as a directory", build: replacing("run", false, tree.dir), missing: "run"},
		{
			name:    "run one byte over the cap counts as missing",
			build:   slotWith(func(tr tree) { tr.file(s+"run", big+"x", 0o755) }),
			missing: "run",
		},
		{
			name:      "run exactly at the cap is read",
			build:     slotWith(func(tr tree) { tr.file(s+"run", big, 0o755) }),
			wantFiles: func() map[string]string { m := maps.Clone(full); m["run"] = big; return m }(),
			wantModes: fullModes,
		},
		{
			name:    "log symlinked to a directory is not followed",
			build:   replacing("log/run", true, secretLink("elsewhere/log/run", "elsewhere/log", true)),
			missing: "log/run",
		},
		{
			name:    "log as a regular file",
			build:   replacing("log/run", true, func(tr tree, rel string) { tr.file(rel, "x", 0o644) }),
			missing: "log/run",
		},
		{
			name:    "log/run as a symlink",
			build:   replacing("log/run", false, func(tr tree, rel string) { tr.symlink("../run", rel) }),
			missing: "log/run",
		},
		{
			name: "modes keep setuid, setgid and sticky bits",
			build: slotWith(func(tr tree) {
				mustChmod(tr, s+"run", 0o4750)
				mustChmod(tr, s+"finish", 0o2700)
				mustChmod(tr, s+"type", 0o1444)
			}),
			wantFiles: full,
			wantModes: map[string]uint32{"type": 0o1444, "run": 0o4750, "finish": 0o2700, "log/run": 0o755},
		},
		{name: "down marker as a regular file", build: slotWith(func(tr tree) { tr.file(s+"down", "", 0o644) }), wantDown: true},
		{name: "down marker as a directory", build: slotWith(func(tr tree) { tr.dir(s + "down") }), wantDown: true},
		{name: "down marker as a dangling symlink", build: slotWith(func(tr tree) { tr.symlink("/nowhere", s+"down") }), wantDown: true},
		{name: "down marker as a FIFO", build: slotWith(func(tr tree) { tr.fifo(s + "down") }), wantDown: true},
	}
	for i, tc := range tests {
		if tc.wantFiles == nil {
			tests[i].wantFiles, tests[i].wantModes = maps.Clone(full), maps.Clone(fullModes)
			delete(tests[i].wantFiles, tc.missing)
			delete(tests[i].wantModes, tc.missing)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			tc.build(tr)
			slot := mustReadSlot(t, tr.root, "a")
			if slot.Err != nil {
				t.Errorf("Err = %v", slot.Err)
			}
			got := map[string]string{}
			files, modes := filesOf(slot)
			for k, v := range files {
				got[k] = string(v)
				if bytes.Contains(v, []byte("SECRET")) {
					t.Errorf("Files[%q] was read through a symlink", k)
				}
			}
			if !reflect.DeepEqual(got, tc.wantFiles) {
				t.Errorf("Files:\n got %s\nwant %s", quoteMap(got), quoteMap(tc.wantFiles))
			}
			if !reflect.DeepEqual(modes, tc.wantModes) {
				t.Errorf("Modes = %s, want %s", modesString(modes), modesString(tc.wantModes))
			}
			if slot.Down != tc.wantDown {
				t.Errorf("Down = %v, want %v", slot.Down, tc.wantDown)
			}
			if slot.Supervision != (s6.Supervision{}) {
				t.Errorf("Supervision = %+v, want zero (no supervise/)", slot.Supervision)
			}
		})
	}
}

func TestReadSupervision(t *testing.T) {
	const sup = "gateway-a/supervise/"
	tests := []struct {
		name    string
		fixture string // copied to supervise/status when set
		build   func(tr tree)
		lock    string // "": no lock file; "free": an unlocked lock file; "held": locked by a live process
		// want
		wantErr       bool
		wantHasStatus bool
		wantPID       int
		wantPGID      int
		wantFlags     [4]bool // paused, finishing, wantUp, ready
	}{
		{
			name:    "35-byte status (2.11), no lock file",
			fixture: "2.11.3.2-up.status",
			// 2.11.3.2 up: pid 19507, flags 0x04
			wantHasStatus: true, wantPID: 19507, wantFlags: [4]bool{false, false, true, false},
		},
		{
			name:    "43-byte status (2.13), free lock",
			fixture: "2.13.2.0-up.status",
			lock:    "free",
			// 2.13.2.0 up: pid 19386, pgid 19386, flags 0x04
			wantHasStatus: true, wantPID: 19386, wantPGID: 19386, wantFlags: [4]bool{false, false, true, false},
		},
		{
			name:    "43-byte finishing, held lock",
			fixture: "2.13.2.0-finishing.status",
			lock:    "held",
			// 2.13.2.0 finishing: pid 19437 (finish), flags 0x06
			wantHasStatus: true, wantPID: 19437, wantPGID: 19437, wantFlags: [4]bool{false, true, true, false},
		},
		{
			name:    "35-byte never started (2.15), held lock",
			fixture: "2.15.1.0-never-started.status",
			lock:    "held",
			// 2.15.1.0 never-started: pid 0, flags 0x09
			wantHasStatus: true, wantFlags: [4]bool{true, false, false, true},
		},
		{
			name:  "supervise without status, held lock",
			build: func(tr tree) { tr.dir(sup) },
			lock:  "held",
		},
		{
			name:  "no supervise directory",
			build: func(tree) {},
		},
		{
			name:    "status of a wrong size is an error on the slot",
			build:   func(tr tree) { tr.file(sup+"status", strings.Repeat("\x00", 36), 0o644) },
			wantErr: true,
		},
		{
			name: "supervise symlinked to a real supervise directory is not followed",
			build: func(tr tree) {
				tr.fixture("2.11.3.2-up.status", "elsewhere/supervise/status")
				tr.symlink(tr.path("elsewhere/supervise"), "gateway-a/supervise")
			},
			wantErr: true,
		},
		{
			name: "status symlinked to a fixture is not followed",
			build: func(tr tree) {
				tr.fixture("2.11.3.2-up.status", "elsewhere/status")
				tr.symlink(tr.path("elsewhere/status"), sup+"status")
			},
			wantErr: true,
		},
		{
			name:    "status as a FIFO does not block",
			build:   func(tr tree) { tr.fifo(sup + "status") },
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTree(t)
			tr.slot("a")
			tr.file("gateway-a/down", "", 0o644)
			if tc.build != nil {
				tc.build(tr)
			}
			var raw []byte
			if tc.fixture != "" {
				raw = tr.fixture(tc.fixture, sup+"status")
			}
			wantSupervisor := 0
			switch tc.lock {
			case "free":
				tr.file(sup+"lock", "", 0o644)
			case "held":
				tr.file(sup+"lock", "", 0o644)
				wantSupervisor = holdSupervisorLock(t, tr.path(sup+"lock"))
			}

			slot := mustReadSlot(t, tr.root, "a")
			if (slot.Err != nil) != tc.wantErr {
				t.Fatalf("Err = %v, want error: %v", slot.Err, tc.wantErr)
			}
			// A supervision problem never hides the rest of the slot.
			if files, _ := filesOf(slot); len(files) != len(ManagedFiles) || !slot.Down {
				t.Errorf("files %d/%d, Down %v: the rest of the slot was not read", len(files), len(ManagedFiles), slot.Down)
			}
			v := slot.Supervision
			if tc.wantErr {
				if v != (s6.Supervision{}) {
					t.Errorf("Supervision = %+v, want zero with an error", v)
				}
				return
			}
			if v.Supervised != (wantSupervisor != 0) || v.SupervisorPID != wantSupervisor {
				t.Errorf("Supervised=%v SupervisorPID=%d, want %v %d", v.Supervised, v.SupervisorPID, wantSupervisor != 0, wantSupervisor)
			}
			if v.HasStatus != tc.wantHasStatus {
				t.Fatalf("HasStatus = %v, want %v", v.HasStatus, tc.wantHasStatus)
			}
			if !tc.wantHasStatus {
				if v.Status != (s6.Status{}) {
					t.Errorf("Status = %+v, want zero", v.Status)
				}
				return
			}
			if len(raw) != 35 && len(raw) != 43 {
				t.Fatalf("fixture %s has %d bytes", tc.fixture, len(raw))
			}
			want, err := s6.ParseStatus(raw)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != want {
				t.Errorf("Status = %+v, want %+v", v.Status, want)
			}
			gotFlags := [4]bool{v.Status.Paused, v.Status.Finishing, v.Status.WantUp, v.Status.Ready}
			if v.Status.PID != tc.wantPID || v.Status.PGID != tc.wantPGID || gotFlags != tc.wantFlags {
				t.Errorf("pid %d pgid %d flags %v, want %d %d %v", v.Status.PID, v.Status.PGID, gotFlags, tc.wantPID, tc.wantPGID, tc.wantFlags)
			}
		})
	}
}

func TestFileIDsCoverManagedFiles(t *testing.T) {
	if n := len(FileIDs{}); n != len(ManagedFiles) {
		t.Fatalf("FileIDs holds %d files, ManagedFiles lists %d", n, len(ManagedFiles))
	}
}
