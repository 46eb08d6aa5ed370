package main

import (
	"io/fs"
	"path/filepath"
	"sort"
	"syscall"
)

// node is what a write changes in a tree entry: its inode (a rename into place), mode, size,
// mtime and ctime (a write, chmod, chown or link-count change). Access times are left out.
type node struct {
	ino          uint64
	mode         uint32
	size         int64
	mtime, ctime syscall.Timespec
}

// tree is a snapshot of every entry under a root, by relative path.
type tree map[string]node

// snapshot lstats every entry under root (root included) without following symlinks.
func snapshot(root string) (tree, error) {
	t := tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		t[rel] = node{ino: st.Ino, mode: st.Mode, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
		return nil
	})
	return t, err
}

// diff lists the entries added, removed or changed from a to b, sorted.
func diff(a, b tree) []string {
	var out []string
	for p, na := range a {
		nb, ok := b[p]
		switch {
		case !ok:
			out = append(out, "removed "+p)
		case na != nb:
			out = append(out, "changed "+p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "added "+p)
		}
	}
	sort.Strings(out)
	return out
}

// snapshots snapshots several roots at once.
func snapshots(roots ...string) ([]tree, error) {
	out := make([]tree, len(roots))
	for i, r := range roots {
		t, err := snapshot(r)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// diffs compares two snapshots taken by snapshots, prefixing each change with its root.
func diffs(roots []string, a, b []tree) []string {
	var out []string
	for i := range roots {
		for _, d := range diff(a[i], b[i]) {
			out = append(out, filepath.Base(roots[i])+": "+d)
		}
	}
	return out
}
