//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Options tune one Env. Zero values take the defaults.
type Options struct {
	// SettlePeriod is the controller's settlePeriod (default 2s).
	SettlePeriod time.Duration
	// StartDelay is FAKE_GATEWAY_START_DELAY for every gateway (default 100ms).
	StartDelay time.Duration
	// RunTemplate replaces templates.run (default: exec the fake gateway on the profile's state file).
	RunTemplate string
}

// Env is one isolated world: a HERMES_HOME, a scandir with its own s6-svscan, a runtime dir and a
// controller config, all under Root.
type Env struct {
	Root, Home, Scandir, RuntimeDir, ConfigPath string

	opts Options

	svscan     *exec.Cmd
	svscanDone chan struct{}
	svscanLog  string // s6-svscan's stdout and stderr, inherited by supervisors, gateways and finish scripts

	controller     *exec.Cmd
	controllerDone chan struct{}
	logs           *syncBuffer // output of the background `run`
}

// convergeTimeout bounds waits for s6 or the controller to reach a state. Typical waits are well
// under a second; the margin is for loaded CI machines.
const convergeTimeout = 10 * time.Second

const (
	finishTemplate = "#!/bin/sh\nif [ \"$1\" = 0 ] || [ \"$1\" = 78 ]; then exit 125; fi\nexit 0\n"
	logRunTemplate = "#!/bin/sh\nexec cat >/dev/null\n"
)

// NewEnv builds an Env with default options; see NewEnvWith.
func NewEnv() *Env { return NewEnvWith(Options{}) }

// NewEnvWith creates the temp tree and the config file. Nothing is started. Teardown (controller,
// s6 tree, temp dir; set E2E_KEEP to keep the dir) is registered with DeferCleanup.
func NewEnvWith(opts Options) *Env {
	if opts.SettlePeriod == 0 {
		opts.SettlePeriod = 2 * time.Second
	}
	if opts.StartDelay == 0 {
		opts.StartDelay = 100 * time.Millisecond
	}
	if opts.RunTemplate == "" {
		opts.RunTemplate = "#!/bin/sh\nexec " + shquote(fakeGatewayBin) +
			" --state-file {{shquote .ProfileDir}}/gateway_state.json\n"
	}
	root, err := os.MkdirTemp("", "pc-e2e-")
	Expect(err).NotTo(HaveOccurred())
	root, err = filepath.EvalSymlinks(root) // /proc/<pid>/cwd shows resolved paths
	Expect(err).NotTo(HaveOccurred())
	e := &Env{
		Root:       root,
		Home:       filepath.Join(root, "home"),
		Scandir:    filepath.Join(root, "service"),
		RuntimeDir: filepath.Join(root, "run", "profile-controller"),
		ConfigPath: filepath.Join(root, "config.yaml"),
		opts:       opts,
		svscanLog:  filepath.Join(root, "svscan.log"),
		logs:       &syncBuffer{},
	}
	Expect(os.MkdirAll(filepath.Join(e.Home, "profiles"), 0o755)).To(Succeed())
	Expect(os.MkdirAll(e.Scandir, 0o755)).To(Succeed())
	Expect(os.WriteFile(e.ConfigPath, []byte(e.configYAML()), 0o644)).To(Succeed())
	// Cleanups run last-in first-out, and each runs even when an earlier one failed.
	DeferCleanup(e.removeRoot)
	DeferCleanup(e.StopSvscan)
	DeferCleanup(e.StopController)
	return e
}

func (e *Env) configYAML() string {
	var b strings.Builder
	field := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, strconv.Quote(v)) }
	field("hermesHome", e.Home)
	field("scandir", e.Scandir)
	field("s6BinDir", s6BinDir)
	field("runtimeDir", e.RuntimeDir)
	field("resyncPeriod", "1s")
	field("settlePeriod", e.opts.SettlePeriod.String())
	b.WriteString("templates:\n")
	block := func(k, text string) {
		fmt.Fprintf(&b, "  %s: |\n", k)
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	block("run", e.opts.RunTemplate)
	block("finish", finishTemplate)
	block("logRun", logRunTemplate)
	return b.String()
}

// environ is the environment for every process the harness starts: the test's own, minus the
// variables that would override the config file.
func (e *Env) environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HERMES_HOME", "S6_PROFILE_GATEWAY_SCANDIR", "FAKE_GATEWAY_START_DELAY", "FAKE_GATEWAY_EXIT_CODE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// ---------------------------------------------------------------------------------------------
// Profiles and state files

