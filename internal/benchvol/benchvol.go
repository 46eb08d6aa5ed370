package benchvol

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hermes/profile-controller/pkg/s6"
)

// DefaultProfile is the name MakeHome returns first: the root profile, HERMES_HOME itself.
const DefaultProfile = "default"

// RunningState is the gateway_state.json MakeHome writes for every profile.
const RunningState = `{"gateway_state":"running"}`

// ProfileName returns the name of the i-th named profile MakeHome writes: "p00000", "p00001", …
func ProfileName(i int) string { return fmt.Sprintf("p%05d", i) }

// JunkName returns the name of the i-th junk directory MakeHome writes: "junk00000", …
func JunkName(i int) string { return fmt.Sprintf("junk%05d", i) }

// MakeHome writes HERMES_HOME: the root's gateway_state.json and SOUL.md, `profiles` named profiles
// "p00000", "p00001", … each with SOUL.md and gateway_state.json {"gateway_state":"running"}, and
// `junk` directories "junk00000", … without SOUL.md. It returns the profile names, "default" first.
//
// home and home/profiles are created when missing; an existing profile or junk directory is an
// error (MakeHome never rewrites a volume it did not start). Files are 0644, directories 0755.
func MakeHome(home string, profiles, junk int) ([]string, error) {
	if profiles < 0 || junk < 0 {
		return nil, fmt.Errorf("make home %s: negative count (profiles %d, junk %d)", home, profiles, junk)
	}
	pdir := filepath.Join(home, "profiles")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return nil, fmt.Errorf("make home: %w", err)
	}
	if err := writeProfile(home, DefaultProfile); err != nil {
		return nil, err
	}
	names := make([]string, 0, profiles+1)
	names = append(names, DefaultProfile)
	for i := range profiles {
		name := ProfileName(i)
		dir := filepath.Join(pdir, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("make home: %w", err)
		}
		if err := writeProfile(dir, name); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	for i := range junk {
		if err := os.Mkdir(filepath.Join(pdir, JunkName(i)), 0o755); err != nil {
			return nil, fmt.Errorf("make home: %w", err)
		}
	}
	return names, nil
}

func writeProfile(dir, name string) error {
	if err := os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("# "+name+"\n"), 0o644); err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(RunningState), 0o644); err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	return nil
}

// SlotName is the scandir entry of a profile: "gateway-<name>".
func SlotName(name string) string { return s6.SlotPrefix + name }

// StatusAge is how long ago the supervise/status files Converge writes say the services went up.
const StatusAge = time.Hour

// Converge publishes one slot per name in scandir as the controller would leave it converged and up:
// the files render(name) returns (s6.File{Name, Data, Mode}; names like "run", "log/run"), no down
// marker, and supervise/ with a 35-byte status file in s6's real layout (wantup, up, a pid, stamps an
// hour ago; same for log/supervise) and an empty supervise/lock file.
//
// The status files' mtime is their stamp too, as s6-supervise leaves it. The pid in them is the
// caller's own (a live process). log/supervise is written only
// for slots that render a file under log/. A file's zero Mode means 0644; directories are 0755,
// supervise/ 0700, status and lock 0644, as s6-supervise makes them. Each slot is built under a
// dot-name (which s6-svscan and the controller's slot reader ignore) and renamed into place, so it
// appears whole. render is called once per name, from the calling goroutine, before anything is
// written; the writes then run in parallel. A name whose slot already exists is an error, and so
// is a file name that is absolute or climbs out of the slot. Converge takes no locks: see
// HoldLocks.
func Converge(scandir string, names []string, render func(name string) ([]s6.File, error)) error {
	rendered := make([][]s6.File, len(names))
	for i, name := range names {
		files, err := render(name)
		if err != nil {
			return fmt.Errorf("converge %s: render: %w", name, err)
		}
		for _, f := range files {
			if !filepath.IsLocal(f.Name) || f.Name != filepath.Clean(f.Name) {
				return fmt.Errorf("converge %s: file name %q is not a clean relative path", name, f.Name)
			}
		}
		rendered[i] = files
	}
	stamp := time.Now().Add(-StatusAge)
	status := upStatus(stamp, os.Getpid())
	workers := min(runtime.GOMAXPROCS(0), max(1, len(names)))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(names); i += workers {
				if err := publishSlot(scandir, names[i], rendered[i], status, stamp); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// publishSlot builds one converged slot under a dot-name and renames it into place.
func publishSlot(scandir, name string, files []s6.File, status []byte, stamp time.Time) error {
	slot := SlotName(name)
	target := filepath.Join(scandir, slot)
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("converge %s: %s already exists", name, target)
	}
	tmp := filepath.Join(scandir, "."+slot+".benchvol")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("converge %s: %w", name, err)
	}
	if err := fillSlot(tmp, files, status, stamp); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("converge %s: %w", name, err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, target, unix.RENAME_NOREPLACE); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("converge %s: publish %s: %w", name, target, err)
	}
	return nil
}

