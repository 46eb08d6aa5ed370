package s6_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/s6"
)

const (
	sleepRun  = "#!/bin/sh\nexec sleep 1000\n"
	waitLimit = 5 * time.Second
)

func runFile(script string) s6.File { return s6.File{Name: "run", Data: []byte(script), Mode: 0o755} }

// cleanupSlot stops and removes a slot after the spec (the controller's unregister sequence),
// and waits for its supervisor to exit, so its processes do not outlive the spec.
func cleanupSlot(name, dir string) {
	DeferCleanup(func(ctx SpecContext) {
		v, err := s6.ReadSupervision(dir)
		Expect(err).NotTo(HaveOccurred())
		if v.Supervised {
			_ = client.Down(ctx, dir)
			_ = client.Kill(ctx, dir)
		}
		Expect(s6.RemoveSlot(scandir, name)).To(Succeed())
		Expect(client.RescanPrune(ctx, scandir)).To(Succeed())
		if v.Supervised {
			Eventually(func() bool { return alive(v.SupervisorPID) }).WithTimeout(waitLimit).Should(BeFalse(),
				"supervisor %d of %s still running after the prune", v.SupervisorPID, dir)
		}
	})
}

// startSlot creates a slot, has s6-svscan pick it up and waits for its supervisor.
func startSlot(ctx context.Context, files []s6.File, down bool) (string, string) {
	name, dir := newSlot()
	Expect(s6.CreateSlot(scandir, name, files, down, nil)).To(Succeed())
	cleanupSlot(name, dir)
	Expect(client.Rescan(ctx, scandir)).To(Succeed())
	Expect(s6.WaitSupervised(ctx, dir, waitLimit)).To(Succeed())
	return name, dir
}

func read(g Gomega, dir string) s6.Supervision {
	v, err := s6.ReadSupervision(dir)
	g.ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return v
}

// nativeO renders the native reading the way s6-svstat -o prints the given fields (2.11).
func nativeO(v s6.Supervision, dir string, fields ...string) string {
	st := v.Status
	var out []string
	for _, f := range fields {
		switch f {
		case "up":
			out = append(out, strconv.FormatBool(st.Up()))
		case "wantedup":
			out = append(out, strconv.FormatBool(st.WantUp))
		case "normallyup":
			_, err := os.Lstat(filepath.Join(dir, "down"))
			out = append(out, strconv.FormatBool(err != nil))
		case "ready":
			out = append(out, strconv.FormatBool(st.Up() && st.Ready))
		case "pid":
			pid := -1
			if st.Up() {
				pid = st.PID
			}
			out = append(out, strconv.Itoa(pid))
		case "exitcode":
			code, _ := st.ExitCode()
			out = append(out, strconv.Itoa(code))
		default:
			Fail("nativeO: unknown field " + f)
		}
	}
	return strings.Join(out, " ")
}

// expectMatchesSvstat waits until the native reader and s6-svstat agree on fields while the
// status file stays the same across both readings.
func expectMatchesSvstat(dir string, fields ...string) {
	EventuallyWithOffset(1, func(g Gomega) {
		v1 := read(g, dir)
		out, rc := svstat("-o", strings.Join(fields, ","), dir)
		g.Expect(rc).To(Equal(0), out)
		v2 := read(g, dir)
		g.Expect(v2).To(Equal(v1), "status changed while comparing")
		g.Expect(v1.Supervised).To(BeTrue())
		g.Expect(nativeO(v1, dir, fields...)).To(Equal(out))
	}).WithTimeout(waitLimit).Should(Succeed())
}

