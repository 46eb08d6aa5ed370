//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Helpers for the fault, settle and runtime specs (faults_test.go, settle_test.go,
// runtime_test.go). They only add to the harness in harness_test.go.

// SetConfig sets a top-level scalar field of the controller config to raw (a YAML value written
// as is: quote strings with strconv.Quote). An existing line for the field is replaced, so the
// strict decoder never sees a duplicate key; a new one goes before the templates block.
func (e *Env) SetConfig(field, raw string) {
	data, err := os.ReadFile(e.ConfigPath)
	Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(string(data), "\n")
	line := field + ": " + raw
	replaced := false
	for i, l := range lines {
		if strings.HasPrefix(l, field+":") {
			lines[i], replaced = line, true
		}
	}
	if !replaced {
		at := len(lines)
		for i, l := range lines {
			if strings.HasPrefix(l, "templates:") {
				at = i
				break
			}
		}
		lines = append(lines[:at], append([]string{line}, lines[at:]...)...)
	}
	Expect(os.WriteFile(e.ConfigPath, []byte(strings.Join(lines, "\n")), 0o644)).To(Succeed())
}

// SetConfigDuration sets a duration field ("2s") of the controller config.
func (e *Env) SetConfigDuration(field string, d time.Duration) {
	e.SetConfig(field, strconv.Quote(d.String()))
}

// RunningProfiles creates each named profile with desired_state running.
func (e *Env) RunningProfiles(names ...string) {
	for _, n := range names {
		e.Profile(n, map[string]any{"desired_state": "running"})
	}
}

// StartConverged starts s6-svscan and the background controller, then waits (convergeTimeout)
// until the controller is alive and converged as converged asserts (through g).
func (e *Env) StartConverged(converged func(g Gomega)) {
	e.StartSvscan()
	e.StartController()
	Eventually(func(g Gomega) {
		e.ExpectControllerAlive(g)
		converged(g)
	}).WithTimeout(convergeTimeout).Should(Succeed())
}

// StartKeep creates the profile "keep" with desired_state running, starts everything
// (StartConverged) until keep is up and the default profile down, and returns keep's gateway pid.
func (e *Env) StartKeep() int {
	e.RunningProfiles("keep")
	e.StartConverged(func(g Gomega) {
		e.ExpectUp(g, "keep")
		e.ExpectDown(g, "default")
	})
	return e.SupervisedPid("keep")
}

// BootSettled starts s6-svscan, runs one boot pass (reconcile --once --boot, which must exit 0)
// and waits (convergeTimeout) until every named profile is settled (ExpectSettled).
func (e *Env) BootSettled(names ...string) {
	e.StartSvscan()
	_, stderr, code := e.CLI("reconcile", "--once", "--boot")
	Expect(code).To(Equal(0), "stderr: %s", stderr)
	Eventually(func(g Gomega) { e.ExpectAllSettled(g, names...) }).WithTimeout(convergeTimeout).Should(Succeed())
}

// ExpectAllUp asserts (through g) ExpectUp for every named profile.
func (e *Env) ExpectAllUp(g Gomega, names ...string) {
	for _, n := range names {
		e.ExpectUp(g, n)
	}
}

// ExpectAllSettled asserts (through g) ExpectSettled for every named profile.
func (e *Env) ExpectAllSettled(g Gomega, names ...string) {
	for _, n := range names {
		e.ExpectSettled(g, n)
	}
}

// DesiredFollowed writes desired_state (read-merge-write) for a profile and expects its gateway
// up for "running", down for anything else, and whatever also asserts (when not nil), within
// 2 s of the write. It logs how long that took.
func (e *Env) DesiredFollowed(name, desired string, also func(g Gomega)) {
	t0 := time.Now()
	e.SetDesired(name, desired)
	Eventually(func(g Gomega) {
		if desired == "running" {
			e.ExpectUp(g, name)
		} else {
			e.ExpectDown(g, name)
		}
		if also != nil {
			also(g)
		}
	}).WithTimeout(within2s(t0)).Should(Succeed())
	fmt.Fprintf(GinkgoWriter, "desired_state %s of %s observed %v after the write\n", desired, name, time.Since(t0))
}