// ProfileDir is the directory of a profile: HERMES_HOME itself for "default".
func (e *Env) ProfileDir(name string) string {
	if name == "default" {
		return e.Home
	}
	return filepath.Join(e.Home, "profiles", name)
}

// StatePath is the profile's gateway_state.json.
func (e *Env) StatePath(name string) string {
	return filepath.Join(e.ProfileDir(name), "gateway_state.json")
}

// SlotDir is <scandir>/gateway-<name>.
func (e *Env) SlotDir(name string) string { return filepath.Join(e.Scandir, "gateway-"+name) }

// Profile creates a profile: the dir, the state file (unless state is nil), then SOUL.md (not for
// "default", the root), so the profile appears with its state already in place.
func (e *Env) Profile(name string, state map[string]any) string {
	dir := e.ProfileDir(name)
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	if state != nil {
		e.WriteState(name, state)
	}
	if name != "default" {
		Expect(os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("# "+name+"\n"), 0o644)).To(Succeed())
	}
	return dir
}

// WriteState replaces the profile's state file atomically (temp + rename, like the hermes CLI).
func (e *Env) WriteState(name string, state map[string]any) {
	data, err := json.Marshal(state)
	Expect(err).NotTo(HaveOccurred())
	e.WriteStateRaw(name, data)
}

// WriteStateRaw replaces the profile's state file atomically with arbitrary bytes.
func (e *Env) WriteStateRaw(name string, data []byte) {
	path := e.StatePath(name)
	tmp := path + ".tmp"
	Expect(os.WriteFile(tmp, data, 0o644)).To(Succeed())
	Expect(os.Rename(tmp, path)).To(Succeed())
}

// SetDesired merges desired_state into the state file (read-merge-write, like `hermes gateway
// start/stop`), keeping every key the gateway wrote.
func (e *Env) SetDesired(name, desired string) {
	state := e.ReadState(name)
	if state == nil {
		state = map[string]any{}
	}
	state["desired_state"] = desired
	e.WriteState(name, state)
}

// ReadState returns the profile's state file as an object, or nil when it is missing or not one.
func (e *Env) ReadState(name string) map[string]any {
	data, err := os.ReadFile(e.StatePath(name))
	if err != nil {
		return nil
	}
	var state map[string]any
	if json.Unmarshal(data, &state) != nil {
		return nil
	}
	return state
}

// BootLogPath is HERMES_HOME/logs/container-boot.log.
func (e *Env) BootLogPath() string { return filepath.Join(e.Home, "logs", "container-boot.log") }

// ---------------------------------------------------------------------------------------------
// The controller

// CLI runs `profile-controller --config <cfg> args...` to completion (60 s at most).
func (e *Env) CLI(args ...string) (stdout, stderr string, exitCode int) {
	return e.runCLI(60*time.Second, 2*time.Second, args)
}

// cliCommand is `profile-controller --config <cfg> args...`, killed when ctx ends (its output
// then waited for at most waitDelay), with stdout and stderr collected in the returned buffers.
func (e *Env) cliCommand(ctx context.Context, waitDelay time.Duration, args []string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, controllerBin, append([]string{"--config", e.ConfigPath}, args...)...)
	cmd.Env = e.environ()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = waitDelay
	return cmd, &out, &errOut
}

// runCLI runs the controller with args to completion and logs the run. It fails the spec when
// the controller is still running after limit (it is then killed) or cannot be run at all.
func (e *Env) runCLI(limit, waitDelay time.Duration, args []string) (stdout, stderr string, exitCode int) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd, out, errOut := e.cliCommand(ctx, waitDelay, args)
	err := cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		exitCode = exitErr.ExitCode()
	}
	fmt.Fprintf(GinkgoWriter, "$ profile-controller %s -> exit %d (%v)\n--- stdout\n%s--- stderr\n%s---\n",
		strings.Join(args, " "), exitCode, err, out.String(), errOut.String())
	Expect(ctx.Err()).NotTo(HaveOccurred(), "profile-controller %s still running after %v", strings.Join(args, " "), limit)
	if err != nil && exitErr == nil {
		Fail(fmt.Sprintf("running profile-controller %s: %v", strings.Join(args, " "), err))
	}
	return out.String(), errOut.String(), exitCode
}

// StartController starts `profile-controller run` in the background; its output goes to Logs.
func (e *Env) StartController() { e.StartControllerEnv() }

