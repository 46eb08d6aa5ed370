//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// pendingAt parses the time out of a "…: start at <RFC3339>" pending text.
func pendingAt(g Gomega, pending string) time.Time {
	_, at, ok := strings.Cut(pending, " at ")
	g.Expect(ok).To(BeTrue(), "pending %q names no time", pending)
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(at))
	g.Expect(err).NotTo(HaveOccurred(), "pending %q", pending)
	return t
}

var _ = Describe("settle window: a change made to s6 directly is left alone for settlePeriod", func() {
	// minUptime is short here: a stop within minUptime of a controller start is judged by the
	// crash-loop rule, not the settle window, so every external stop below comes later than that.
	const settle, minUptime = 2 * time.Second, time.Second
	var env *Env
	BeforeEach(func() {
		env = NewEnvWith(Options{SettlePeriod: settle})
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
		env.SetConfigDuration("minUptime", minUptime)
	})
	// stayUp asserts that the gateway keeps running with the same pid for longer than minUptime,
	// so that the controller's start of it is judged a success before the spec goes on.
	stayUp := func(name string) {
		pid := env.SupervisedPid(name)
		Consistently(func(g Gomega) {
			env.ExpectUp(g, name)
			g.Expect(env.SupervisedPid(name)).To(Equal(pid))
		}).WithTimeout(minUptime + 300*time.Millisecond).WithPolling(50 * time.Millisecond).Should(Succeed())
	}
	AfterEach(func() { env.DumpOnFailure() })

	It("restarts a gateway stopped by a bare s6-svc -d only after settlePeriod, logged as drift, and never undoes the hermes stop sequence", func() {
		env.RunningProfiles("alpha", "beta")
		env.StartConverged(func(g Gomega) { env.ExpectAllSettled(g, "alpha", "beta") })
		stayUp("alpha")
		beta := env.SupervisedPid("beta")
		alphaBefore := env.SupervisedPid("alpha")

		By("an operator runs s6-svc -d on alpha and writes nothing")
		t0 := time.Now()
		out, rc := S6("s6-svc", "-d", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) { env.ExpectDown(g, "alpha") }).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())

		By("plan prints the pending correction and status shows phase Settling")
		Eventually(func(g Gomega) {
			stdout, stderr, code := env.CLI("plan")
			g.Expect(code).To(Equal(0), stderr)
			g.Expect(stdout).To(ContainSubstring("plan: pending gateway-alpha: Settling: start at "))
			g.Expect(stdout).NotTo(ContainSubstring("gateway-beta"), "beta needs nothing")
			st := env.StatusJSON(g).Profile(g, "alpha")
			g.Expect(st.Phase).To(Equal("Settling"), "%+v", st)
			g.Expect(st.Pending).To(HavePrefix("Settling: start at "))
			// The correction is due settlePeriod after the change (RFC3339 drops the fraction).
			g.Expect(pendingAt(g, st.Pending)).To(BeTemporally("~", t0.Add(settle), 1500*time.Millisecond))
		}).WithTimeout(until(t0.Add(settle - 500*time.Millisecond))).WithPolling(100 * time.Millisecond).Should(Succeed())

		By("alpha stays down for most of the window")
		Consistently(func(g Gomega) {
			env.ExpectDown(g, "alpha")
		}).WithTimeout(until(t0.Add(settle - 250*time.Millisecond))).WithPolling(25 * time.Millisecond).Should(Succeed())
		Expect(env.AppliedActions("alpha")).NotTo(ContainElement(HavePrefix("start")), "started inside the window")

		By("then the controller corrects it, as drift")
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "alpha")
			g.Expect(env.AppliedActions("alpha")).To(ContainElement("start gateway-alpha (drift)"))
		}).WithTimeout(until(t0.Add(settle + 2*time.Second))).WithPolling(25 * time.Millisecond).Should(Succeed())
		Expect(env.SupervisedPid("alpha")).NotTo(Equal(alphaBefore))
		Eventually(func(g Gomega) {
			g.Expect(env.ReadState("alpha")).To(HaveKeyWithValue("gateway_state", "running"))
			g.Expect(env.StatusJSON(g).Profile(g, "alpha").Phase).To(Equal("Running"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		stayUp("alpha")
		starts := len(env.AppliedActions("alpha"))

		By("the hermes stop sequence: s6-svc -d, the gateway persists stopped, then the CLI writes desired_state")
		Expect(os.WriteFile(filepath.Join(env.ProfileDir("alpha"), ".planned-stop"), nil, 0o644)).To(Succeed())
		t1 := time.Now()
		out, rc = S6("s6-svc", "-d", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) {
			env.ExpectDown(g, "alpha")
			g.Expect(env.ReadState("alpha")).To(HaveKeyWithValue("gateway_state", "stopped"))
		}).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
		env.SetDesired("alpha", "stopped")
		Expect(time.Since(t1)).To(BeNumerically("<", settle), "desired_state was not written inside the window; the spec proves nothing")

		Consistently(func(g Gomega) {
			env.ExpectDown(g, "alpha")
		}).WithTimeout(until(t1.Add(settle + 2*time.Second))).WithPolling(25 * time.Millisecond).Should(Succeed())
		Expect(env.AppliedActions("alpha")[starts:]).NotTo(ContainElement(HavePrefix("start")))
		Eventually(func(g Gomega) {
			g.Expect(filepath.Join(env.SlotDir("alpha"), "down")).To(BeAnExistingFile())
			st := env.StatusJSON(g).Profile(g, "alpha")
			g.Expect(st.Phase).To(Equal("Stopped"), "%+v", st)
			g.Expect(st.Pending).To(BeEmpty())
		}).WithTimeout(convergeTimeout).Should(Succeed())

		Expect(env.SupervisedPid("beta")).To(Equal(beta), "an unrelated gateway was restarted")
		Expect(env.AppliedActions("beta")).To(BeEmpty())
		env.StopController()
	})
})

