package reconciler_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// TestReconciler runs the Ginkgo specs (executor and loop, against a real s6-svscan). They use
// only the package's exported API; the planner and renderer tests are plain table tests inside
// the package.
func TestReconciler(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Reconciler Suite")
}

// s6BinDir is where Debian's s6 (apt-get install s6) puts its binaries.
const s6BinDir = "/usr/bin"

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(10 * time.Second)
	SetDefaultEventuallyPollingInterval(10 * time.Millisecond)
	SetDefaultConsistentlyDuration(time.Second)
	SetDefaultConsistentlyPollingInterval(20 * time.Millisecond)
})

// requireS6 skips the spec when s6 is not installed, and fails it when CI is set.
func requireS6() {
	for _, name := range []string{"s6-svscan", "s6-supervise", "s6-svscanctl", "s6-svc", "s6-svstat"} {
		if _, err := os.Stat(filepath.Join(s6BinDir, name)); err != nil {
			if os.Getenv("CI") != "" {
				Fail(fmt.Sprintf("s6 is required when CI is set: %v (apt-get install s6)", err))
			}
			Skip(fmt.Sprintf("%s/%s not found (apt-get install s6); with CI set this fails instead", s6BinDir, name))
		}
	}
}

// testRoot makes a fresh temp dir for one spec (symlinks resolved, so it can be matched
// against /proc/<pid>/cwd) and removes it after the spec.
func testRoot() string {
	dir, err := os.MkdirTemp("", "reconciler-")
	Expect(err).NotTo(HaveOccurred())
	dir, err = filepath.EvalSymlinks(dir)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	return dir
}

// svscan is a real s6-svscan on <root>/scandir, started for one spec.
type svscan struct {
	root, scandir, logPath string
	cmd                    *exec.Cmd
	exited                 chan struct{}
}

// startSvscan starts s6-svscan on a new scandir under root and registers its teardown, which
// stops it and makes sure no process started for root survives.
func startSvscan(root string) *svscan {
	sv := &svscan{root: root, scandir: filepath.Join(root, "scandir"), logPath: filepath.Join(root, "svscan.log"), exited: make(chan struct{})}
	Expect(os.Mkdir(sv.scandir, 0o755)).To(Succeed())
	logf, err := os.Create(sv.logPath)
	Expect(err).NotTo(HaveOccurred())
	defer logf.Close()
	sv.cmd = exec.Command(filepath.Join(s6BinDir, "s6-svscan"), sv.scandir)
	sv.cmd.Stdout, sv.cmd.Stderr = logf, logf
	// A session of its own, as under s6-overlay: signals to the test never reach it.
	sv.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	Expect(sv.cmd.Start()).To(Succeed())
	go func() {
		_ = sv.cmd.Wait()
		close(sv.exited)
	}()
	DeferCleanup(sv.stop)
	client := &s6.Client{BinDir: s6BinDir}
	Eventually(func() error { return client.Rescan(context.Background(), sv.scandir) }).Should(Succeed(),
		"s6-svscan never listened on %s", sv.scandir)
	return sv
}

// stop dumps s6's view when the spec failed, tells s6-svscan to bring everything down and
// exit, and waits until no supervisor or service of this root is left. Whatever survives is
// killed (by pid) and fails the spec.
func (sv *svscan) stop() {
	if CurrentSpecReport().Failed() {
		sv.dump()
	}
	out, err := exec.Command(filepath.Join(s6BinDir, "s6-svscanctl"), "-t", sv.scandir).CombinedOutput()
	if err != nil {
		GinkgoWriter.Printf("s6-svscanctl -t: %v: %s; killing s6-svscan\n", err, out)
		_ = sv.cmd.Process.Kill()
	}
	select {
	case <-sv.exited:
	case <-time.After(10 * time.Second):
		_ = sv.cmd.Process.Kill()
		<-sv.exited
		Fail("s6-svscan did not exit within 10s of s6-svscanctl -t")
	}
	// Deferred, so that it also runs when the assertion below fails the spec.
	defer func() {
		for _, p := range procsUnder(sv.root) {
			pid, _ := strconv.Atoi(strings.Fields(p)[0])
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}()
	Eventually(func() []string { return procsUnder(sv.root) }).WithTimeout(10*time.Second).Should(BeEmpty(),
		"processes survived s6-svscan under %s", sv.root)
}

// dump writes the s6-svscan log and s6-svstat of every slot to the spec's output.
func (sv *svscan) dump() {
	if b, err := os.ReadFile(sv.logPath); err == nil {
		GinkgoWriter.Printf("---- s6-svscan log ----\n%s---- end ----\n", b)
	}
	slots, _ := filepath.Glob(filepath.Join(sv.scandir, "gateway-*"))
	for _, s := range slots {
		for _, dir := range []string{s, filepath.Join(s, "log")} {
			out, _ := exec.Command(filepath.Join(s6BinDir, "s6-svstat"), dir).CombinedOutput()
			GinkgoWriter.Printf("s6-svstat %s: %s", dir, out)
		}
	}
}

// procsUnder lists the live processes whose working directory is root or below it: s6-svscan,
// every s6-supervise and every service they start run there.
func procsUnder(root string) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue // gone, or a zombie
		}
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if cwd != root && !strings.HasPrefix(cwd, root+"/") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) S …": skip zombies, whose reaping is their parent's business.
		if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, fmt.Sprintf("%s %s (in %s)", e.Name(), bytes.TrimSpace(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})), cwd))
	}
	return out
}