// StartControllerEnv is StartController with extra environment variables (K=V).
func (e *Env) StartControllerEnv(extra ...string) {
	Expect(e.controller).To(BeNil(), "controller already running")
	cmd := exec.Command(controllerBin, "--config", e.ConfigPath, "run")
	cmd.Env = e.environ(extra...)
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	Expect(cmd.Start()).To(Succeed())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	e.controller, e.controllerDone = cmd, done
}

// ExpectControllerAlive fails (through g) when the background controller has exited.
func (e *Env) ExpectControllerAlive(g Gomega) {
	g.Expect(e.controller).NotTo(BeNil(), "controller not started")
	select {
	case <-e.controllerDone:
		g.Expect(fmt.Errorf("controller exited: %v", e.controller.ProcessState)).NotTo(HaveOccurred())
	default:
	}
}

// StopController sends SIGTERM to the background controller and expects exit 0 within 5 s.
func (e *Env) StopController() {
	cmd, done := e.controller, e.controllerDone
	if cmd == nil {
		return
	}
	e.controller = nil
	select {
	case <-done:
		Fail(fmt.Sprintf("the controller exited on its own before it was stopped: %v", cmd.ProcessState))
	default:
	}
	Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		Fail("the controller did not exit within 5 s of SIGTERM (killed)")
	}
	Expect(cmd.ProcessState.ExitCode()).To(Equal(0), "controller exit status after SIGTERM: %v", cmd.ProcessState)
}

// Logs returns the background controller's output so far.
func (e *Env) Logs() string { return e.logs.String() }

// ---------------------------------------------------------------------------------------------
// s6

func s6Tool(name string) string { return filepath.Join(s6BinDir, name) }

// S6 runs an s6 tool and returns its combined output and exit code.
func S6(tool string, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s6Tool(tool), args...).CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exitErr):
		return string(out), exitErr.ExitCode()
	default:
		return fmt.Sprintf("%s: %v", tool, err), -1
	}
}

// StartSvscan runs s6-svscan on the scandir in its own process group and waits until it answers
// s6-svscanctl. Gateways inherit FAKE_GATEWAY_START_DELAY from it.
func (e *Env) StartSvscan() { e.StartSvscanWith() }

