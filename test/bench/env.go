package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// env is everything the rows share: the work dir (on tmpfs), the controller binary, the stub
// and real s6 binaries, the Python interpreter.
type env struct {
	root      string // repository root
	work      string // scratch dir, on tmpfs when possible
	workFS    string // how work was obtained, for the report
	mounted   bool   // work is a tmpfs this process mounted
	bin       string // profile-controller
	s6Bin     string // dir of the real s6 binaries
	svscanOpt string // s6-svscan's service limit flag: -c (2.11) or -C (2.12+)
	stubOK    string // dir of stub s6 binaries that exit 0
	stubFail  string // dir of stub s6 binaries that fail at once
	stubLog   string // one line per stub invocation
	python    string
	seq       int
	mu        sync.Mutex
}

// tmpfsMagic is statfs's f_type for tmpfs.
const tmpfsMagic = 0x01021994

func isTmpfs(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == tmpfsMagic
}

// setupWork makes the scratch dir: under -work when given; else under /tmp when it is a tmpfs;
// else a tmpfs mounted on a fresh dir under /tmp when root may mount; else under /dev/shm; else
// /tmp as it is (the report says which).
func (e *env) setupWork(dir string) error {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		d, err := os.MkdirTemp(dir, "pc-bench-")
		if err != nil {
			return err
		}
		e.work, e.workFS = d, fsName(d)
		return nil
	}
	tmp := os.TempDir()
	if isTmpfs(tmp) {
		d, err := os.MkdirTemp(tmp, "pc-bench-")
		e.work, e.workFS = d, "tmpfs ("+tmp+")"
		return err
	}
	d, err := os.MkdirTemp(tmp, "pc-bench-")
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=8g,mode=0755"); err == nil {
			e.work, e.workFS, e.mounted = d, "tmpfs mounted on "+d, true
			return nil
		}
	}
	_ = os.Remove(d)
	if isTmpfs("/dev/shm") {
		d, err := os.MkdirTemp("/dev/shm", "pc-bench-")
		e.work, e.workFS = d, "tmpfs (/dev/shm)"
		return err
	}
	d, err = os.MkdirTemp(tmp, "pc-bench-")
	e.work, e.workFS = d, "NOT tmpfs ("+tmp+"): figures are pessimistic"
	return err
}

func fsName(path string) string {
	if isTmpfs(path) {
		return "tmpfs (" + path + ")"
	}
	return "not tmpfs (" + path + ")"
}

// cleanupWork removes the scratch dir (and unmounts it when it was mounted here).
func (e *env) cleanupWork(keep bool) {
	if e.work == "" {
		return
	}
	if keep {
		if e.mounted {
			logf("kept the work dir %s, a tmpfs: umount it when done", e.work)
		} else {
			logf("kept the work dir %s", e.work)
		}
		return
	}
	if e.mounted {
		if err := unix.Unmount(e.work, unix.MNT_DETACH); err != nil {
			logf("unmount %s: %v", e.work, err)
		}
		_ = os.Remove(e.work)
		return
	}
	if err := os.RemoveAll(e.work); err != nil {
		logf("remove %s: %v", e.work, err)
	}
}

// dir returns a fresh directory under the work dir, named after what it is for.
func (e *env) dir(what string) (string, error) {
	e.mu.Lock()
	e.seq++
	n := e.seq
	e.mu.Unlock()
	d := filepath.Join(e.work, fmt.Sprintf("%03d-%s", n, what))
	return d, os.MkdirAll(d, 0o755)
}

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above the working directory: run from the repository")
		}
		d = parent
	}
}

// build compiles the controller into e.bin.
func (e *env) build() error {
	cmd := exec.Command("go", "build", "-o", e.bin, "./cmd/profile-controller")
	cmd.Dir = e.root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/profile-controller: %w\n%s", err, out)
	}
	return nil
}

// findS6 locates the real s6 binaries and s6-svscan's service-limit flag.
func (e *env) findS6(dir string) error {
	if dir == "" {
		for _, d := range []string{"/command", "/usr/bin"} {
			if _, err := os.Stat(filepath.Join(d, "s6-svscan")); err == nil {
				dir = d
				break
			}
		}
	}
	if dir == "" {
		return errors.New("s6 is not installed (no s6-svscan in /command or /usr/bin): apt-get install s6")
	}
	e.s6Bin = dir
	// 2.11 only knows -c (default 500); 2.12+ has -C (default 1000) and reads -c as usage.
	// A usage error is exit 100; a good option gets as far as chdir and fails with 111.
	err := exec.Command(filepath.Join(dir, "s6-svscan"), "-C", "2", "/nonexistent/pc-bench").Run()
	var ee *exec.ExitError
	e.svscanOpt = "-c"
	if errors.As(err, &ee) && ee.ExitCode() == 111 {
		e.svscanOpt = "-C"
	}
	return nil
}

