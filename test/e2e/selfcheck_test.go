//go:build e2e

package e2e

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// These specs prove the harness and the fake gateway against s6 alone, without the controller:
// when they fail, the other specs' failures say nothing about the controller.
var _ = Describe("harness self-check: fake gateway and service scripts under a real s6 tree", func() {
	var env *Env

	BeforeEach(func() {
		env = NewEnv()
		env.StartSvscan()
	})
	AfterEach(func() { env.DumpOnFailure() })

	publish := func(name string, down bool) {
		env.RenderSlot(name, down)
		out, rc := S6("s6-svscanctl", "-a", env.Scandir)
		Expect(rc).To(Equal(0), out)
	}

	It("persists starting then running, keeps desired_state, and treats SIGTERM without a marker as unplanned", func() {
		env.Profile("alpha", map[string]any{"desired_state": "running", "platforms": map[string]any{"x": 1}})
		publish("alpha", false)
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "alpha")
			g.Expect(env.ReadState("alpha")).To(HaveKeyWithValue("gateway_state", "running"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		state := env.ReadState("alpha")
		Expect(state).To(HaveKeyWithValue("desired_state", "running"))
		Expect(state).To(HaveKeyWithValue("platforms", HaveKey("x")))
		Expect(state).To(HaveKeyWithValue("pid", BeNumerically("==", env.SupervisedPid("alpha"))))

		out, rc := S6("s6-svc", "-d", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) {
			g.Expect(env.Svstat("gateway-alpha")).To(And(
				HaveKeyWithValue("up", "false"), HaveKeyWithValue("exitcode", "1")))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(env.ReadState("alpha")).To(HaveKeyWithValue("gateway_state", "running"))
	})

	It("treats SIGTERM with .planned-stop as planned: consumes the marker, persists stopped, exits 0", func() {
		dir := env.Profile("beta", nil)
		publish("beta", false)
		Eventually(func(g Gomega) {
			g.Expect(env.ReadState("beta")).To(HaveKeyWithValue("gateway_state", "running"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, ".planned-stop"), nil, 0o644)).To(Succeed())
		out, rc := S6("s6-svc", "-d", env.SlotDir("beta"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) {
			g.Expect(env.Svstat("gateway-beta")).To(And(
				HaveKeyWithValue("up", "false"), HaveKeyWithValue("exitcode", "0")))
			g.Expect(env.ReadState("beta")).To(HaveKeyWithValue("gateway_state", "stopped"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(filepath.Join(dir, ".planned-stop")).NotTo(BeAnExistingFile())
	})

	It("exits 78 with startup_failed on fatal-config, and finish stops s6 from restarting it", func() {
		dir := env.Profile("gamma", map[string]any{"desired_state": "running"})
		Expect(os.WriteFile(filepath.Join(dir, "fatal-config"), nil, 0o644)).To(Succeed())
		publish("gamma", false)
		Eventually(func(g Gomega) {
			g.Expect(env.Svstat("gateway-gamma")).To(And(HaveKeyWithValue("up", "false"),
				HaveKeyWithValue("wantedup", "false"), HaveKeyWithValue("exitcode", "78")))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(env.ReadState("gamma")).To(And(
			HaveKeyWithValue("gateway_state", "startup_failed"), HaveKeyWithValue("desired_state", "running")))
	})

	It("starts a slot with a down file down, and stopping the tree leaves no process behind", func() {
		env.Profile("delta", nil)
		env.Profile("epsilon", nil)
		publish("delta", true)
		publish("epsilon", false)
		Eventually(func(g Gomega) {
			env.ExpectDown(g, "delta")
			env.ExpectUp(g, "epsilon")
			g.Expect(env.ReadState("epsilon")).To(HaveKeyWithValue("gateway_state", "running"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(env.Processes()).NotTo(BeEmpty())
		env.StopSvscan()
		Expect(env.Processes()).To(BeEmpty())
		Expect(env.ReadState("epsilon")).To(HaveKeyWithValue("gateway_state", "running"))
	})
})
