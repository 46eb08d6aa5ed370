package s6_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hermes/profile-controller/internal/hostile"
	"github.com/hermes/profile-controller/pkg/s6"
)

// Plain tests (no s6-svscan needed); helpers carry a "sec" prefix.

var secFiles = []s6.File{
	{Name: "type", Data: []byte("longrun\n"), Mode: 0o644},
	{Name: "run", Data: []byte("#!/bin/sh\nexec sleep 1000\n"), Mode: 0o755},
	{Name: "finish", Data: []byte("#!/bin/sh\nexit 0\n"), Mode: 0o755},
	{Name: "log/run", Data: []byte("#!/bin/sh\nexec cat >/dev/null\n"), Mode: 0o755},
}

// secOutside is a directory outside the scandir with files an attacker would like overwritten.
func secOutside(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	for _, f := range []string{"run", "type", "finish", "down", "log/run", "supervise/control"} {
		hostile.WriteFile(t, filepath.Join(out, f), "outside "+f+"\n", 0o600)
	}
	return out
}

// secCheckSlot asserts a published slot holds exactly the controller's files as regular files.
func secCheckSlot(t *testing.T, dir string, files []s6.File) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("%s: %v, %v; want a regular file", p, fi, err)
		}
		if b, _ := os.ReadFile(p); string(b) != string(f.Data) {
			t.Fatalf("%s holds %q, want %q", p, b, f.Data)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, "log")} {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v, %v; want a real directory", d, fi, err)
		}
	}
}

