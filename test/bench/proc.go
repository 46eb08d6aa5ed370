package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's utime and stime: 100 on Linux.
const clockTick = 10 * time.Millisecond

// procStat holds what the rows read from /proc/<pid>/stat.
type procStat struct {
	cpu       time.Duration // utime + stime of the process (its threads; not its children)
	startTime uint64        // in clock ticks since boot, to tell a reused pid apart
	state     byte
}

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, starttime 22.
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	start, _ := strconv.ParseUint(f[19], 10, 64)
	return procStat{cpu: time.Duration(ut+st) * clockTick, startTime: start, state: f[0][0]}, nil
}

// schedRuntime sums the on-CPU time of every thread of pid from /proc/<pid>/task/*/schedstat
// (nanoseconds, unlike the 10 ms ticks of stat). It is used only to tell when the process is
// busy, never for a reported figure.
func schedRuntime(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum, nil
}

// vmHWM reads the peak RSS of pid in KiB from /proc/<pid>/status.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", pid)
}

// alive reports whether pid still runs the process that started at startTime (a zombie counts
// as gone).
func alive(pid int, startTime uint64) bool {
	st, err := readStat(pid)
	return err == nil && st.startTime == startTime && st.state != 'Z' && st.state != 'X'
}

// world is one controller's view: the paths it is given and its config file.
type world struct {
	e                          *env
	dir                        string
	home, scandir, runtime, s6 string
	config                     string
	names                      []string // "default" first
	release                    func()   // benchvol.HoldLocks release, when held
	warmup                     string   // what went wrong in the warm-up pass, for the notes
}

// args are the controller's global flags, then cmd.
func (w *world) args(cmd ...string) []string {
	return append([]string{"--config", w.config, "--hermes-home", w.home, "--scandir", w.scandir,
		"--runtime-dir", w.runtime, "--s6-bin-dir", w.s6}, cmd...)
}

// profileDir is the directory of a profile.
func (w *world) profileDir(name string) string {
	if name == "default" {
		return w.home
	}
	return filepath.Join(w.home, "profiles", name)
}

// once is the outcome of one whole controller process.
type once struct {
	wall   time.Duration
	cpu    time.Duration // user + system, its waited-for children included (wait4)
	maxRSS int64         // KiB, ru_maxrss
	exit   int
	stderr string
}

// runProcess runs argv to completion with stdout discarded and stderr kept (capped), timing it
// from just before the fork to just after the wait. It goes through the driver's own
// -rusage-helper (see rusageHelper), which reports the figures.
func runProcess(argv []string, timeout time.Duration) (once, error) {
	return runProcessEnv(argv, nil, timeout)
}