// call is one Services or Scanner call seen by the fake, with what the slot looked like then.
type call struct {
	// Op is "up", "down", "down-wait", "rescan" or "rescan-prune"; Slot the slot's base name
	// ("" for the scanner's calls).
	Op, Slot string
	// Down: the slot had ./down when the call was made. Exists: the slot existed.
	Down, Exists bool
	// Slots lists the scandir's gateway-* entries at a scanner call.
	Slots []string
}

func (c call) String() string {
	if c.Slot == "" {
		return c.Op
	}
	return c.Op + " " + c.Slot
}

// fakeS6 is the suite's one hand-written fake of the executor's s6 seams (Services and
// Scanner). It records every call with a snapshot of the slot, fails calls it was told to fail,
// and forwards the others to a real s6.Client (when it has one).
type fakeS6 struct {
	real *s6.Client

	mu    sync.Mutex
	calls []call
	fail  map[string]error // by call.String(): "up gateway-coder", "rescan"
}

var (
	_ reconciler.Services = (*fakeS6)(nil)
	_ reconciler.Scanner  = (*fakeS6)(nil)
)

// failOn makes every later call named key ("rescan", "up gateway-x") fail with err; a nil err
// clears it.
func (f *fakeS6) failOn(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail == nil {
		f.fail = map[string]error{}
	}
	if err == nil {
		delete(f.fail, key)
		return
	}
	f.fail[key] = err
}

// Calls returns the recorded calls.
func (f *fakeS6) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// Ops returns the recorded calls as "op slot" strings.
func (f *fakeS6) Ops() []string {
	var out []string
	for _, c := range f.Calls() {
		out = append(out, c.String())
	}
	return out
}

func (f *fakeS6) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func (f *fakeS6) record(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.fail[c.String()]
}

func (f *fakeS6) service(op, dir string, forward func(*s6.Client) error) error {
	c := call{Op: op, Slot: filepath.Base(dir)}
	if _, err := os.Lstat(dir); err == nil {
		c.Exists = true
	}
	if _, err := os.Lstat(filepath.Join(dir, "down")); err == nil {
		c.Down = true
	}
	if err := f.record(c); err != nil {
		return err
	}
	if f.real == nil {
		return nil
	}
	return forward(f.real)
}

func (f *fakeS6) scanner(op, scandir string, forward func(*s6.Client) error) error {
	names, _ := filepath.Glob(filepath.Join(scandir, "gateway-*"))
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	sort.Strings(names)
	if err := f.record(call{Op: op, Slots: names}); err != nil {
		return err
	}
	if f.real == nil {
		return nil
	}
	return forward(f.real)
}

func (f *fakeS6) Up(ctx context.Context, dir string) error {
	return f.service("up", dir, func(c *s6.Client) error { return c.Up(ctx, dir) })
}

func (f *fakeS6) Down(ctx context.Context, dir string) error {
	return f.service("down", dir, func(c *s6.Client) error { return c.Down(ctx, dir) })
}

func (f *fakeS6) Kill(ctx context.Context, dir string) error {
	return f.service("kill", dir, func(c *s6.Client) error { return c.Kill(ctx, dir) })
}

func (f *fakeS6) Rescan(ctx context.Context, scandir string) error {
	return f.scanner("rescan", scandir, func(c *s6.Client) error { return c.Rescan(ctx, scandir) })
}

func (f *fakeS6) RescanPrune(ctx context.Context, scandir string) error {
	return f.scanner("rescan-prune", scandir, func(c *s6.Client) error { return c.RescanPrune(ctx, scandir) })
}

// errInjected is what the fake returns for a call it was told to fail.
var errInjected = errors.New("injected failure")

// Test templates: a gateway that just sleeps and a logger that swallows its input, so that
// specs need neither hermes nor s6-overlay's /command/with-contenv.
var sleepTemplates = reconciler.Templates{
	Run:    "#!/bin/sh\nexec sleep 1000\n",
	LogRun: "#!/bin/sh\nexec cat >/dev/null\n",
}

// supervision reads a slot's supervisor state for Eventually.
func supervision(dir string) func(Gomega) s6.Supervision {
	return func(g Gomega) s6.Supervision {
		v, err := s6.ReadSupervision(dir)
		g.Expect(err).NotTo(HaveOccurred())
		return v
	}
}

// exists reports whether path exists (lstat).
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// testRules are short enough for specs and long enough not to matter unless a spec wants them.
var testRules = reconciler.Rules{SettlePeriod: 15 * time.Second, MinUptime: 10 * time.Second}

// profileOf is a desired profile with both intents set to intent, written a minute ago.
func profileOf(name string, intent desired.Intent) desired.Profile {
	return desired.Profile{
		Name: name, Dir: "/srv/hermes/profiles/" + name, Port: desired.Port(name),
		BootIntent: intent, Intent: intent, HasStateFile: true, StateModTime: time.Now().Add(-time.Minute),
	}
}

func actionStrings(acts []reconciler.Action) []string {
	out := []string{}
	for _, a := range acts {
		out = append(out, a.String())
	}
	return out
}