// TestCreateSlotSecurityPlantedStaging: a leftover .gateway-x.tmp planted by someone else, as a
// symlink to a directory outside the scandir or as a directory whose entries are symlinks to
// outside files and directories, never redirects a write: it is removed without following
// anything in it and the slot is built afresh.
func TestCreateSlotSecurityPlantedStaging(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, staging, outside string)
	}{
		{"symlink to an outside dir", func(t *testing.T, staging, outside string) {
			if err := os.Symlink(outside, staging); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", func(t *testing.T, staging, outside string) {
			if err := os.Symlink(filepath.Join(outside, "nothing"), staging); err != nil {
				t.Fatal(err)
			}
		}},
		{"dir with symlinked run, log/, supervise/ and down", func(t *testing.T, staging, outside string) {
			if err := os.Mkdir(staging, 0o777); err != nil {
				t.Fatal(err)
			}
			for name, target := range map[string]string{
				"run": "run", "type": "type", "finish": "finish", "down": "down", "log": "log", "supervise": "supervise",
				"event": ".",
			} {
				if err := os.Symlink(filepath.Join(outside, target), filepath.Join(staging, name)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"dir with a hard link and a deep tree", func(t *testing.T, staging, outside string) {
			if err := os.MkdirAll(filepath.Join(staging, "x", "y", "z"), 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(outside, "run"), filepath.Join(staging, "run")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(staging, "x", "y", "z", "out")); err != nil {
				t.Fatal(err)
			}
		}},
		{"a FIFO", func(t *testing.T, staging, outside string) {
			if err := syscall.Mkfifo(staging, 0o666); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, owner := range []*s6.Owner{nil, {UID: 10077, GID: 10077}} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s, skeleton %v", tt.name, owner != nil), func(t *testing.T) {
				if owner != nil && os.Geteuid() != 0 {
					t.Skip("chgrp to another group needs root")
				}
				sd, outside := t.TempDir(), secOutside(t)
				// Before the plant: a planted hard link adds a link to an outside file, and the
				// removal of the staging dir must take exactly that link away again.
				before := hostile.Tree(t, outside)
				tt.plant(t, filepath.Join(sd, s6.StagingName("gateway-x")), outside)
				if err := s6.CreateSlot(sd, "gateway-x", secFiles, true, owner); err != nil {
					t.Fatalf("CreateSlot: %v", err)
				}
				hostile.SameTree(t, "outside", before, hostile.Tree(t, outside))
				secCheckSlot(t, filepath.Join(sd, "gateway-x"), secFiles)
				if ents, _ := os.ReadDir(sd); len(ents) != 1 {
					t.Errorf("scandir holds %v, want only gateway-x", ents)
				}
			})
		}
	}
}

// TestCreateSlotSecurityModes: a new slot is the controller's (uid and gid), directories and
// scripts 0755, type and down 0644, nothing group- or world-writable and no setuid bit, whatever
// the umask; the skeleton is the only thing that grants the gateway group anything.
func TestCreateSlotSecurityModes(t *testing.T) {
	for _, umask := range []int{0, 0o022, 0o077} {
		for _, owner := range []*s6.Owner{nil, {UID: 10077, GID: 10077}} {
			t.Run(fmt.Sprintf("umask %04o, skeleton %v", umask, owner != nil), func(t *testing.T) {
				if owner != nil && os.Geteuid() != 0 {
					t.Skip("chgrp to another group needs root")
				}
				sd := t.TempDir()
				old := syscall.Umask(umask)
				err := s6.CreateSlot(sd, "gateway-x", secFiles, true, owner)
				syscall.Umask(old)
				if err != nil {
					t.Fatal(err)
				}
				dir := filepath.Join(sd, "gateway-x")
				want := map[string]fs.FileMode{
					".": fs.ModeDir | 0o755, "log": fs.ModeDir | 0o755,
					"type": 0o644, "down": 0o644, "run": 0o755, "finish": 0o755, "log/run": 0o755,
				}
				if owner != nil {
					for _, d := range []string{"", "log/"} {
						want[d+"event"] = fs.ModeDir | fs.ModeSetgid | fs.ModeSticky | 0o730
						want[d+"supervise"] = fs.ModeDir | 0o710
						want[d+"supervise/control"] = fs.ModeNamedPipe | 0o620
					}
				}
				got := map[string]fs.FileMode{}
				err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return err
					}
					rel, _ := filepath.Rel(dir, p)
					fi, err := os.Lstat(p)
					if err != nil {
						return err
					}
					got[rel] = fi.Mode()
					st := fi.Sys().(*syscall.Stat_t)
					wantGID := os.Getegid()
					if owner != nil && (filepath.Base(rel) == "event" || filepath.Base(rel) == "supervise" || filepath.Base(rel) == "control") {
						wantGID = owner.GID
					}
					if int(st.Uid) != os.Geteuid() || int(st.Gid) != wantGID {
						t.Errorf("%s: owner %d:%d, want %d:%d", rel, st.Uid, st.Gid, os.Geteuid(), wantGID)
					}
					if fi.Mode()&fs.ModeSetuid != 0 || (fi.Mode().Perm()&0o002) != 0 {
						t.Errorf("%s: mode %v is setuid or world-writable", rel, fi.Mode())
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("modes:\n got %v\nwant %v", got, want)
				}
			})
		}
	}
}

// TestCreateSlotSecurityNames: slot names that could leave the scandir or hit a non-gateway
// entry are refused before anything is created.
func TestCreateSlotSecurityNames(t *testing.T) {
	parent := t.TempDir()
	sd := filepath.Join(parent, "scandir")
	if err := os.Mkdir(sd, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "gateway-", "gateway-a/b", "../gateway-x", "gateway-x/../../y", "gateway-\x00", "s6rc-oneshot-runner", ".gateway-x.tmp", "/etc/gateway-x"} {
		if err := s6.CreateSlot(sd, bad, secFiles, true, nil); err == nil {
			t.Errorf("CreateSlot(%q) succeeded", bad)
		}
	}
	for _, d := range []string{sd, parent} {
		ents, _ := os.ReadDir(d)
		if d == parent && len(ents) != 1 || d == sd && len(ents) != 0 {
			t.Errorf("%s holds %v after refused creates", d, ents)
		}
	}
}