var _ = Describe("ReadSupervision against a realDir s6-svscan", func() {
	It("reports a started service as up, with the pid s6-svstat prints", func(ctx SpecContext) {
		_, dir := startSlot(ctx, []s6.File{runFile(sleepRun)}, false)
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())

		v := read(Default, dir)
		Expect(v.Supervised).To(BeTrue())
		Expect(v.WantUp()).To(BeTrue())
		Expect(comm(v.SupervisorPID)).To(Equal("s6-supervise"))
		// The pid is in the status as soon as s6-supervise forks; the exec chain follows.
		Eventually(func() string { return comm(v.Status.PID) }).Should(Equal("sleep"))
		out, rc := svstat("-o", "up,pid,wantedup", dir)
		Expect(rc).To(Equal(0))
		Expect(out).To(Equal("true " + strconv.Itoa(v.Status.PID) + " true"))
	})

	It("reports a slot created with down as supervised, not up and not wanted up", func(ctx SpecContext) {
		_, dir := startSlot(ctx, []s6.File{runFile(sleepRun)}, true)
		v := read(Default, dir)
		Expect(v.Supervised).To(BeTrue())
		Expect(v.HasStatus).To(BeTrue())
		Expect(v.Up()).To(BeFalse())
		Expect(v.WantUp()).To(BeFalse())
		expectMatchesSvstat(dir, "up", "wantedup", "normallyup", "pid")
		out, _ := svstat("-o", "up,wantedup,normallyup,pid", dir)
		Expect(out).To(Equal("false false false -1"))
	})

	DescribeTable("agrees with s6-svstat -o up,wantedup,pid,exitcode",
		func(ctx SpecContext, run string, down bool, drive func(dir string), settled func(s6.Status) bool) {
			_, dir := startSlot(ctx, []s6.File{runFile(run)}, down)
			drive(dir)
			Eventually(func(g Gomega) { g.Expect(settled(read(g, dir).Status)).To(BeTrue()) }).
				WithTimeout(waitLimit).Should(Succeed())
			expectMatchesSvstat(dir, "up", "wantedup", "pid", "exitcode", "ready", "normallyup")
		},
		Entry("up", sleepRun, false, func(string) {},
			func(st s6.Status) bool { return st.Up() }),
		Entry("down by signal", sleepRun, false, func(dir string) {
			Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
			Expect(client.Down(context.Background(), dir)).To(Succeed())
		}, func(st s6.Status) bool { sig, ok := st.Signal(); return !st.Up() && ok && sig == 15 && st.Ready }),
		Entry("exited with code 3", "#!/bin/sh\nexit 3\n", true, func(dir string) {
			svc("-o", dir) // run once: no restart after it exits
		}, func(st s6.Status) bool { code, ok := st.ExitCode(); return ok && code == 3 && st.Ready }),
	)

	It("reports a slot that was never scanned as unsupervised, without error", func(ctx SpecContext) {
		sd := quietScandir()
		dir := filepath.Join(sd, "gateway-x")
		Expect(s6.CreateSlot(sd, "gateway-x", []s6.File{runFile(sleepRun)}, false, nil)).To(Succeed())
		v, err := s6.ReadSupervision(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(Equal(s6.Supervision{}))
		_, rc := svstat(dir)
		Expect(rc).To(Equal(1), "s6-svstat: no supervisor")

		start := time.Now()
		err = s6.WaitSupervised(ctx, dir, 50*time.Millisecond)
		Expect(err).To(MatchError(ContainSubstring(dir)))
		Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue())
		Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second))

		v, err = s6.ReadSupervision(filepath.Join(tmpRoot, "does-not-exist"))
		Expect(err).NotTo(HaveOccurred())
		Expect(v).To(Equal(s6.Supervision{}))
	})

	It("WaitAllSupervised waits for a whole batch, and fails only the dirs s6-svscan never picks up", func(ctx SpecContext) {
		// More never-picked dirs first than one poll reads (pollWindow), then the real slots:
		// the polls must come round to the slots behind them.
		var dirs []string
		quiet := quietScandir()
		for i := range 10 {
			name := fmt.Sprintf("gateway-never%d", i)
			Expect(s6.CreateSlot(quiet, name, []s6.File{runFile(sleepRun)}, true, nil)).To(Succeed())
			dirs = append(dirs, filepath.Join(quiet, name))
		}
		var slots []string
		for range 12 {
			name, dir := newSlot()
			Expect(s6.CreateSlot(scandir, name, []s6.File{runFile(sleepRun)}, true, nil)).To(Succeed())
			cleanupSlot(name, dir)
			slots = append(slots, dir)
		}
		dirs = append(dirs, slots...)
		Expect(client.Rescan(ctx, scandir)).To(Succeed())

		errs := s6.WaitAllSupervised(ctx, dirs, 300*time.Millisecond)
		Expect(errs).To(HaveLen(len(dirs)))
		for i, err := range errs[:10] {
			Expect(err).To(MatchError(ContainSubstring("picked up no slot of the batch")), "dir %d", i)
			Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue())
		}
		for i, err := range errs[10:] {
			Expect(err).NotTo(HaveOccurred(), "slot %d", i)
			Expect(read(Default, slots[i]).Supervised).To(BeTrue())
		}
		Expect(s6.WaitAllSupervised(ctx, slots, time.Second)).To(HaveEach(BeNil()), "a batch already up")
		Expect(s6.WaitAllSupervised(ctx, nil, time.Second)).To(BeEmpty())
	})

	It("WaitSupervised stops when its context ends", func() {
		_, dir := newSlot()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s6.WaitSupervised(ctx, dir, time.Minute)
		Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "%v", err)
	})

	It("reports a stale status once the supervisor is gone", func(ctx SpecContext) {
		name, dir := startSlot(ctx, []s6.File{runFile(sleepRun)}, false)
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
		supPID := read(Default, dir).SupervisorPID
		Expect(client.Down(ctx, dir)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeFalse()) }).WithTimeout(waitLimit).Should(Succeed())

		moved := filepath.Join(tmpRoot, "moved-"+name)
		Expect(os.Rename(dir, moved)).To(Succeed())
		DeferCleanup(os.RemoveAll, moved)
		Expect(client.RescanPrune(ctx, scandir)).To(Succeed())
		Eventually(func(g Gomega) {
			v := read(g, moved)
			g.Expect(v.Supervised).To(BeFalse())
			g.Expect(v.SupervisorPID).To(BeZero())
			g.Expect(v.HasStatus).To(BeTrue())
			g.Expect(v.Up()).To(BeFalse())
		}).WithTimeout(waitLimit).Should(Succeed())
		Eventually(func() bool { return alive(supPID) }).WithTimeout(waitLimit).Should(BeFalse())
		_, rc := svstat(moved)
		Expect(rc).To(Equal(1))
	})

	It("refuses symlinks, non-regular files and bad sizes, without blocking", func() {
		base := filepath.Join(tmpRoot, "bad-"+strconv.Itoa(slotSeq))
		mk := func(name string) string {
			d := filepath.Join(base, name)
			Expect(os.MkdirAll(d, 0o755)).To(Succeed())
			return d
		}
		DeferCleanup(os.RemoveAll, base)

		d := mk("sup-link")
		Expect(os.Symlink(mk("elsewhere"), filepath.Join(d, "supervise"))).To(Succeed())
		_, err := s6.ReadSupervision(d)
		Expect(err).To(MatchError(And(ContainSubstring(d+"/supervise"), ContainSubstring("symlink"))))

		d = mk("lock-fifo")
		Expect(os.Mkdir(filepath.Join(d, "supervise"), 0o700)).To(Succeed())
		Expect(mkfifo(filepath.Join(d, "supervise", "lock"))).To(Succeed())
		_, err = s6.ReadSupervision(d)
		Expect(err).To(MatchError(ContainSubstring(d + "/supervise/lock")))

		d = mk("lock-dir")
		Expect(os.MkdirAll(filepath.Join(d, "supervise", "lock"), 0o700)).To(Succeed())
		_, err = s6.ReadSupervision(d)
		Expect(err).To(MatchError(And(ContainSubstring(d+"/supervise/lock"), ContainSubstring("not a regular file"))))

		d = mk("short-status")
		Expect(os.Mkdir(filepath.Join(d, "supervise"), 0o700)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(d, "supervise", "status"), make([]byte, 10), 0o644)).To(Succeed())
		_, err = s6.ReadSupervision(d)
		Expect(err).To(MatchError(And(ContainSubstring(d+"/supervise/status"), ContainSubstring("10 bytes"))))

		d = mk("huge-status")
		Expect(os.Mkdir(filepath.Join(d, "supervise"), 0o700)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(d, "supervise", "status"), make([]byte, 100000), 0o644)).To(Succeed())
		_, err = s6.ReadSupervision(d)
		Expect(err).To(MatchError(ContainSubstring(d + "/supervise/status")))

		d = mk("status-fifo")
		Expect(os.Mkdir(filepath.Join(d, "supervise"), 0o700)).To(Succeed())
		Expect(mkfifo(filepath.Join(d, "supervise", "status"))).To(Succeed())
		_, err = s6.ReadSupervision(d)
		Expect(err).To(MatchError(ContainSubstring(d + "/supervise/status")))

		d = mk("status-link")
		Expect(os.Mkdir(filepath.Join(d, "supervise"), 0o700)).To(Succeed())
		realDir := filepath.Join(base, "real-status")
		Expect(os.WriteFile(realDir, make([]byte, 35), 0o644)).To(Succeed())
		Expect(os.Symlink(realDir, filepath.Join(d, "supervise", "status"))).To(Succeed())
		_, err = s6.ReadSupervision(d)
		Expect(err).To(MatchError(ContainSubstring("symlink")))
	})
})

