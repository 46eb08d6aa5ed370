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

// within2s returns the time left of a 2 s budget that started at t0 (the write).
func within2s(t0 time.Time) time.Duration {
	left := 2*time.Second - time.Since(t0)
	if left < 0 {
		return 0
	}
	return left
}

var _ = Describe("3. runtime: desired_state edits are followed within 2 s", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("stops the gateway when desired_state becomes stopped and starts it when it becomes running again", func() {
		env.RunningProfiles("alpha")
		env.Profile("bystander", map[string]any{"gateway_state": "running"})
		env.StartConverged(func(g Gomega) { env.ExpectAllSettled(g, "alpha", "bystander") })
		bystander := env.SupervisedPid("bystander")
		down := filepath.Join(env.SlotDir("alpha"), "down")

		By("writing desired_state: stopped")
		env.DesiredFollowed("alpha", "stopped", func(g Gomega) { g.Expect(down).To(BeAnExistingFile()) })

		By("staying down although the gateway persisted gateway_state: running on its way out")
		Eventually(func(g Gomega) {
			g.Expect(env.ReadState("alpha")).To(And(
				HaveKeyWithValue("gateway_state", "running"), HaveKeyWithValue("desired_state", "stopped")))
		}).WithTimeout(2 * time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			env.ExpectDown(g, "alpha")
		}).WithTimeout(1500 * time.Millisecond).WithPolling(50 * time.Millisecond).Should(Succeed())

		By("writing desired_state: running")
		env.DesiredFollowed("alpha", "running", func(g Gomega) { g.Expect(down).NotTo(BeAnExistingFile()) })
		Eventually(func(g Gomega) {
			g.Expect(env.ReadState("alpha")).To(HaveKeyWithValue("gateway_state", "running"))
		}).WithTimeout(2 * time.Second).Should(Succeed())

		Expect(env.SupervisedPid("bystander")).To(Equal(bystander), "an unrelated gateway was restarted")
		env.StopController()
	})
})

var _ = Describe("4. runtime: profile dirs appear and disappear", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("gives a new profile a slot (up only when its intent is Up) and unregisters a deleted one", func() {
		keep := env.StartKeep()

		By("adding a profile without a state file: registered down")
		env.Profile("newbie", nil)
		Eventually(func(g Gomega) {
			g.Expect(filepath.Join(env.SlotDir("newbie"), "down")).To(BeAnExistingFile())
			env.ExpectDown(g, "newbie")
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("adding a profile with desired_state running: it comes up")
		env.Profile("fresh", map[string]any{"desired_state": "running"})
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "fresh")
			g.Expect(filepath.Join(env.SlotDir("fresh"), "down")).NotTo(BeAnExistingFile())
			g.Expect(env.ReadState("fresh")).To(HaveKeyWithValue("gateway_state", "running"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		gateway := env.SupervisedPid("fresh")
		Expect(gateway).To(BeNumerically(">", 0))
		Expect(PidAlive(gateway)).To(BeTrue())

		By("deleting both profile dirs: their slots and processes go away")
		Expect(os.RemoveAll(env.ProfileDir("fresh"))).To(Succeed())
		Expect(os.RemoveAll(env.ProfileDir("newbie"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(env.SlotDir("fresh")).NotTo(BeADirectory())
			g.Expect(env.SlotDir("newbie")).NotTo(BeADirectory())
			g.Expect(PidAlive(gateway)).To(BeFalse(), "fake gateway pid %d still alive", gateway)
			for _, p := range env.Processes() {
				for _, slot := range []string{env.SlotDir("fresh"), env.SlotDir("newbie")} {
					g.Expect(strings.HasPrefix(p.Cwd, slot)).To(BeFalse(), "process of a removed slot: %+v", p)
				}
			}
		}).WithTimeout(15 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

		Expect(env.slotNames()).To(Equal([]string{"gateway-default", "gateway-keep"}))
		Expect(env.SupervisedPid("keep")).To(Equal(keep), "an unrelated gateway was restarted")
		env.ExpectControllerAlive(Default)
		env.StopController()
	})
})