var _ = Describe("crash-loop backoff: a gateway the controller started that dies within minUptime", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	It("waits 10 s, then 20 s before starting an exit-78 gateway again, shows CrashLoopBackOff, and starts at once on a new intent write", func() {
		env = NewEnvWith(Options{RunTemplate: startsRunTemplate("")})
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
		env.SetConfigDuration("minUptime", 3*time.Second)
		env.RunningProfiles("keep")
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "keep") })

		By("adding a profile with desired_state running whose gateway exits 78 (fatal config)")
		Expect(os.MkdirAll(env.ProfileDir("fatal"), 0o755)).To(Succeed())
		fatalConfig := filepath.Join(env.ProfileDir("fatal"), "fatal-config")
		Expect(os.WriteFile(fatalConfig, nil, 0o644)).To(Succeed())
		env.Profile("fatal", map[string]any{"desired_state": "running"})

		var first time.Time
		Eventually(func(g Gomega) {
			starts := env.starts("fatal")
			g.Expect(starts).To(HaveLen(1))
			first = starts[0]
			g.Expect(env.Svstat("gateway-fatal")).To(And(HaveKeyWithValue("up", "false"), HaveKeyWithValue("wantedup", "false"), HaveKeyWithValue("exitcode", "78")))
			st := env.StatusJSON(g).Profile(g, "fatal")
			g.Expect(st.Phase).To(Equal("CrashLoopBackOff"), "%+v", st)
			g.Expect(st.Failures).To(Equal(1), "%+v", st)
			g.Expect(st.ExitCode).To(Equal(78), "%+v", st)
			g.Expect(st.NextStart).NotTo(BeEmpty())
			next, err := time.Parse(time.RFC3339, st.NextStart)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(next).To(BeTemporally("~", first.Add(10*time.Second), 1500*time.Millisecond), "nextStart %s, first start %s", st.NextStart, first)
		}).WithTimeout(convergeTimeout).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(env.AppliedActions("fatal")).To(Equal([]string{"create gateway-fatal (up)"}))

		By("no start during the first backoff (10 s)")
		Consistently(func() []time.Time { return env.starts("fatal") }).
			WithTimeout(until(first.Add(9500 * time.Millisecond))).WithPolling(100 * time.Millisecond).Should(HaveLen(1))
		By("the second start comes 10 s after the first death")
		var second time.Time
		Eventually(func(g Gomega) {
			starts := env.starts("fatal")
			g.Expect(starts).To(HaveLen(2))
			second = starts[1]
		}).WithTimeout(until(first.Add(13 * time.Second))).WithPolling(50 * time.Millisecond).Should(Succeed())
		Expect(second.Sub(first)).To(BeNumerically(">=", 9800*time.Millisecond), "second start too early")
		Eventually(func() []string { return env.AppliedActions("fatal") }).Should(Equal([]string{"create gateway-fatal (up)", "start gateway-fatal"}), "the log line follows the action")

		By("the next backoff is 20 s")
		Eventually(func(g Gomega) {
			st := env.StatusJSON(g).Profile(g, "fatal")
			g.Expect(st.Phase).To(Equal("CrashLoopBackOff"), "%+v", st)
			g.Expect(st.Failures).To(Equal(2), "%+v", st)
			next, err := time.Parse(time.RFC3339, st.NextStart)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(next).To(BeTemporally("~", second.Add(20*time.Second), 1500*time.Millisecond))
		}).WithTimeout(convergeTimeout).WithPolling(100 * time.Millisecond).Should(Succeed())
		Consistently(func() []time.Time { return env.starts("fatal") }).
			WithTimeout(time.Second).WithPolling(100 * time.Millisecond).Should(HaveLen(2))

		By("the operator fixes the config and writes desired_state running again: started at once")
		Expect(os.Remove(fatalConfig)).To(Succeed())
		env.DesiredFollowed("fatal", "running", func(g Gomega) { g.Expect(env.starts("fatal")).To(HaveLen(3)) })
		Eventually(func(g Gomega) {
			st := env.StatusJSON(g).Profile(g, "fatal")
			g.Expect(st.Phase).To(Equal("Running"), "%+v", st)
			g.Expect(st.Failures).To(BeZero(), "%+v", st)
			g.Expect(st.NextStart).To(BeEmpty(), "%+v", st)
		}).WithTimeout(convergeTimeout).Should(Succeed())
		env.StopController()
	})

	It("leaves a gateway that s6 restarts by itself (exit 1) to s6 and reports its deaths", func() {
		env = NewEnvWith(Options{RunTemplate: startsRunTemplate("{{if eq .Name \"flappy\"}}export FAKE_GATEWAY_EXIT_CODE=1\n{{end}}")})
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
		env.SetConfigDuration("minUptime", 3*time.Second)
		env.StartConverged(func(g Gomega) { env.ExpectDown(g, "default") })

		env.Profile("flappy", map[string]any{"desired_state": "running"})
		Eventually(func(g Gomega) {
			g.Expect(len(env.starts("flappy"))).To(BeNumerically(">=", 3), "s6 restarts it about once a second")
		}).WithTimeout(convergeTimeout).WithPolling(100 * time.Millisecond).Should(Succeed())
		created := []string{"create gateway-flappy (up)"}
		Expect(env.AppliedActions("flappy")).To(Equal(created))

		Consistently(func(g Gomega) {
			g.Expect(env.AppliedActions("flappy")).To(Equal(created), "the controller interfered with s6's own restarts")
			g.Expect(env.Svstat("gateway-flappy")).To(HaveKeyWithValue("wantedup", "true"))
		}).WithTimeout(2500 * time.Millisecond).WithPolling(50 * time.Millisecond).Should(Succeed())

		Eventually(func(g Gomega) {
			st := env.StatusJSON(g).Profile(g, "flappy")
			g.Expect(st.Deaths).NotTo(BeNil(), "status has no deaths field")
			g.Expect(*st.Deaths).To(BeNumerically(">", 0), "%+v", st)
			g.Expect(st.Phase).NotTo(Equal("CrashLoopBackOff"), "%+v", st)
			g.Expect(st.Failures).To(BeZero(), "%+v", st)
			g.Expect(st.WantUp).To(BeTrue(), "%+v", st)
			if !st.Up {
				g.Expect(st.ExitCode).To(Equal(1), "last exit")
			}
		}).WithTimeout(convergeTimeout).WithPolling(200 * time.Millisecond).Should(Succeed())
		Expect(len(env.starts("flappy"))).To(BeNumerically(">=", 4))
		Expect(env.AppliedActions("flappy")).To(Equal(created))
		env.StopController()
	})
})