func fillSlot(dir string, files []s6.File, status []byte, stamp time.Time) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	hasLog := false
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := f.Mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		if mode == 0 {
			mode = 0o644
		}
		if err := os.WriteFile(p, f.Data, mode.Perm()); err != nil {
			return err
		}
		// WriteFile's mode goes through the umask; the explicit chmod does not.
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		if strings.HasPrefix(f.Name, "log/") {
			hasLog = true
		}
	}
	sups := []string{filepath.Join(dir, "supervise")}
	if hasLog {
		sups = append(sups, filepath.Join(dir, "log", "supervise"))
	}
	for _, sup := range sups {
		if err := os.Mkdir(sup, 0o700); err != nil {
			return err
		}
		st := filepath.Join(sup, "status")
		if err := os.WriteFile(st, status, 0o644); err != nil {
			return err
		}
		// s6-supervise writes the file at the transition it records: its mtime says when the
		// supervisor last changed, and readers date it that way.
		if err := os.Chtimes(st, stamp, stamp); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(sup, "lock"), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// taiOffset turns Unix seconds into a TAI64 label, as skalibs does without a TAI clock.
const taiOffset = uint64(1)<<62 + 37

// StatusSize is the size of the status files Converge writes: s6 2.2–2.12 and 2.14+.
const StatusSize = 35

// upStatus encodes a 35-byte supervise/status: stamp and readystamp at t, pid, wstat 0, and the
// flags byte with only wantup set (up without readiness notification, as s6 2.11 writes it).
func upStatus(t time.Time, pid int) []byte {
	b := make([]byte, StatusSize)
	for _, off := range []int{0, 12} {
		binary.BigEndian.PutUint64(b[off:], uint64(t.Unix())+taiOffset)
		binary.BigEndian.PutUint32(b[off+8:], uint32(t.Nanosecond()))
	}
	binary.BigEndian.PutUint64(b[24:], uint64(pid))
	// b[32:34] is wstat, 0; b[34] the flags: bit 2 is wantup.
	b[34] = 1 << 2
	return b
}

// HoldLocks takes an OFD write lock (F_OFD_SETLK) on every <slot>/supervise/lock and
// <slot>/log/supervise/lock under scandir, so that fcntl F_GETLK from any process, this one included,
// sees a live supervisor. release closes them all.
//
// Every scandir entry that does not start with '.' counts as a slot; a missing lock file is
// skipped. OFD locks belong to the open file description, so they conflict with the classic
// fcntl locks that readers probe with, even in this process; F_GETLK then reports pid -1.
//
// One descriptor is held per lock. RLIMIT_NOFILE's soft limit is raised towards what that needs
// (and the hard limit too, where the process may). When the limit still leaves too little room
// in this process (10,000 slots with loggers need 20,000 descriptors, and containers often cap
// the hard limit at about that), the locks are held instead by helper processes, each holding
// up to a limit's worth: this executable run again with BENCHVOL_LOCK_HOLDER=1, which this
// package's init turns into a lock holder before any other code of the program runs. A helper
// exits when its stdin ends: when release closes it, or when this process dies.
//
// A lock that is already held (a real s6-supervise) is an error, and then nothing stays locked.
// release is idempotent and safe to call from any goroutine; when it returns, every lock is gone.
func HoldLocks(scandir string) (release func(), err error) {
	entries, err := os.ReadDir(scandir)
	if err != nil {
		return nil, fmt.Errorf("hold locks: %w", err)
	}
	var paths []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		for _, p := range []string{
			filepath.Join(scandir, e.Name(), "supervise", "lock"),
			filepath.Join(scandir, e.Name(), "log", "supervise", "lock"),
		} {
			if _, err := os.Lstat(p); err == nil {
				paths = append(paths, p)
			}
		}
	}
	soft, hard := raiseNoFile(uint64(len(paths)) + fdReserve)
	if room := int(soft) - openFDs() - fdReserve; len(paths) <= room {
		fds, err := lockAll(paths)
		if err != nil {
			return nil, err
		}
		var once sync.Once
		return func() { once.Do(func() { closeAll(fds) }) }, nil
	}
	per := int(hard) - fdReserve
	if per <= 0 {
		return nil, fmt.Errorf("hold locks on %d files: RLIMIT_NOFILE is %d", len(paths), hard)
	}
	var helpers []*lockHelper
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, h := range helpers {
				h.stop()
			}
		})
	}
	for start := 0; start < len(paths); start += per {
		h, err := startLockHelper(paths[start:min(start+per, len(paths))])
		if err != nil {
			release()
			return nil, fmt.Errorf("hold locks on %d files (RLIMIT_NOFILE %d): %w", len(paths), hard, err)
		}
		helpers = append(helpers, h)
	}
	return release, nil
}