// StartSvscanWith is StartSvscan with extra s6-svscan options before the scandir (e.g. "-c", "3").
func (e *Env) StartSvscanWith(args ...string) {
	Expect(e.svscan).To(BeNil(), "s6-svscan already running")
	Expect(os.MkdirAll(e.Scandir, 0o755)).To(Succeed())
	logFile, err := os.OpenFile(e.svscanLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	Expect(err).NotTo(HaveOccurred())
	defer logFile.Close()
	cmd := exec.Command(s6Tool("s6-svscan"), append(append([]string{}, args...), e.Scandir)...)
	cmd.Env = e.environ("FAKE_GATEWAY_START_DELAY=" + e.opts.StartDelay.String())
	// A file, not a pipe: supervisors and gateways inherit it, and a pipe would keep Wait blocked
	// until the last of them exits.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	Expect(cmd.Start()).To(Succeed())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	e.svscan, e.svscanDone = cmd, done
	Eventually(func(g Gomega) {
		select {
		case <-done:
			StopTrying(fmt.Sprintf("s6-svscan exited: %v", cmd.ProcessState)).Now()
		default:
		}
		out, rc := S6("s6-svscanctl", "-a", e.Scandir)
		g.Expect(rc).To(Equal(0), out)
	}).WithTimeout(5 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
}

// StopSvscan tears the s6 tree down like a container stop: s6-svscanctl -t makes s6-svscan
// SIGTERM every supervisor, each of which brings its service down (SIGTERM, finish) and exits.
// Then no process of this Env (cwd or argv under Root) may be left. Survivors are SIGKILLed by
// pid and fail the spec.
func (e *Env) StopSvscan() {
	var problems []string
	wait := 10 * time.Second
	if cmd, done := e.svscan, e.svscanDone; cmd != nil {
		e.svscan = nil
		if out, rc := S6("s6-svscanctl", "-t", e.Scandir); rc != 0 {
			fmt.Fprintf(GinkgoWriter, "s6-svscanctl -t failed (%d): %s; sending SIGTERM\n", rc, out)
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-done:
		case <-time.After(wait):
			// s6-svscan waits for every supervisor; a logger whose pipe an orphan still holds
			// never exits. Whatever is left is listed and killed below.
			problems = append(problems, fmt.Sprintf("s6-svscan did not exit within %v of s6-svscanctl -t", wait))
			_ = cmd.Process.Kill()
			<-done
			wait = time.Second
		}
	}
	var left []Proc
	err := InterceptGomegaFailure(func() {
		Eventually(func() []Proc {
			left = e.Processes()
			return left
		}).WithTimeout(wait).WithPolling(50 * time.Millisecond).Should(BeEmpty())
	})
	if err != nil {
		for _, p := range left {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		problems = append(problems, "processes survived a clean stop of the s6 tree (SIGKILLed now):\n"+procList(left))
	}
	if len(problems) > 0 {
		Fail(strings.Join(problems, "\n"))
	}
}

// WipeRun removes the scandir and the runtime dir, as a container restart does with its tmpfs.
// The s6 tree must be stopped first.
func (e *Env) WipeRun() {
	Expect(e.svscan).To(BeNil(), "stop s6-svscan before wiping the scandir")
	Expect(os.RemoveAll(e.Scandir)).To(Succeed())
	Expect(os.RemoveAll(filepath.Dir(e.RuntimeDir))).To(Succeed())
}

// Svstat returns s6-svstat -o up,wantedup,normallyup,pid,exitcode for a slot (a name like
// "gateway-x", or a path), keyed by field, plus "supervised" ("true"/"false"). It never
// asserts: an unexpected s6-svstat failure is returned under "error".
func (e *Env) Svstat(slot string) map[string]string {
	dir := slot
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(e.Scandir, slot)
	}
	fields := []string{"up", "wantedup", "normallyup", "pid", "exitcode"}
	out, rc := S6("s6-svstat", "-o", strings.Join(fields, ","), dir)
	switch rc {
	case 0:
	case 1: // no supervisor (or no such dir)
		return map[string]string{"supervised": "false"}
	default:
		return map[string]string{"supervised": "unknown", "error": fmt.Sprintf("s6-svstat %s: rc %d: %s", dir, rc, out)}
	}
	values := strings.Fields(out)
	if len(values) != len(fields) {
		return map[string]string{"supervised": "unknown", "error": fmt.Sprintf("s6-svstat %s: unexpected output %q", dir, out)}
	}
	m := map[string]string{"supervised": "true"}
	for i, f := range fields {
		m[f] = values[i]
	}
	return m
}

// ExpectUp asserts (through g) that the slot's service is up and wanted up.
func (e *Env) ExpectUp(g Gomega, name string) {
	st := e.Svstat("gateway-" + name)
	g.Expect(st).To(HaveKeyWithValue("up", "true"), "gateway-%s: %v", name, st)
	g.Expect(st).To(HaveKeyWithValue("wantedup", "true"), "gateway-%s: %v", name, st)
}

// ExpectDown asserts (through g) that the slot is supervised, its service is down and not wanted up.
func (e *Env) ExpectDown(g Gomega, name string) {
	st := e.Svstat("gateway-" + name)
	g.Expect(st).To(HaveKeyWithValue("supervised", "true"), "gateway-%s: %v", name, st)
	g.Expect(st).To(HaveKeyWithValue("up", "false"), "gateway-%s: %v", name, st)
	g.Expect(st).To(HaveKeyWithValue("wantedup", "false"), "gateway-%s: %v", name, st)
}

// SupervisedPid returns the service pid s6-svstat reports for gateway-<name>, or -1.
func (e *Env) SupervisedPid(name string) int {
	pid, err := strconv.Atoi(e.Svstat("gateway-" + name)["pid"])
	if err != nil {
		return -1
	}
	return pid
}

// ---------------------------------------------------------------------------------------------
// Processes

// Proc is a live process that belongs to an Env.
type Proc struct {
	Pid     int
	Cwd     string
	Cmdline string
}

// Processes lists the live (non-zombie) processes whose cwd or argv mentions Root: supervisors,
// gateways, loggers, finish scripts, the controller.
func (e *Env) Processes() []Proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var procs []Proc
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self || !PidAlive(pid) {
			continue
		}
		cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
		if strings.HasPrefix(cwd, e.Root) || strings.Contains(cmdline, e.Root) {
			procs = append(procs, Proc{Pid: pid, Cwd: cwd, Cmdline: cmdline})
		}
	}
	return procs
}

// PidAlive reports whether pid exists and is not a zombie.
func PidAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may hold spaces and parentheses, so split at the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	return stat[i+2] != 'Z'
}

