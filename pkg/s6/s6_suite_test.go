package s6_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/s6"
)

// binDir is where Debian's s6 lives; the suite runs against the real binaries there.
const binDir = "/usr/bin"

func TestS6(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "s6 Suite")
}

// The suite's one s6-svscan, on a scandir of its own.
var (
	tmpRoot   string
	scandir   string
	svscan    *exec.Cmd
	svscanLog string
	svscanEnd chan error
	client    *s6.Client
	slotSeq   int
)

var _ = BeforeSuite(func() {
	if _, err := os.Stat(filepath.Join(binDir, "s6-svscan")); err != nil {
		if os.Getenv("CI") != "" {
			Fail(fmt.Sprintf("s6 is required in CI: %v (apt-get install s6)", err))
		}
		Skip(fmt.Sprintf("s6-svscan not found in %s (%v): install s6 (apt-get install s6); with CI set this fails instead", binDir, err))
	}
	SetDefaultEventuallyTimeout(5 * time.Second)
	SetDefaultEventuallyPollingInterval(5 * time.Millisecond)
	var err error
	tmpRoot, err = os.MkdirTemp("", "s6-suite-")
	Expect(err).NotTo(HaveOccurred())
	// Resolve symlinks so that /proc/*/cwd (always resolved) can be matched against it.
	tmpRoot, err = filepath.EvalSymlinks(tmpRoot)
	Expect(err).NotTo(HaveOccurred())
	scandir = filepath.Join(tmpRoot, "scandir")
	Expect(os.Mkdir(scandir, 0o755)).To(Succeed())

	svscanLog = filepath.Join(tmpRoot, "svscan.log")
	logf, err := os.Create(svscanLog)
	Expect(err).NotTo(HaveOccurred())
	defer logf.Close()
	svscan = exec.Command(filepath.Join(binDir, "s6-svscan"), scandir)
	svscan.Stdout, svscan.Stderr = logf, logf
	// Its own session and process group, like s6-overlay's PID 1 and nothing like the test's.
	svscan.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	Expect(svscan.Start()).To(Succeed())
	svscanEnd = make(chan error, 1)
	go func() { svscanEnd <- svscan.Wait() }()

	client = &s6.Client{BinDir: binDir, Timeout: 5 * time.Second}
	// s6-svscanctl succeeds once s6-svscan listens on .s6-svscan/control.
	Eventually(func() error { return client.Rescan(context.Background(), scandir) }).
		WithTimeout(5 * time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
})

var _ = AfterSuite(func() {
	if svscan == nil || svscan.Process == nil {
		return
	}
	// s6-svscanctl -t: s6-svscan SIGTERMs every supervisor (each stops its service and exits),
	// then exits itself (research §9).
	out, err := exec.Command(filepath.Join(binDir, "s6-svscanctl"), "-t", scandir).CombinedOutput()
	if err != nil {
		GinkgoWriter.Printf("s6-svscanctl -t: %v: %s; killing s6-svscan %d\n", err, out, svscan.Process.Pid)
		_ = svscan.Process.Kill()
	}
	Eventually(svscanEnd).WithTimeout(10 * time.Second).Should(Receive())
	// Nothing started for this scandir may survive it: no supervisor, no service.
	Eventually(func() []string { return procsUnder(tmpRoot) }).WithTimeout(10*time.Second).Should(BeEmpty(),
		"processes left running under %s", tmpRoot)
	Expect(os.RemoveAll(tmpRoot)).To(Succeed())
})

// On failure, show what s6 saw: the s6-svscan log and s6-svstat of every slot.
var _ = ReportAfterEach(func(r SpecReport) {
	if !r.Failed() || scandir == "" {
		return
	}
	if b, err := os.ReadFile(svscanLog); err == nil {
		GinkgoWriter.Printf("---- s6-svscan log ----\n%s\n", b)
	}
	names, _ := filepath.Glob(filepath.Join(scandir, "gateway-*"))
	for _, n := range names {
		out, _ := exec.Command(filepath.Join(binDir, "s6-svstat"), n).CombinedOutput()
		GinkgoWriter.Printf("s6-svstat %s: %s", n, out)
	}
})

// procsUnder lists live processes (not zombies) whose working directory is under root.
// s6-supervise and the services it starts run in the service directory.
func procsUnder(root string) []string {
	ents, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil || !(cwd == root || strings.HasPrefix(cwd, root+"/")) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		found = append(found, fmt.Sprintf("%d %s (cwd %s)", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), cwd))
	}
	return found
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// comm returns the command name of pid.
func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// newSlot returns a fresh slot name and its directory in the suite's scandir.
func newSlot() (string, string) {
	slotSeq++
	name := fmt.Sprintf("gateway-t%d", slotSeq)
	return name, filepath.Join(scandir, name)
}

// svstat runs the real s6-svstat with args and returns its trimmed stdout and exit code.
func svstat(args ...string) (string, int) {
	cmd := exec.Command(filepath.Join(binDir, "s6-svstat"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return strings.TrimSpace(stderr.String()), ee.ExitCode()
	}
	Expect(err).NotTo(HaveOccurred())
	return strings.TrimSpace(string(out)), 0
}

// svc runs the real s6-svc (for commands Client does not offer).
func svc(args ...string) {
	out, err := exec.Command(filepath.Join(binDir, "s6-svc"), args...).CombinedOutput()
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "s6-svc %v: %s", args, out)
}