// fdReserve is the room left in each process's descriptor table for everything else.
const fdReserve = 64

// lockAll opens and write-locks every path (OFD locks), closing everything on an error.
func lockAll(paths []string) ([]int, error) {
	fds := make([]int, 0, len(paths))
	for _, p := range paths {
		fd, err := unix.Open(p, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("hold locks: open %s: %w", p, err)
		}
		fds = append(fds, fd)
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("hold locks: lock %s: %w", p, err)
		}
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// openFDs counts this process's open descriptors.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fdReserve
	}
	return len(ents)
}

// raiseNoFile raises RLIMIT_NOFILE's soft limit to need (the hard limit too, when allowed; else
// up to the hard limit) and returns the soft and hard limits in force.
func raiseNoFile(need uint64) (soft, hard uint64) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 1024, 1024
	}
	if lim.Cur >= need {
		return lim.Cur, lim.Max
	}
	want := unix.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &want) == nil {
		return want.Cur, want.Max
	}
	want = unix.Rlimit{Cur: lim.Max, Max: lim.Max}
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &want) == nil {
		return lim.Max, lim.Max
	}
	return lim.Cur, lim.Max
}

// lockHolderEnv makes a run of a program that imports this package a lock helper.
const lockHolderEnv = "BENCHVOL_LOCK_HOLDER"

func init() {
	if os.Getenv(lockHolderEnv) == "1" {
		os.Exit(lockHelperMain(os.Stdin, os.Stdout))
	}
}

// lockHelperMain is a helper process: it reads NUL-terminated paths from in up to an empty one,
// locks them all, answers "ok\n" (or the error) on out, then holds the locks until in ends.
func lockHelperMain(in io.Reader, out io.Writer) int {
	r := bufio.NewReader(in)
	var paths []string
	for {
		p, err := r.ReadString(0)
		if err != nil {
			fmt.Fprintf(out, "error: reading paths: %v\n", err)
			return 1
		}
		if p = strings.TrimSuffix(p, "\x00"); p == "" {
			break
		}
		paths = append(paths, p)
	}
	raiseNoFile(uint64(len(paths)) + fdReserve)
	if _, err := lockAll(paths); err != nil {
		fmt.Fprintf(out, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	fmt.Fprintln(out, "ok")
	_, _ = io.Copy(io.Discard, r) // until release closes the pipe, or this process's parent dies
	return 0
}

// lockHelper is a running helper process.
type lockHelper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startLockHelper runs this executable as a helper holding the locks on paths.
func startLockHelper(paths []string) (*lockHelper, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), lockHolderEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lock helper %s: %w", exe, err)
	}
	h := &lockHelper{cmd: cmd, stdin: stdin}
	go func() {
		w := bufio.NewWriter(stdin)
		for _, p := range paths {
			_, _ = w.WriteString(p)
			_ = w.WriteByte(0)
		}
		_ = w.WriteByte(0)
		_ = w.Flush()
	}()
	answer, err := bufio.NewReader(stdout).ReadString('\n')
	if answer != "ok\n" {
		h.stop()
		if err == nil {
			err = errors.New(strings.TrimSpace(strings.TrimPrefix(answer, "error: ")))
		}
		return nil, fmt.Errorf("lock helper: %w", err)
	}
	return h, nil
}

// stop ends the helper and waits for it: its locks are gone when stop returns.
func (h *lockHelper) stop() {
	_ = h.stdin.Close()
	_ = h.cmd.Wait()
}
