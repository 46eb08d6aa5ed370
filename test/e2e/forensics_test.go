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

var _ = Describe("exit forensics: the lifecycle ledger and the heartbeat", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	ledger := func(name, content string) {
		dir := filepath.Join(env.ProfileDir(name), "state")
		Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "gateway.lifecycle.json"), []byte(content), 0o644)).To(Succeed())
	}
	bootLine := func(name string) string {
		b, err := os.ReadFile(env.BootLogPath())
		Expect(err).NotTo(HaveOccurred())
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, " profile="+name+" ") {
				return l
			}
		}
		Fail("no boot-log line for " + name + ":\n" + string(b))
		return ""
	}

	It("logs prior_exit clean, unclean or unknown at boot from each gateway's ledger", func() {
		env = NewEnv()
		for _, n := range []string{"cleanly", "killed", "fresh", "broken"} {
			env.Profile(n, map[string]any{"desired_state": "running"})
		}
		ledger("cleanly", `{"phase":"exited","pid":41,"exit_code":0}`)
		ledger("killed", `{"phase":"running","pid":42}`)
		ledger("broken", `{"phase":`)
		env.StartSvscan()
		_, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), stderr)
		Expect(bootLine("cleanly")).To(HaveSuffix(" prior_exit=clean folded_into_root=False"))
		Expect(bootLine("killed")).To(HaveSuffix(" prior_exit=unclean folded_into_root=False"))
		Expect(bootLine("fresh")).To(HaveSuffix(" prior_exit=unknown folded_into_root=False"))
		Expect(bootLine("broken")).To(HaveSuffix(" prior_exit=unknown folded_into_root=False"))

		By("the fake gateway's own ledger: the container stops (SIGTERM), the next boot says clean")
		Eventually(func(g Gomega) { env.ExpectSettled(g, "fresh") }).WithTimeout(convergeTimeout).Should(Succeed())
		env.StopSvscan()
		env.WipeRun()
		env.StartSvscan()
		before := len(strings.Split(string(must(os.ReadFile(env.BootLogPath()))), "\n"))
		_, stderr, code = env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), stderr)
		lines := strings.Split(string(must(os.ReadFile(env.BootLogPath()))), "\n")
		var second string
		for _, l := range lines[before-1:] {
			if strings.Contains(l, " profile=fresh ") {
				second = l
			}
		}
		Expect(second).To(HaveSuffix(" prior_exit=clean folded_into_root=False"), "second boot: %q", lines[before-1:])
	})

	It("reports Stale in status when s6 says up but the heartbeat is old, and never acts on it", func() {
		env = NewEnvWith(Options{RunTemplate: "#!/bin/sh\nexport FAKE_GATEWAY_HEARTBEAT=1h\nexec " + shquote(fakeGatewayBin) +
			" --state-file {{shquote .ProfileDir}}/gateway_state.json\n"})
		env.SetConfigDuration("heartbeatTimeout", time.Second)
		env.RunningProfiles("alpha")
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "alpha") })
		pid := env.SupervisedPid("alpha")
		Eventually(func(g Gomega) {
			stdout, _, _ := env.CLI("status", "-o", "json")
			g.Expect(stdout).To(MatchRegexp(`"profile": "alpha"[\s\S]*"stale": true`))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		stdout, _, code := env.CLI("describe", "alpha")
		Expect(code).To(Equal(0))
		Expect(stdout).To(MatchRegexp(`(?m)^  Stale +True`))
		Expect(env.SupervisedPid("alpha")).To(Equal(pid), "a stale gateway is reported, never restarted")
		env.StopController()
	})
})

func must[T any](v T, err error) T {
	Expect(err).NotTo(HaveOccurred())
	return v
}
