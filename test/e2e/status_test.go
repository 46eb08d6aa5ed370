//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// statusProfile is one entry of `status -o json`. Pointers catch missing keys.
type statusProfile struct {
	Profile    *string `json:"profile"`
	Slot       *string `json:"slot"`
	Intent     *string `json:"intent"`
	PriorState any     `json:"priorState"`
	Port       *int    `json:"port"`
	SlotExists *bool   `json:"slotExists"`
	Supervised *bool   `json:"supervised"`
	Up         *bool   `json:"up"`
	WantUp     *bool   `json:"wantUp"`
	NormallyUp *bool   `json:"normallyUp"`
	Pid        *int    `json:"pid"`
	ExitCode   *int    `json:"exitCode"`
}

type statusDoc struct {
	Profiles []statusProfile `json:"profiles"`
	Problems *[]any          `json:"problems"`
}

var _ = Describe("6. status -o json agrees with s6-svstat for every slot", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("reports up, wantUp, normallyUp, pid and exitCode exactly as s6-svstat does", func() {
		env.Profile("default", map[string]any{"gateway_state": "running"})
		env.Profile("coder", map[string]any{"desired_state": "running"})
		env.Profile("assistant", map[string]any{"desired_state": "stopped"})
		env.Profile("writer", map[string]any{"desired_state": "running"})
		env.Profile("killed", map[string]any{"desired_state": "running"})
		env.Profile("held", nil)
		fatal := env.Profile("fatal", map[string]any{"desired_state": "running"})
		Expect(os.WriteFile(filepath.Join(fatal, "fatal-config"), nil, 0o644)).To(Succeed())

		env.BootSettled("default", "coder", "writer", "killed")

		By("driving slots into distinct s6 states by hand")
		// writer: stopped by an operator without the marker: exit code 1, normally up.
		out, rc := S6("s6-svc", "-d", env.SlotDir("writer"))
		Expect(rc).To(Equal(0), out)
		// killed: want down (once), then SIGKILL: down by signal, exit code -1.
		out, rc = S6("s6-svc", "-O", env.SlotDir("killed"))
		Expect(rc).To(Equal(0), out)
		out, rc = S6("s6-svc", "-k", env.SlotDir("killed"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) {
			g.Expect(env.Svstat("gateway-writer")).To(And(HaveKeyWithValue("up", "false"), HaveKeyWithValue("exitcode", "1")))
			g.Expect(env.Svstat("gateway-killed")).To(And(HaveKeyWithValue("up", "false"), HaveKeyWithValue("wantedup", "false"), HaveKeyWithValue("exitcode", "-1")))
			// fatal config: exit 78, finish says 125, s6 gives up.
			g.Expect(env.Svstat("gateway-fatal")).To(And(HaveKeyWithValue("up", "false"), HaveKeyWithValue("wantedup", "false"), HaveKeyWithValue("exitcode", "78")))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		// late: a profile created after the pass, so it has no slot yet.
		env.Profile("late", map[string]any{"desired_state": "running"})

		wantIntent := map[string]string{
			"default": "up", "coder": "up", "assistant": "down", "writer": "up",
			"killed": "up", "held": "hold", "fatal": "up", "late": "up",
		}
		wantPrior := map[string]string{
			"default": "running", "coder": "running", "assistant": "stopped", "writer": "running",
			"killed": "running", "fatal": "running", "late": "running",
		}
		wantPort := map[string]int{"default": 9449, "coder": 9570, "assistant": 9714, "writer": 9543}
		order := []string{"default", "assistant", "coder", "fatal", "held", "killed", "late", "writer"}

		Eventually(func(g Gomega) {
			stdout, stderr, code := env.CLI("status", "-o", "json")
			g.Expect(code).To(Or(Equal(0), Equal(3)), "stderr: %s", stderr) // 3: the fixture has unhealthy profiles
			var doc statusDoc
			g.Expect(json.Unmarshal([]byte(stdout), &doc)).To(Succeed(), "status -o json output: %s", stdout)
			g.Expect(doc.Problems).NotTo(BeNil(), "no problems array")
			var names []string
			for _, p := range doc.Profiles {
				g.Expect(p.Profile).NotTo(BeNil())
				names = append(names, *p.Profile)
			}
			g.Expect(names).To(Equal(order), "profiles in order, default first")

			for _, p := range doc.Profiles {
				name := *p.Profile
				for key, v := range map[string]any{
					"slot": p.Slot, "intent": p.Intent, "port": p.Port, "slotExists": p.SlotExists,
					"supervised": p.Supervised, "up": p.Up, "wantUp": p.WantUp, "normallyUp": p.NormallyUp,
					"pid": p.Pid, "exitCode": p.ExitCode,
				} {
					g.Expect(v).NotTo(BeNil(), "%s: key %q missing", name, key)
				}
				g.Expect(*p.Slot).To(Equal("gateway-"+name), name)
				g.Expect(*p.Intent).To(Equal(wantIntent[name]), "%s intent", name)
				if prior, ok := wantPrior[name]; ok {
					g.Expect(p.PriorState).To(Equal(prior), "%s priorState", name)
				}
				if port, ok := wantPort[name]; ok {
					g.Expect(*p.Port).To(Equal(port), "%s port", name)
				}
				_, err := os.Stat(env.SlotDir(name))
				g.Expect(*p.SlotExists).To(Equal(err == nil), "%s slotExists", name)

				st := env.Svstat("gateway-" + name)
				g.Expect(st).NotTo(HaveKey("error"))
				g.Expect(*p.Supervised).To(Equal(st["supervised"] == "true"), "%s supervised (s6-svstat: %v)", name, st)
				if st["supervised"] != "true" {
					g.Expect(*p.Up).To(BeFalse(), "%s up without a supervisor", name)
					g.Expect(*p.Pid).To(Equal(-1), "%s pid without a supervisor", name)
					continue
				}
				g.Expect(strconv.FormatBool(*p.Up)).To(Equal(st["up"]), "%s up (s6-svstat: %v)", name, st)
				g.Expect(strconv.FormatBool(*p.WantUp)).To(Equal(st["wantedup"]), "%s wantUp (s6-svstat: %v)", name, st)
				g.Expect(strconv.FormatBool(*p.NormallyUp)).To(Equal(st["normallyup"]), "%s normallyUp (s6-svstat: %v)", name, st)
				g.Expect(strconv.Itoa(*p.Pid)).To(Equal(st["pid"]), "%s pid (s6-svstat: %v)", name, st)
				g.Expect(strconv.Itoa(*p.ExitCode)).To(Equal(st["exitcode"]), "%s exitCode (s6-svstat: %v)", name, st)
			}
		}).WithTimeout(convergeTimeout).WithPolling(200 * time.Millisecond).Should(Succeed())
	})
})
