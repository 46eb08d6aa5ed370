package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
