//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("reliability: bad state files, a read-only volume, clock skew, a paused gateway", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	It("logs a state-file warning once when it appears and once when it clears, naming the file; reconcile prints it too", func() {
		env = NewEnv()
		env.RunningProfiles("alpha")
		// Settled: the gateway has persisted "running", so its read-merge-write cannot put the
		// old desired_state back between the writes below (a clear, then the warning again).
		env.StartConverged(func(g Gomega) { env.ExpectSettled(g, "alpha") })
		path := env.StatePath("alpha")
		for range 3 { // the same problem written again is not logged again
			env.WriteStateRaw("alpha", []byte(`{"desired_state":"Running"}`))
		}
		Eventually(func() int { return len(env.LogsMatching("State file warning", path, `desired_state is \"Running\"`)) }).
			WithTimeout(convergeTimeout).Should(Equal(1))

		env.WriteStateRaw("alpha", []byte(`{"desired_state":"running"}`))
		Eventually(func() int { return len(env.LogsMatching("State file warning cleared", path)) }).
			WithTimeout(convergeTimeout).Should(Equal(1))
		Consistently(func() int { return len(env.LogsMatching("State file warning")) }).WithTimeout(time.Second).Should(Equal(1))
		env.StopController()

		env.WriteStateRaw("alpha", []byte("\xef\xbb\xbf{\"desired_state\":\"running\"}"))
		_, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), stderr)
		Expect(stderr).To(ContainSubstring("warning: " + path + ": starts with a UTF-8 byte order mark"))
	})

	It("converges on a read-only volume, records the boot pass, and prints the boot-log error once as a warning", func() {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") != "" {
				Fail("this spec bind-mounts the volume read-only and needs root; CI runs as root")
			}
			Skip("a read-only bind mount needs root")
		}
		env = NewEnv()
		env.RunningProfiles("alpha")
		for _, args := range [][]string{{"--bind", env.Home, env.Home}, {"-o", "remount,ro,bind", env.Home}} {
			out, err := exec.Command("mount", args...).CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "mount %v: %s", args, out)
		}
		DeferCleanup(func() { Expect(exec.Command("umount", env.Home).Run()).To(Succeed()) })
		env.StartSvscan()

		_, stderr, code := env.CLI("reconcile", "--once", "--boot")

		Expect(code).To(Equal(0), "a boot log that cannot be written is a warning: %s", stderr)
		Expect(strings.Count(stderr, "boot log:")).To(Equal(1), stderr)
		Expect(stderr).To(ContainSubstring("warning: boot log:"))
		Expect(stderr).To(ContainSubstring("read-only file system"))
		Expect(filepath.Join(env.RuntimeDir, "boot-done")).To(BeARegularFile())
		Eventually(func(g Gomega) { env.ExpectUp(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())
	})

	It("leaves an operator's s6-svc -d alone for the settle period even when the state file's mtime is in the future", func() {
		env = NewEnv() // settlePeriod 2 s
		env.RunningProfiles("alpha")
		env.StartSvscan()
		_, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), stderr)
		Eventually(func(g Gomega) { env.ExpectSettled(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())
		// A host with a wrong clock wrote the file: the controller first sees it with this mtime.
		future := time.Now().Add(4 * 365 * 24 * time.Hour)
		Expect(os.Chtimes(env.StatePath("alpha"), future, future)).To(Succeed())
		env.StartController()
		Eventually(func(g Gomega) { g.Expect(env.LogsMatching("Starting")).NotTo(BeEmpty()) }).Should(Succeed())
		Eventually(func(g Gomega) { g.Expect(env.StatusJSON(g).Profile(g, "alpha").Phase).To(Equal("Running")) }).Should(Succeed())

		t0 := time.Now()
		out, rc := S6("s6-svc", "-d", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) { env.ExpectDown(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())
		Consistently(func(g Gomega) { env.ExpectDown(g, "alpha") }).WithTimeout(time.Second).WithPolling(25 * time.Millisecond).Should(Succeed())
		Eventually(func(g Gomega) { env.ExpectUp(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(time.Since(t0)).To(BeNumerically(">=", 1500*time.Millisecond), "corrected before the settle period")
		Eventually(func() []string { return env.AppliedActions("alpha") }).Should(ContainElement("start gateway-alpha (drift)"), "the log line follows the action")
		env.StopController()
	})

	It("shows a paused gateway (s6-svc -p) as Paused", func() {
		env = NewEnv()
		env.RunningProfiles("alpha")
		env.StartSvscan()
		_, stderr, code := env.CLI("reconcile", "--once")
		Expect(code).To(Equal(0), stderr)
		Eventually(func(g Gomega) { env.ExpectUp(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())
		out, rc := S6("s6-svc", "-p", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) { g.Expect(env.StatusJSON(g).Profile(g, "alpha").Phase).To(Equal("Paused")) }).
			WithTimeout(convergeTimeout).Should(Succeed())
		out, rc = S6("s6-svc", "-c", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
	})
})
