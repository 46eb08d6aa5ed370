package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A subdirectory's path is built from its parents only when asked for, and error messages
// still name the whole path.
func TestSubdirectoryPaths(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := openTestDir(t, root)
	a, err := d.OpenDir("a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := a.OpenDir("b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, want := b.Path(), root+"/a/b"; got != want {
		t.Errorf("Path() = %q, want %q", got, want)
	}
	_, _, err = b.ReadFile("missing", 16)
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != root+"/a/b/missing" {
		t.Errorf("ReadFile of a missing file: %v, want a PathError naming %s/a/b/missing", err, root)
	}
	if _, err := b.OpenDir("nope"); !errors.As(err, &pe) || pe.Path != root+"/a/b/nope" {
		t.Errorf("OpenDir of a missing dir: %v, want a PathError naming %s/a/b/nope", err, root)
	}
}

// LstatIfExists tells a missing name (no error) from an entry of any kind, which it never
// follows, and from a name it cannot stat (an error naming the path).
func TestLstatIfExists(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	d := openTestDir(t, root)
	for _, tc := range []struct {
		name   string
		ok     bool
		mode   uint32
		errSub string
	}{
		{name: "missing"},
		{name: "file", ok: true, mode: unix.S_IFREG},
		{name: "dangling", ok: true, mode: unix.S_IFLNK},
		{name: "file/below", errSub: root + "/file/below"},
	} {
		st, ok, err := d.LstatIfExists(tc.name)
		switch {
		case tc.errSub != "":
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Path != tc.errSub || ok {
				t.Errorf("%s: ok %t, err %v; want a PathError naming %s", tc.name, ok, err, tc.errSub)
			}
		case err != nil || ok != tc.ok || (ok && st.Mode&unix.S_IFMT != tc.mode):
			t.Errorf("%s: ok %t, mode %o, err %v; want ok %t, mode %o", tc.name, ok, st.Mode&unix.S_IFMT, err, tc.ok, tc.mode)
		}
	}
}
