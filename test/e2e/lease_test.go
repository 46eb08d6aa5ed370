//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Two containers from one image on one HERMES_HOME: each has its own s6 tree and its own
// controller; only the holder of the volume lease runs gateways.
var _ = Describe("volume lease: one owner per volume", func() {
	var envs []*Env
	AfterEach(func() { DumpPeersOnFailure(envs...) })

	names := []string{"alpha", "beta"}
	// resync is the e2e config's resyncPeriod; consistently spans a few of them.
	const consistently = 3500 * time.Millisecond

	It("runs exactly one set of gateways, and the standby takes over when the owner's container dies", func() {
		a := NewEnv()
		b := a.NewPeer()
		envs = []*Env{a, b}
		bAddr := b.UseMetrics()
		a.RunningProfiles(names...)

		// Container A boots first: its cont-init boot pass and its run hold the lease.
		a.StartSvscan()
		stdout, stderr, code := a.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(ContainSubstring("reconcile: profile=alpha prior_state=running action=started"))
		a.StartController()
		Eventually(func(g Gomega) { ExpectOnlyActing(g, a, names) }).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(a.leaseFile()).To(BeARegularFile())
		st, err := os.Lstat(a.leaseFile())
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o600)))

		// Container B boots beside it: its boot pass registers nothing, its run stands by.
		b.StartSvscan()
		stdout, stderr, code = b.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(MatchRegexp(`^standby: HERMES_HOME lease ` + ownedByRE(a.ControllerPid()) + `; nothing registered\n$`))
		b.StartController()
		Eventually(func(g Gomega) {
			code, body := HTTPGet(g, bAddr, "/readyz")
			g.Expect(code).To(Equal(503))
			g.Expect(body).To(MatchRegexp(`^standby: ` + ownedByRE(a.ControllerPid()) + `\n$`))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Consistently(func(g Gomega) {
			ExpectOnlyActing(g, a, names, b)
			a.ExpectControllerAlive(g)
			b.ExpectControllerAlive(g)
		}).WithTimeout(consistently).WithPolling(100 * time.Millisecond).Should(Succeed())

		out, _, code := b.CLI("status")
		Expect(code).To(Equal(0), "a standby is healthy")
		Expect(out).To(MatchRegexp(`^Standby: ` + ownedByRE(a.ControllerPid()) + `\n`))
		out, _, code = b.CLI("describe", "alpha")
		Expect(code).To(Equal(0))
		Expect(out).To(MatchRegexp(`^Standby: ` + ownedByRE(a.ControllerPid()) + `\n`))
		out, _, _ = a.CLI("status")
		Expect(out).NotTo(ContainSubstring("Standby"))
		_, metrics := HTTPGet(Default, bAddr, "/metrics")
		Expect(metrics).To(MatchRegexp(`(?m)^profile_controller_role\{role="standby"\} 1$`))
		Expect(metrics).To(MatchRegexp(`(?m)^profile_controller_role\{role="owner"\} 0$`))
		_, health := HTTPGet(Default, bAddr, "/healthz")
		Expect(health).To(Equal("ok\n"))

		// Container A stops hard: the kernel frees its lock, B takes over with a boot pass.
		bootLines := a.bootLogLines()
		t0 := time.Now()
		a.KillContainer()
		Eventually(func(g Gomega) { ExpectOnlyActing(g, b, names, a) }).WithTimeout(convergeTimeout).Should(Succeed())
		GinkgoWriter.Printf("standby took over %v after the owner's container died\n", time.Since(t0))
		Expect(b.LogsMatching("Lease taken, taking over with a boot pass")).To(HaveLen(1))
		// The boot pass writes its log once its actions are applied: the gateways may be up first.
		Eventually(a.bootLogLines).Should(Equal(bootLines+len(names)+1), "one boot-log line per profile (and default) from B's take-over")
		Eventually(func(g Gomega) {
			code, _ := HTTPGet(g, bAddr, "/readyz")
			g.Expect(code).To(Equal(200))
			_, metrics := HTTPGet(g, bAddr, "/metrics")
			g.Expect(metrics).To(MatchRegexp(`(?m)^profile_controller_role\{role="owner"\} 1$`))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		out, _, _ = b.CLI("status")
		Expect(out).NotTo(ContainSubstring("Standby"))
		b.StopController()
	})

	It("never acts with role standby, from the config or from PROFILE_CONTROLLER_ROLE, even with the lease free", func() {
		a := NewEnv()
		b := a.NewPeer()
		envs = []*Env{a, b}
		a.RunningProfiles(names...)
		a.SetConfig("role", strconv.Quote("standby"))

		a.StartSvscan()
		stdout, stderr, code := a.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(stdout).To(Equal("standby: role standby (configured): never acts; nothing registered\n"))
		a.StartController()
		b.StartSvscan()
		b.StartControllerEnv("PROFILE_CONTROLLER_ROLE=standby")
		Eventually(func(g Gomega) {
			g.Expect(a.LogsMatching("Standby")).NotTo(BeEmpty())
			g.Expect(b.LogsMatching("Standby")).NotTo(BeEmpty())
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Consistently(func(g Gomega) {
			g.Expect(a.Slots(g)).To(BeEmpty())
			g.Expect(b.Slots(g)).To(BeEmpty())
			a.ExpectControllerAlive(g)
			b.ExpectControllerAlive(g)
		}).WithTimeout(consistently).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(a.leaseFile()).NotTo(BeAnExistingFile(), "a standby never touches the lease file")
		out, _, code := a.CLI("status")
		Expect(code).To(Equal(0))
		Expect(out).To(HavePrefix("Standby: role standby (configured): never acts\n"))
		a.StopController()
		b.StopController()
	})

	It("lets exactly one side act when the lease file is replaced, and neither when it is a symlink", func() {
		a, b := ownerAndStandby(names)
		envs = []*Env{a, b}

		// A hostile volume user replaces the lease file with a file of their own. Whoever comes
		// first takes the new one; the other stands by (the old owner steps down if it lost).
		planted := filepath.Join(a.Home, "planted")
		Expect(os.WriteFile(planted, []byte("{}\n"), 0o644)).To(Succeed())
		stopSampling := NeverBoth(a, b)
		Expect(os.Rename(planted, a.leaseFile())).To(Succeed())
		var owner, standby *Env
		Eventually(func(g Gomega) {
			// A looks at its lease once per resync: until it has, A still owning proves nothing.
			g.Expect(len(a.LogsMatching("Lease re-taken"))+len(a.LogsMatching("Lease lost, stepping down"))).
				To(Equal(1), "the owner has noticed the replacement")
			ua, ub := a.UpGateways(g), b.UpGateways(g)
			switch {
			case len(ua) == len(names) && len(b.Slots(g)) == 0:
				owner, standby = a, b
			case len(ub) == len(names) && len(a.Slots(g)) == 0:
				owner, standby = b, a
			default:
				g.Expect(ua).To(BeEmpty(), "both sides run gateways: %v and %v", ua, ub)
			}
			g.Expect(owner).NotTo(BeNil(), "no side runs every gateway alone: %v and %v", ua, ub)
		}).WithTimeout(2 * convergeTimeout).Should(Succeed())
		GinkgoWriter.Printf("after the replacement the owner is %s\n", owner.Root)
		Consistently(func(g Gomega) { ExpectOnlyActing(g, owner, names, standby) }).
			WithTimeout(consistently).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(stopSampling()).To(BeEmpty(), "both sides ran gateways at once")

		// A symlink in its place: nobody can take it, so both stand by; the target is untouched.
		target := filepath.Join(a.Root, "target")
		Expect(os.WriteFile(target, []byte("secret\n"), 0o600)).To(Succeed())
		link := filepath.Join(a.Home, "link.tmp")
		Expect(os.Symlink(target, link)).To(Succeed())
		Expect(os.Rename(link, a.leaseFile())).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(a.Slots(g)).To(BeEmpty())
			g.Expect(b.Slots(g)).To(BeEmpty())
		}).WithTimeout(2 * convergeTimeout).Should(Succeed())
		Expect(owner.LogsMatching("Lease lost, stepping down")).To(HaveLen(1))
		Expect(readFile(target)).To(Equal("secret\n"))
		Consistently(func(g Gomega) {
			g.Expect(a.Slots(g)).To(BeEmpty())
			g.Expect(b.Slots(g)).To(BeEmpty())
		}).WithTimeout(2 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

		// The symlink removed: one side takes over again with a boot pass.
		Expect(os.Remove(a.leaseFile())).To(Succeed())
		Eventually(func(g Gomega) {
			ua, ub := a.UpGateways(g), b.UpGateways(g)
			g.Expect(len(ua) == len(names) && len(b.Slots(g)) == 0 || len(ub) == len(names) && len(a.Slots(g)) == 0).
				To(BeTrue(), "exactly one side runs every gateway: %v and %v", ua, ub)
		}).WithTimeout(2 * convergeTimeout).Should(Succeed())
		Expect(readFile(target)).To(Equal("secret\n"))
		a.StopController()
		b.StopController()
	})

	It("converges on one set again when only the owner's controller is SIGKILLed and restarted (the known window)", func() {
		a, b := ownerAndStandby(names)
		envs = []*Env{a, b}

		// Only A's controller dies; its s6 tree and gateways go on. s6 would restart it.
		ctl := a.controller
		a.controller = nil
		Expect(ctl.Process.Signal(syscall.SIGKILL)).To(Succeed())
		<-a.controllerDone
		a.StartController()
		var owner, standby *Env
		Eventually(func(g Gomega) {
			ua, ub := a.UpGateways(g), b.UpGateways(g)
			switch {
			case len(ua) == len(names) && len(b.Slots(g)) == 0:
				owner, standby = a, b
			case len(ub) == len(names) && len(a.Slots(g)) == 0:
				owner, standby = b, a
			}
			g.Expect(owner).NotTo(BeNil(), "not exactly one set: %v and %v", ua, ub)
		}).WithTimeout(2 * convergeTimeout).Should(Succeed())
		GinkgoWriter.Printf("after the restart the owner is %s\n", owner.Root)
		Consistently(func(g Gomega) { ExpectOnlyActing(g, owner, names, standby) }).
			WithTimeout(consistently).WithPolling(100 * time.Millisecond).Should(Succeed())
		a.StopController()
		b.StopController()
	})

	It("touches no lease file with lease: off", func() {
		a := NewEnv()
		envs = []*Env{a}
		a.SetConfig("lease", strconv.Quote("off"))
		a.RunningProfiles(names...)
		a.StartSvscan()
		_, stderr, code := a.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		a.StartController()
		Eventually(func(g Gomega) { ExpectOnlyActing(g, a, names) }).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(a.leaseFile()).NotTo(BeAnExistingFile())
		Expect(filepath.Join(a.RuntimeDir, "lease.json")).NotTo(BeAnExistingFile())
		out, _, _ := a.CLI("status")
		Expect(out).NotTo(ContainSubstring("Standby"))
		a.StopController()
	})
})