// s6Version reports the installed s6 package version, when dpkg knows it.
func (e *env) s6Version() string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "s6").Output()
	if err != nil || len(out) == 0 {
		return "unknown (" + e.s6Bin + ")"
	}
	return string(out) + " (" + e.s6Bin + ")"
}

// stubNames are the s6 binaries stubbed even when the real ones cannot be listed.
var stubNames = []string{"s6-svc", "s6-svscanctl", "s6-svstat", "s6-svwait", "s6-svok", "s6-svlisten1",
	"s6-svlisten", "s6-svperms", "s6-svdt", "s6-svlink", "s6-svunlink", "s6-supervise", "s6-svscan"}

// makeStubs writes two dirs of stub s6 binaries: every s6-* of the real dir, as a shell script
// that appends its name and arguments to e.stubLog, then exits 0 (stubOK) or 111 (stubFail).
func (e *env) makeStubs() error {
	names := map[string]bool{}
	for _, n := range stubNames {
		names[n] = true
	}
	if m, err := filepath.Glob(filepath.Join(e.s6Bin, "s6-*")); err == nil {
		for _, p := range m {
			names[filepath.Base(p)] = true
		}
	}
	e.stubLog = filepath.Join(e.work, "stub-calls.log")
	if err := os.WriteFile(e.stubLog, nil, 0o644); err != nil {
		return err
	}
	var err error
	if e.stubOK, err = e.dir("stubs-ok"); err != nil {
		return err
	}
	if e.stubFail, err = e.dir("stubs-fail"); err != nil {
		return err
	}
	for n := range names {
		for _, s := range []struct{ dir, tail string }{
			{e.stubOK, "exit 0\n"},
			{e.stubFail, "echo \"stub " + n + ": failing on purpose\" >&2\nexit 111\n"},
		} {
			script := "#!/bin/sh\necho \"" + n + " $*\" >>" + shQuote(e.stubLog) + "\n" + s.tail
			if err := os.WriteFile(filepath.Join(s.dir, n), []byte(script), 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// stubCalls returns the stub invocations logged so far, one per line.
func (e *env) stubCalls() ([]string, error) {
	f, err := os.Open(e.stubLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// forksSince counts stub invocations after the first n, with a few examples.
func (e *env) forksSince(n int) (int, []string) {
	lines, err := e.stubCalls()
	if err != nil {
		return -1, []string{err.Error()}
	}
	if n > len(lines) {
		n = len(lines)
	}
	got := lines[n:]
	return len(got), got[:min(3, len(got))]
}

// forkMark is the current number of stub invocations.
func (e *env) forkMark() int {
	lines, _ := e.stubCalls()
	return len(lines)
}

// findPython prefers Debian's interpreter (what the hermes image runs), then the one python3
// resolves to (not a pyenv shim, whose own start-up would flatter the controller).
func findPython(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3", nil
	}
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "", fmt.Errorf("no python3 for the baseline: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func pythonVersion(py string) string {
	out, err := exec.Command(py, "--version").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out)) + " (" + py + ")"
}

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

// controllerConfig is the YAML (written as JSON, which YAML includes) the rows hand the
// controller. Paths go on the command line.
type controllerConfig struct {
	ResyncPeriod      string            `json:"resyncPeriod,omitempty"`
	SettlePeriod      string            `json:"settlePeriod,omitempty"`
	UnregisterTimeout string            `json:"unregisterTimeout,omitempty"`
	ServicesMax       int               `json:"servicesMax,omitempty"`
	LogFormat         string            `json:"logFormat,omitempty"`
	Verbosity         int               `json:"verbosity,omitempty"`
	Templates         map[string]string `json:"templates,omitempty"`
}

// writeConfig writes c as dir/name, mode 0600 (the controller refuses group- or world-writable
// config files).
func writeConfig(dir, name string, c controllerConfig) (string, error) {
	var b bytes.Buffer
	b.WriteString("# written by test/bench\n")
	j, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	b.Write(j)
	b.WriteByte('\n')
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, b.Bytes(), 0o600)
}

// countSlots counts the gateway-* directories in scandir.
func countSlots(scandir string) int {
	ents, err := os.ReadDir(scandir)
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "gateway-") && e.IsDir() {
			n++
		}
	}
	return n
}

// usage is what the controller keeps in its runtime dir: every regular file below it.
type usage struct {
	files   int
	bytes   int64
	largest fileSize // relative path and size
}

// dirUsage sums the regular files below dir (not following symlinks).
func dirUsage(dir string) usage {
	var u usage
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		u.files++
		u.bytes += fi.Size()
		if fi.Size() > u.largest.size {
			rel, _ := filepath.Rel(dir, p)
			u.largest = fileSize{rel, fi.Size()}
		}
		return nil
	})
	return u
}

type fileSize struct {
	name string
	size int64
}