var _ = Describe("Client against a realDir s6-svscan", func() {
	It("toggles a service down and up", func(ctx SpecContext) {
		_, dir := startSlot(ctx, []s6.File{runFile(sleepRun)}, false)
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
		first := read(Default, dir).Status.PID

		Expect(client.Down(ctx, dir)).To(Succeed())
		Eventually(func(g Gomega) {
			v := read(g, dir)
			g.Expect(v.Up()).To(BeFalse())
			g.Expect(v.WantUp()).To(BeFalse())
		}).Should(Succeed())
		out, _ := svstat("-o", "up,wantedup", dir)
		Expect(out).To(Equal("false false"))
		Eventually(func() bool { return alive(first) }).Should(BeFalse())

		Expect(client.Up(ctx, dir)).To(Succeed())
		Eventually(func(g Gomega) {
			v := read(g, dir)
			g.Expect(v.Up()).To(BeTrue())
			g.Expect(v.WantUp()).To(BeTrue())
			g.Expect(v.Status.PID).NotTo(Equal(first))
		}).Should(Succeed())
		expectMatchesSvstat(dir, "up", "wantedup", "pid")
	})

	It("Kill brings down a service that ignores its down-signal", func(ctx SpecContext) {
		_, dir := startSlot(ctx, []s6.File{runFile("#!/bin/sh\ntrap '' TERM\nexec sleep 1000\n")}, false)
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
		pid := read(Default, dir).Status.PID

		Expect(client.Down(ctx, dir)).To(Succeed())
		Consistently(func() bool { return alive(pid) }).WithTimeout(300*time.Millisecond).Should(BeTrue(), "SIGTERM is ignored")
		Expect(client.Kill(ctx, dir)).To(Succeed()) // SIGKILL cannot be ignored
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeFalse()) }).WithTimeout(waitLimit).Should(Succeed())
		Expect(alive(pid)).To(BeFalse())
	})

	It("RemoveSlot then RescanPrune stops the supervisor and its service", func(ctx SpecContext) {
		name, dir := newSlot()
		Expect(s6.CreateSlot(scandir, name, []s6.File{runFile(sleepRun)}, false, nil)).To(Succeed())
		Expect(client.Rescan(ctx, scandir)).To(Succeed())
		Expect(s6.WaitSupervised(ctx, dir, waitLimit)).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(read(g, dir).Up()).To(BeTrue()) }).Should(Succeed())
		v := read(Default, dir)

		Expect(s6.RemoveSlot(scandir, name)).To(Succeed())
		Expect(dir).NotTo(BeAnExistingFile())
		// Without the prune, the supervisor keeps running in its deleted directory.
		Expect(alive(v.SupervisorPID)).To(BeTrue())
		Expect(client.RescanPrune(ctx, scandir)).To(Succeed())
		Eventually(func() bool { return alive(v.SupervisorPID) || alive(v.Status.PID) }).
			WithTimeout(waitLimit).Should(BeFalse())
		got, err := s6.ReadSupervision(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Supervised).To(BeFalse())
		_, rc := svstat(dir)
		Expect(rc).To(Equal(1))
	})

	It("returns s6-svc's exit status and stderr for an unsupervised dir", func(ctx SpecContext) {
		sd := quietScandir()
		dir := filepath.Join(sd, "gateway-x")
		Expect(s6.CreateSlot(sd, "gateway-x", []s6.File{runFile(sleepRun)}, true, nil)).To(Succeed())
		err := client.Up(ctx, dir)
		var ce *s6.CmdError
		Expect(errors.As(err, &ce)).To(BeTrue(), "%v", err)
		Expect(ce.ExitCode).To(Equal(100)) // 2.11; 2.15 exits 102
		Expect(ce.Path).To(Equal(filepath.Join(binDir, "s6-svc")))
		Expect(err.Error()).To(HavePrefix(filepath.Join(binDir, "s6-svc") + " -u " + dir + ": exit status 100: "))
		Expect(err.Error()).To(ContainSubstring("supervisor not listening"))
	})

	It("names the binary's path when it is missing", func(ctx SpecContext) {
		bad := &s6.Client{BinDir: filepath.Join(tmpRoot, "no-such-bin")}
		err := bad.Up(ctx, filepath.Join(scandir, "gateway-x"))
		Expect(err).To(MatchError(ContainSubstring(filepath.Join(tmpRoot, "no-such-bin", "s6-svc"))))
		err = bad.RescanPrune(ctx, scandir)
		Expect(err).To(MatchError(ContainSubstring(filepath.Join(tmpRoot, "no-such-bin", "s6-svscanctl"))))
	})

	It("kills a hung command and its children when the timeout runs out", func(ctx SpecContext) {
		fake := filepath.Join(tmpRoot, "fake-bin-"+strconv.Itoa(slotSeq))
		Expect(os.MkdirAll(fake, 0o755)).To(Succeed())
		DeferCleanup(os.RemoveAll, fake)
		pidFile := filepath.Join(fake, "child.pid")
		// A legitimate fake for a hang: a child that would keep stderr open for 30 s.
		script := "#!/bin/sh\nsleep 30 &\necho $! > " + pidFile + "\nwait\n"
		Expect(os.WriteFile(filepath.Join(fake, "s6-svc"), []byte(script), 0o755)).To(Succeed())

		c := &s6.Client{BinDir: fake, Timeout: 200 * time.Millisecond}
		start := time.Now()
		err := c.Up(ctx, filepath.Join(scandir, "gateway-x"))
		elapsed := time.Since(start)
		Expect(err).To(MatchError(ContainSubstring("s6-svc -u")))
		Expect(err).To(MatchError(ContainSubstring("timed out after 200ms")))
		Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue())
		// The whole process group is killed, so Run does not wait for WaitDelay (1 s).
		Expect(elapsed).To(BeNumerically("<", 900*time.Millisecond))
		b, rerr := os.ReadFile(pidFile)
		Expect(rerr).NotTo(HaveOccurred())
		child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		Expect(child).To(BeNumerically(">", 0))
		Eventually(func() bool { return alive(child) }).WithTimeout(waitLimit).Should(BeFalse())
	})

	It("gives up at once when the context is already cancelled", func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := client.Rescan(ctx, scandir)
		Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "%v", err)
	})
})
