package observed

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/internal/hostile"
)

// lockHelperEnv makes the test binary act as a stand-in supervisor: it takes an fcntl write
// lock on the file named by the variable, prints "locked" and holds it until stdin closes.
const lockHelperEnv = "OBSERVED_TEST_LOCK_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockHelperEnv); path != "" {
		os.Exit(holdLock(path))
	}
	os.Exit(m.Run())
}

func holdLock(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// holdSupervisorLock starts a child process that holds an fcntl write lock on path, as a live
// s6-supervise does on supervise/lock, and returns its pid. The child exits when the test ends.
func holdSupervisorLock(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// atexit_sleep_ms: a -race child otherwise lingers 1 s at exit.
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path, "GORACE=atexit_sleep_ms=0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock helper: got %q, %v", line, err)
	}
	return cmd.Process.Pid
}

// tree builds test fixtures under a root directory; every helper fails the test on error.
type tree struct {
	t    testing.TB
	root string
}

func newTree(t testing.TB) tree { return tree{t: t, root: t.TempDir()} }

func (tr tree) path(rel string) string { return filepath.Join(tr.root, rel) }

func (tr tree) dir(rel string) {
	tr.t.Helper()
	if err := os.MkdirAll(tr.path(rel), 0o755); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr tree) file(rel, data string, mode os.FileMode) {
	tr.t.Helper()
	tr.dir(filepath.Dir(rel))
	p := tr.path(rel)
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode goes through the umask
		tr.t.Fatal(err)
	}
}

func (tr tree) symlink(target, rel string) {
	tr.t.Helper()
	tr.dir(filepath.Dir(rel))
	if err := os.Symlink(target, tr.path(rel)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr tree) fifo(rel string) {
	tr.t.Helper()
	tr.dir(filepath.Dir(rel))
	if err := unix.Mkfifo(tr.path(rel), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

// socket leaves a bound unix socket file at rel (a socket cannot be opened, only connected).
func (tr tree) socket(rel string) {
	tr.t.Helper()
	tr.dir(filepath.Dir(rel))
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: tr.path(rel)}); err != nil {
		tr.t.Fatal(err)
	}
}

// fixture copies testdata/<name> to rel.
func (tr tree) fixture(name, rel string) []byte {
	tr.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.file(rel, string(b), 0o644)
	return b
}

// slot writes a complete, well-formed slot gateway-<profile>.
func (tr tree) slot(profile string) {
	tr.t.Helper()
	s := "gateway-" + profile + "/"
	tr.file(s+"type", "longrun\n", 0o644)
	tr.file(s+"run", "#!/bin/sh\nexec gateway "+profile+"\n", 0o755)
	tr.file(s+"finish", "#!/bin/sh\nexit 0\n", 0o755)
	tr.file(s+"log/run", "#!/bin/sh\nexec logutil-service /var/log/"+profile+"\n", 0o755)
}

// buildScandir builds a new tree with build and returns its root, or with sub set the path sub
// below it (a scandir that may not exist).
func buildScandir(t *testing.T, build func(tree), sub string) string {
	t.Helper()
	tr := newTree(t)
	build(tr)
	if sub != "" {
		return tr.path(sub)
	}
	return tr.root
}

// readWithin runs Read and fails the test if it does not return within a generous deadline,
// which is how a read that blocks (on a FIFO) shows up.
func readWithin(t *testing.T, scandir string) (State, error) {
	t.Helper()
	type result struct {
		st  State
		err error
	}
	r := hostile.WithinValue(t, 10*time.Second, func() result {
		st, err := Read(scandir)
		return result{st, err}
	})
	return r.st, r.err
}

// mustRead is readWithin that fails the test when Read fails.
func mustRead(t *testing.T, scandir string) State {
	t.Helper()
	st, err := readWithin(t, scandir)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return st
}

// mustReadSlot is the slot of profile that mustRead finds, failing the test when there is none.
func mustReadSlot(t *testing.T, scandir, profile string) *Slot {
	t.Helper()
	st := mustRead(t, scandir)
	slot := st.Slots[profile]
	if slot == nil {
		t.Fatalf("no slot %s in %+v", profile, st)
	}
	return slot
}

// snapshot describes every entry under root without following symlinks: type, permissions,
// size, mtime, ctime, inode and content hash (regular files) or target (symlinks). Access
// times are left out: reading may update them.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v size=%d mtime=%v ctime=%d.%d ino=%d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano(),
			st.Ctim.Sec, st.Ctim.Nsec, st.Ino)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnapshots(before, after map[string]string) string {
	var lines []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			lines = append(lines, "- "+p+": "+b)
		} else if a != b {
			lines = append(lines, "~ "+p+": "+b+" => "+a)
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			lines = append(lines, "+ "+p+": "+a)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func profiles(st State) []string {
	out := make([]string, 0, len(st.Slots))
	for p := range st.Slots {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func within(t *testing.T, fn func()) {
	t.Helper()
	hostile.Within(t, 10*time.Second, fn)
}

func mustRemove(tr tree, rel string) {
	tr.t.Helper()
	if err := os.Remove(tr.path(rel)); err != nil {
		tr.t.Fatal(err)
	}
}

// mustChmod sets raw mode bits (os.Chmod would drop 04000-style bits outside os.FileMode).
func mustChmod(tr tree, rel string, mode uint32) {
	tr.t.Helper()
	if err := unix.Chmod(tr.path(rel), mode); err != nil {
		tr.t.Fatal(err)
	}
}

func quoteMap(m map[string]string) string {
	var b strings.Builder
	b.WriteString("{")
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		v := m[k]
		if len(v) > 40 {
			fmt.Fprintf(&b, " %s:%.20q…(%d bytes)", k, v, len(v))
		} else {
			fmt.Fprintf(&b, " %s:%q", k, v)
		}
	}
	b.WriteString(" }")
	return b.String()
}

func modesString(m map[string]uint32) string {
	var b strings.Builder
	b.WriteString("{")
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, " %s:%#o", k, m[k])
	}
	b.WriteString(" }")
	return b.String()
}

// filesOf is what a slot read found of the managed files: the bytes of each file read, and
// the mode of each file present.
func filesOf(slot *Slot) (files map[string][]byte, modes map[string]uint32) {
	files, modes = map[string][]byte{}, map[string]uint32{}
	for _, name := range ManagedFiles {
		if f := slot.File(name); f != nil && f.Present() {
			modes[name] = f.Perm()
			if !f.Same {
				files[name] = f.Data
			}
		}
	}
	return files, modes
}