// StopSvscanUnderController stops the s6 tree (s6-svscanctl -t) while `run` keeps running, as
// when s6-svscan dies under a live controller. It waits until every supervisor, gateway and
// logger of the Env is gone; the controller and its short-lived s6 commands are not waited for.
func (e *Env) StopSvscanUnderController() {
	cmd, done := e.svscan, e.svscanDone
	Expect(cmd).NotTo(BeNil(), "s6-svscan is not running")
	e.svscan = nil
	out, rc := S6("s6-svscanctl", "-t", e.Scandir)
	Expect(rc).To(Equal(0), out)
	Eventually(done).WithTimeout(convergeTimeout).Should(BeClosed(), "s6-svscan did not exit after s6-svscanctl -t")
	Eventually(func() []Proc {
		var left []Proc
		for _, p := range e.Processes() {
			if !e.isControllerOrChild(p.Pid) {
				left = append(left, p)
			}
		}
		return left
	}).WithTimeout(convergeTimeout).WithPolling(50 * time.Millisecond).Should(BeEmpty())
}

// isControllerOrChild reports whether pid is the background controller or one of its children.
func (e *Env) isControllerOrChild(pid int) bool {
	if e.controller == nil {
		return false
	}
	ctl := e.controller.Process.Pid
	if pid == ctl {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return false
	}
	fields := strings.Fields(string(stat[i+1:])) // state ppid ...
	return len(fields) > 1 && fields[1] == strconv.Itoa(ctl)
}

// ControllerPid is the pid of the background `run`.
func (e *Env) ControllerPid() int {
	Expect(e.controller).NotTo(BeNil(), "controller not started")
	return e.controller.Process.Pid
}

// TermController sends SIGTERM to the background controller, runs during (may be nil) right
// after the signal, and waits until limit after the signal for the controller to exit. It
// returns how long the exit took and the exit code; a controller still alive at limit is
// SIGKILLed and reported with exit code -1 and elapsed == limit. The Env forgets the controller
// either way, so the teardown does not stop it twice.
func (e *Env) TermController(limit time.Duration, during func()) (time.Duration, int) {
	cmd, done := e.controller, e.controllerDone
	Expect(cmd).NotTo(BeNil(), "controller not started")
	e.controller = nil
	t0 := time.Now()
	Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	if during != nil {
		during()
	}
	select {
	case <-done:
		return time.Since(t0), cmd.ProcessState.ExitCode()
	case <-time.After(until(t0.Add(limit))):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return limit, -1
	}
}

// RestartController stops the background controller (SIGTERM, exit 0 expected) and starts a new
// one, which reads the config file again.
func (e *Env) RestartController() {
	e.StopController()
	e.StartController()
}

// StartCLI starts `profile-controller --config <cfg> args...` without waiting; stdout and stderr
// are collected in the returned buffers once the process has been waited for.
func (e *Env) StartCLI(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd, out, errOut := e.cliCommand(context.Background(), 2*time.Second, args)
	Expect(cmd.Start()).To(Succeed())
	return cmd, out, errOut
}

// CLIWithin runs the controller like CLI but fails the spec when it has not exited within
// limit (it is then killed): for commands that must refuse to start rather than run forever.
func (e *Env) CLIWithin(limit time.Duration, args ...string) (stdout, stderr string, exitCode int) {
	return e.runCLI(limit, time.Second, args)
}