// runProcessEnv is runProcess with env added to the driver's environment.
func runProcessEnv(argv, env []string, timeout time.Duration) (once, error) {
	self, err := os.Executable()
	if err != nil {
		return once{}, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return once{}, err
	}
	defer pr.Close()
	cmd := exec.Command(self, append([]string{rusageHelperArg}, argv...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr cappedBuffer
	stderr.max = 8 << 10
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return once{}, err
	}
	pw.Close()
	timer := time.AfterFunc(timeout, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	report, _ := io.ReadAll(pr)
	err = cmd.Wait()
	timedOut := !timer.Stop()
	o := once{exit: -1, stderr: stderr.String()}
	var wall, cpu int64
	if _, serr := fmt.Sscan(string(report), &wall, &cpu, &o.maxRSS, &o.exit); serr != nil && !timedOut {
		return o, fmt.Errorf("%s: no report from the rusage helper: %w: %s", filepath.Base(argv[0]), errors.Join(serr, err), firstLine(o.stderr))
	}
	o.wall, o.cpu = time.Duration(wall), time.Duration(cpu)
	if timedOut {
		return o, fmt.Errorf("%s timed out after %s", filepath.Base(argv[0]), timeout)
	}
	return o, nil
}

// rusageHelperArg, as the driver's first argument, makes it rusageHelper.
const rusageHelperArg = "-rusage-helper"

// rusageHelper runs argv (stdout discarded, stderr inherited) and writes to fd 3 its wall time,
// CPU (its waited-for children included) in ns, ru_maxrss in KiB and exit code. It stands
// between the driver and the measured process because Go starts a child with vfork: the
// child's exec then records the driver's own peak RSS (over 100 MiB once the worlds are built)
// as the child's high-water mark, and its ru_maxrss says the driver's size, not its own. From
// this small process that floor is a few MiB.
func rusageHelper(argv []string) int {
	if len(argv) == 0 {
		return 2
	}
	report := os.NewFile(3, "report")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	err := cmd.Wait()
	wall := time.Since(t0)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var cpu time.Duration
	var maxRSS int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		maxRSS = ru.Maxrss
	}
	fmt.Fprintf(report, "%d %d %d %d\n", wall.Nanoseconds(), cpu.Nanoseconds(), maxRSS, cmd.ProcessState.ExitCode())
	return 0
}

// runOnce runs the controller with cmd on w.
func (w *world) runOnce(cmd ...string) (once, error) {
	return runProcess(append([]string{w.e.bin}, w.args(cmd...)...), 10*time.Minute)
}

// daemon is a running `profile-controller run`.
type daemon struct {
	cmd    *exec.Cmd
	pid    int
	logf   string
	done   chan struct{}
	exitMu sync.Mutex
	state  *os.ProcessState
}

// startRun starts `run` on w, its stderr (the JSON log) in a file next to the config.
func (w *world) startRun(tag string) (*daemon, error) {
	logPath := filepath.Join(w.dir, "run-"+tag+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(w.e.bin, w.args("run")...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return startDaemon(cmd, logPath)
}

// startDaemon starts cmd as a daemon (logPath: where its output goes, for error messages).
func startDaemon(cmd *exec.Cmd, logPath string) (*daemon, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, pid: cmd.Process.Pid, logf: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		d.exitMu.Lock()
		d.state = cmd.ProcessState
		d.exitMu.Unlock()
		close(d.done)
	}()
	register(func() { d.kill() })
	return d, nil
}

// exited reports whether the daemon is gone, and how.
func (d *daemon) exited() (bool, string) {
	select {
	case <-d.done:
		d.exitMu.Lock()
		defer d.exitMu.Unlock()
		return true, d.state.String()
	default:
		return false, ""
	}
}

// cpu is the daemon's CPU time so far.
func (d *daemon) cpu() (time.Duration, error) {
	st, err := readStat(d.pid)
	if err != nil {
		return 0, fmt.Errorf("controller exited? %w (log %s)", err, d.logf)
	}
	return st.cpu, nil
}

// stop sends SIGTERM and waits (SIGKILL after 10 s). It returns the peak RSS in KiB read
// just before the signal.
func (d *daemon) stop() int64 {
	hwm, _ := vmHWM(d.pid)
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		logf("controller %d ignored SIGTERM for 10 s; killing it", d.pid)
		d.kill()
		<-d.done
	}
	return hwm
}

// kill ends the daemon's process group (the controller and any s6 command it runs).
func (d *daemon) kill() {
	select {
	case <-d.done:
	default:
		_ = syscall.Kill(-d.pid, syscall.SIGKILL)
	}
}

// waitQuiet waits until the daemon used at most one clock tick in each of two consecutive
// windows of 250 ms, or until limit passes. It reports whether it went quiet, and is how a
// row lets the controller finish its start-up work before measuring.
func (d *daemon) waitQuiet(limit time.Duration) (bool, error) {
	t0 := time.Now()
	quiet, err := d.waitQuiet1(limit)
	vlogf("controller %d: quiet %t after %s", d.pid, quiet, time.Since(t0).Round(time.Millisecond))
	return quiet, err
}

func (d *daemon) waitQuiet1(limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	prev, err := d.cpu()
	if err != nil {
		return false, err
	}
	quiet := 0
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		c, err := d.cpu()
		if err != nil {
			return false, err
		}
		if c-prev <= clockTick {
			quiet++
			if quiet >= 2 {
				return true, nil
			}
		} else {
			quiet = 0
		}
		prev = c
	}
	return false, nil
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	b   []byte
	max int
}

func (w *cappedBuffer) Write(p []byte) (int, error) {
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(len(p), room)]...)
	}
	return len(p), nil
}

func (w *cappedBuffer) String() string { return string(w.b) }

// cleanups run at exit and on SIGINT/SIGTERM, last registered first.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

func register(f func()) {
	cleanupMu.Lock()
	cleanups = append(cleanups, f)
	cleanupMu.Unlock()
}

func runCleanups() {
	cleanupMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// syscallKill SIGKILLs one process this run started (a gateway that ignores SIGTERM).
func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