func procList(procs []Proc) string {
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "  pid %d cwd %s: %s\n", p.Pid, p.Cwd, p.Cmdline)
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------------
// Teardown and failure dumps

func (e *Env) removeRoot() {
	if os.Getenv("E2E_KEEP") != "" {
		fmt.Fprintf(GinkgoWriter, "E2E_KEEP set: keeping %s\n", e.Root)
		return
	}
	Expect(os.RemoveAll(e.Root)).To(Succeed())
}

// DumpOnFailure writes what a failed spec needs to GinkgoWriter: controller logs, s6-svstat of
// every slot, the scandir listing, the s6 tree's output, the boot log and the state files.
func (e *Env) DumpOnFailure() {
	if !CurrentSpecReport().Failed() {
		return
	}
	w := GinkgoWriter
	section := func(title string) { fmt.Fprintf(w, "\n===== %s =====\n", title) }
	section("e2e dump of " + e.Root)
	section("controller (run) output")
	fmt.Fprint(w, e.logs.String())
	section("s6-svstat of every scandir entry")
	if entries, err := os.ReadDir(e.Scandir); err == nil {
		for _, ent := range entries {
			if strings.HasPrefix(ent.Name(), ".s6-svscan") {
				continue
			}
			dir := filepath.Join(e.Scandir, ent.Name())
			human, rc := S6("s6-svstat", dir)
			fmt.Fprintf(w, "%s: %s (rc %d) %v\n", ent.Name(), strings.TrimSpace(human), rc, e.Svstat(dir))
		}
	}
	section("ls -laR " + e.Scandir)
	out, _ := exec.Command("ls", "-laR", e.Scandir).CombinedOutput()
	fmt.Fprint(w, string(out))
	section("processes of this env")
	fmt.Fprint(w, procList(e.Processes()))
	section("s6-svscan tree output (" + e.svscanLog + ")")
	if data, err := os.ReadFile(e.svscanLog); err == nil {
		fmt.Fprint(w, tail(string(data), 200))
	}
	section("boot log " + e.BootLogPath())
	if data, err := os.ReadFile(e.BootLogPath()); err == nil {
		fmt.Fprint(w, string(data))
	} else {
		fmt.Fprintln(w, err)
	}
	section("state files")
	_ = filepath.WalkDir(e.Home, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "gateway_state.json" && d.Type().IsRegular() {
			data, _ := os.ReadFile(path)
			if len(data) > 300 {
				data = append(data[:300:300], "..."...)
			}
			fmt.Fprintf(w, "%s: %s\n", path, data)
		}
		return nil
	})
}

func tail(s string, lines int) string {
	parts := strings.SplitAfter(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "")
}

// ---------------------------------------------------------------------------------------------
// Small helpers

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// shquote quotes s for a POSIX shell.
func shquote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'" }

// slotNames lists the gateway-* entries of the scandir, sorted.
func (e *Env) slotNames() []string {
	entries, err := os.ReadDir(e.Scandir)
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), "gateway-") {
			names = append(names, ent.Name())
		}
	}
	sort.Strings(names)
	return names
}

// RenderSlot writes a slot the way the controller's templates describe it, without the
// controller: used by the harness self-check to prove the fake gateway and scripts against s6.
// The slot is built outside the scandir and renamed in, so a concurrent scan never sees it
// half-written (s6-supervise would wait 10 s before retrying a missing ./run).
func (e *Env) RenderSlot(name string, down bool) {
	dir, err := os.MkdirTemp(e.Root, "staging-")
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Chmod(dir, 0o755)).To(Succeed())
	Expect(os.MkdirAll(filepath.Join(dir, "log"), 0o755)).To(Succeed())
	run := template.Must(template.New("run").Funcs(template.FuncMap{"shquote": shquote}).Parse(e.opts.RunTemplate))
	var b bytes.Buffer
	Expect(run.Execute(&b, map[string]any{"Name": name, "ProfileDir": e.ProfileDir(name)})).To(Succeed())
	files := map[string]string{"type": "longrun\n", "run": b.String(), "finish": finishTemplate, "log/run": logRunTemplate}
	for f, content := range files {
		Expect(os.WriteFile(filepath.Join(dir, f), []byte(content), 0o755)).To(Succeed())
	}
	if down {
		Expect(os.WriteFile(filepath.Join(dir, "down"), nil, 0o644)).To(Succeed())
	}
	Expect(os.Rename(dir, e.SlotDir(name))).To(Succeed())
}