// ProfileAtomic creates a named profile (dir, state file unless state is nil, SOUL.md) outside
// profiles/ and renames it in, so it appears complete in one step (one file event).
func (e *Env) ProfileAtomic(name string, state map[string]any) {
	Expect(name).NotTo(Equal("default"))
	tmp, err := os.MkdirTemp(e.Root, "profile-")
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Chmod(tmp, 0o755)).To(Succeed())
	if state != nil {
		data, err := json.Marshal(state)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(tmp, "gateway_state.json"), data, 0o644)).To(Succeed())
	}
	Expect(os.WriteFile(filepath.Join(tmp, "SOUL.md"), []byte("# "+name+"\n"), 0o644)).To(Succeed())
	Expect(os.Rename(tmp, e.ProfileDir(name))).To(Succeed())
}

// ExpectSettled asserts (through g) that gateway-<name> is up and its gateway has persisted
// gateway_state running: after that the fake writes its state file only when it stops, so an
// edit of desired_state cannot be lost to the gateway's own read-merge-write.
func (e *Env) ExpectSettled(g Gomega, name string) {
	e.ExpectUp(g, name)
	g.Expect(e.ReadState(name)).To(HaveKeyWithValue("gateway_state", "running"), name)
}

// ---------------------------------------------------------------------------------------------
// Controller logs (JSON lines of `run`)

// LogEntry is one JSON log line of the background controller.
type LogEntry map[string]any

// Str returns a string field of the entry, or "".
func (l LogEntry) Str(key string) string {
	s, _ := l[key].(string)
	return s
}

// LogEntries parses the background controller's JSON log lines (other lines are skipped).
func (e *Env) LogEntries() []LogEntry {
	return parseLogEntries(e.Logs())
}

func parseLogEntries(text string) []LogEntry {
	var out []LogEntry
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var entry LogEntry
		if json.Unmarshal([]byte(line), &entry) == nil {
			out = append(out, entry)
		}
	}
	return out
}

// AppliedActions lists the "action" of every "Applied action" log line for profile, in order.
func (e *Env) AppliedActions(profile string) []string {
	var out []string
	for _, l := range e.LogEntries() {
		if l.Str("msg") == "Applied action" && l.Str("profile") == profile {
			out = append(out, l.Str("action"))
		}
	}
	return out
}

// LogsMatching lists the log entries whose msg is msg (any msg when "") and whose text contains
// every one of substrings.
func (e *Env) LogsMatching(msg string, substrings ...string) []LogEntry {
	var out []LogEntry
	for _, l := range e.LogEntries() {
		if msg != "" && l.Str("msg") != msg {
			continue
		}
		raw, _ := json.Marshal(l)
		ok := true
		for _, s := range substrings {
			if !strings.Contains(string(raw), s) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// status -o json

// faultStatus is the part of one `status -o json` profile entry these specs read.
type faultStatus struct {
	Profile    string `json:"profile"`
	Intent     string `json:"intent"`
	Phase      string `json:"phase"`
	Pending    string `json:"pending"`
	SlotExists bool   `json:"slotExists"`
	Supervised bool   `json:"supervised"`
	Up         bool   `json:"up"`
	WantUp     bool   `json:"wantUp"`
	PID        int    `json:"pid"`
	ExitCode   int    `json:"exitCode"`
	Signal     int    `json:"signal"`
	Deaths     *int   `json:"deaths"`
	Failures   int    `json:"crashLoopFailures"`
	NextStart  string `json:"nextStart"`
	Error      string `json:"error"`
}

type faultStatusDoc struct {
	Profiles []faultStatus `json:"profiles"`
	Problems []struct {
		Name  string `json:"name"`
		Path  string `json:"path"`
		Error string `json:"error"`
	} `json:"problems"`
}

// StatusJSON runs `status -o json` and decodes it (through g, so it can sit in an Eventually).
func (e *Env) StatusJSON(g Gomega) faultStatusDoc {
	var doc faultStatusDoc
	e.statusInto(g, &doc)
	return doc
}

// statusInto runs `status -o json` and decodes it into doc (through g); it returns the output.
func (e *Env) statusInto(g Gomega, doc any) string {
	stdout, stderr, code := e.CLI("status", "-o", "json")
	// 3: some profile is unhealthy (crash loop, no supervisor, a problem): the document says which.
	g.Expect(code).To(Or(Equal(0), Equal(3)), "status -o json: %s", stderr)
	g.Expect(json.Unmarshal([]byte(stdout), doc)).To(Succeed(), "status -o json output: %s", stdout)
	return stdout
}

// Profile returns the status entry of a profile (failing through g when there is none).
func (d faultStatusDoc) Profile(g Gomega, name string) faultStatus {
	for _, p := range d.Profiles {
		if p.Profile == name {
			return p
		}
	}
	g.Expect(d.Profiles).To(ContainElement(HaveField("Profile", name)), "status has no entry for %s", name)
	return faultStatus{}
}

// ---------------------------------------------------------------------------------------------
// s6 binary directories

// FakeBinDir builds a directory for the config's s6BinDir: a symlink to the real s6 binary for
// every s6-* tool, except that each name in replace gets the given script instead and each name
// in omit is left out. It lives under Root and goes away with the Env.
func (e *Env) FakeBinDir(name string, replace map[string]string, omit ...string) string {
	dir := filepath.Join(e.Root, name)
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	tools, err := filepath.Glob(filepath.Join(s6BinDir, "s6-*"))
	Expect(err).NotTo(HaveOccurred())
	skip := map[string]bool{}
	for _, o := range omit {
		skip[o] = true
	}
	for _, tool := range tools {
		base := filepath.Base(tool)
		if skip[base] {
			continue
		}
		if script, ok := replace[base]; ok {
			Expect(os.WriteFile(filepath.Join(dir, base), []byte(script), 0o755)).To(Succeed())
			continue
		}
		Expect(os.Symlink(tool, filepath.Join(dir, base))).To(Succeed())
	}
	for base, script := range replace {
		if _, err := os.Lstat(filepath.Join(dir, base)); errors.Is(err, os.ErrNotExist) {
			Expect(os.WriteFile(filepath.Join(dir, base), []byte(script), 0o755)).To(Succeed())
		}
	}
	return dir
}

// CountingBinDir builds an s6BinDir whose s6-svc, s6-svscanctl, s6-svwait and s6-svstat are
// wrappers that append their name to counterFile, then exec the real tool: every fork of an s6
// command by the controller leaves one line.
func (e *Env) CountingBinDir(counterFile string) string {
	replace := map[string]string{}
	for _, tool := range []string{"s6-svc", "s6-svscanctl", "s6-svwait", "s6-svstat"} {
		replace[tool] = "#!/bin/sh\necho " + tool + " \"$@\" >>" + shquote(counterFile) + "\nexec " + shquote(s6Tool(tool)) + " \"$@\"\n"
	}
	return e.FakeBinDir("counting-bin", replace)
}

// countLines returns the number of lines in path (0 when it does not exist).
func countLines(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "\n")
}

// ---------------------------------------------------------------------------------------------
// Scandir checks

// slotFiles are the files every published slot holds (the harness templates have a logger).
var slotFiles = []string{"type", "run", "finish", "log/run"}

// ExpectSlotConsistent asserts (through g) that gateway-<name> is either absent or complete:
// a real directory with every file of slotFiles, never a partial one.
func (e *Env) ExpectSlotConsistent(g Gomega, name string) (exists bool) {
	fi, err := os.Lstat(e.SlotDir(name))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.IsDir()).To(BeTrue(), "%s is not a directory", e.SlotDir(name))
	for _, f := range slotFiles {
		g.Expect(filepath.Join(e.SlotDir(name), f)).To(BeARegularFile(), "slot %s is published incomplete", name)
	}
	return true
}

// ExpectNoStaging asserts (through g) that the scandir holds no .gateway-*.tmp entry.
func (e *Env) ExpectNoStaging(g Gomega) {
	entries, err := os.ReadDir(e.Scandir)
	g.Expect(err).NotTo(HaveOccurred())
	for _, ent := range entries {
		g.Expect(strings.HasPrefix(ent.Name(), ".gateway-") && strings.HasSuffix(ent.Name(), ".tmp")).
			To(BeFalse(), "staging leftover %s in the scandir", ent.Name())
	}
}

// slotInode returns the inode of gateway-<name>, or 0 when it does not exist.
func (e *Env) slotInode(name string) uint64 {
	fi, err := os.Lstat(e.SlotDir(name))
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// startsFile is where the counting run template (startsRunTemplate) records each start of a
// profile's gateway: one line per start, the start time in Unix nanoseconds.
func (e *Env) startsFile(name string) string { return filepath.Join(e.Root, "starts-"+name) }

// starts reads the start times recorded for a profile.
func (e *Env) starts(name string) []time.Time {
	data, err := os.ReadFile(e.startsFile(name))
	if err != nil {
		return nil
	}
	var out []time.Time
	for _, f := range strings.Fields(string(data)) {
		ns, err := strconv.ParseInt(f, 10, 64)
		Expect(err).NotTo(HaveOccurred(), "starts file %s: %q", e.startsFile(name), f)
		out = append(out, time.Unix(0, ns))
	}
	return out
}

// startsRunTemplate is a run template that records each start (date +%s%N, into
// <HERMES_HOME>/../starts-<name>, which is startsFile) and then execs the fake gateway. extra
// goes before the exec line (e.g. an export for one profile).
func startsRunTemplate(extra string) string {
	return "#!/bin/sh\ndate +%s%N >>{{shquote .HermesHome}}/../starts-{{.Name}}\n" + extra +
		"exec " + shquote(fakeGatewayBin) + " --state-file {{shquote .ProfileDir}}/gateway_state.json\n"
}

// inotifyInstancesInUse counts the inotify instances open in the whole system (this VM or
// container runs everything as root, so that is root's count).
func inotifyInstancesInUse() int {
	n := 0
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------------------------
// Small helpers of the fault specs

// until returns the time left before deadline (at least 1 ms, so a late caller still polls once).
func until(deadline time.Time) time.Duration {
	return max(time.Until(deadline), time.Millisecond)
}

// errorsFor lists the error text of every error-level log line about profile.
func (e *Env) errorsFor(profile string) []string {
	var out []string
	for _, l := range e.LogEntries() {
		if l.Str("level") == "error" && l.Str("profile") == profile {
			out = append(out, l.Str("msg")+": "+l.Str("error"))
		}
	}
	return out
}

// logTimes returns the ts of each entry.
func logTimes(entries []LogEntry) []time.Time {
	var out []time.Time
	for _, l := range entries {
		t, err := time.Parse("2006-01-02T15:04:05.000Z0700", l.Str("ts"))
		Expect(err).NotTo(HaveOccurred(), "log ts %q", l.Str("ts"))
		out = append(out, t)
	}
	return out
}

// afterKill describes what a killed pass left for the next one: staging dirs, profiles without a
// slot, slots without a supervisor, stale slots; "nothing" when the tree is converged.
func (e *Env) afterKill(profiles []string) string {
	var left []string
	entries, _ := os.ReadDir(e.Scandir)
	slots := map[string]bool{}
	for _, ent := range entries {
		switch n := ent.Name(); {
		case strings.HasPrefix(n, ".gateway-"):
			left = append(left, "staging "+n)
		case strings.HasPrefix(n, "gateway-"):
			slots[strings.TrimPrefix(n, "gateway-")] = true
		}
	}
	for _, p := range profiles {
		switch {
		case !slots[p]:
			left = append(left, "no slot for "+p)
		case e.Svstat("gateway-" + p)["supervised"] != "true":
			left = append(left, "unsupervised "+p)
		}
		delete(slots, p)
	}
	for s := range slots {
		left = append(left, "stale slot "+s)
	}
	if len(left) == 0 {
		return "nothing"
	}
	sort.Strings(left)
	return strings.Join(left, ", ")
}

// readFileOr returns the file's content, or "" when it cannot be read.
func readFileOr(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}
