//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Topology specs: topology perProfile (the default) and multiplex, where the root gateway
// (gateway-default) serves every profile not marked standalone in its own config.yaml.

// multiplexed switches the Env's controller config to topology multiplex, with fallback
// ownSlot when ownSlot is set.
func (e *Env) multiplexed(ownSlot bool) {
	e.SetConfig("topology", strconv.Quote("multiplex"))
	if ownSlot {
		e.SetConfig("multiplex", "{fallback: ownSlot}")
	}
}

// standalone writes the profile's config.yaml with gateway.standalone set to v (atomically).
func (e *Env) standalone(name string, v bool) {
	path := filepath.Join(e.ProfileDir(name), "config.yaml")
	Expect(os.WriteFile(path+".tmp", []byte("model: fake\ngateway:\n  standalone: "+strconv.FormatBool(v)+"\n"), 0o644)).To(Succeed())
	Expect(os.Rename(path+".tmp", path)).To(Succeed())
}

// rootServes makes the fake root gateway list exactly these profiles in served_profiles (it
// re-reads the file while it runs).
func (e *Env) rootServes(names ...string) {
	path := filepath.Join(e.Home, "fake-serves")
	Expect(os.WriteFile(path+".tmp", []byte(strings.Join(names, "\n")+"\n"), 0o644)).To(Succeed())
	Expect(os.Rename(path+".tmp", path)).To(Succeed())
}

// hasDown reports whether the slot carries a down marker.
func (e *Env) hasDown(name string) bool {
	_, err := os.Lstat(filepath.Join(e.SlotDir(name), "down"))
	return err == nil
}

// expectAllDown asserts (through g) ExpectDown for every named profile.
func (e *Env) expectAllDown(g Gomega, names ...string) {
	for _, n := range names {
		e.ExpectDown(g, n)
	}
}

// topoStatus is the topology part of one `status -o json` profile entry.
type topoStatus struct {
	Profile   string `json:"profile"`
	Phase     string `json:"phase"`
	ServedBy  string `json:"servedBy"`
	Folded    bool   `json:"folded"`
	NotServed bool   `json:"notServed"`
}

func (e *Env) topoStatus(g Gomega, name string) topoStatus {
	stdout, stderr, code := e.CLI("status", "-o", "json")
	g.Expect(code).To(Or(Equal(0), Equal(3)), "status -o json: %s", stderr)
	var doc struct {
		Profiles []topoStatus `json:"profiles"`
	}
	g.Expect(json.Unmarshal([]byte(stdout), &doc)).To(Succeed(), stdout)
	for _, p := range doc.Profiles {
		if p.Profile == name {
			return p
		}
	}
	g.Expect(doc.Profiles).To(ContainElement(HaveField("Profile", name)))
	return topoStatus{}
}

var _ = Describe("topology: boot pass", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	type bootRow struct {
		action string
		folded string // folded_into_root
		up     bool   // its own gateway runs
	}
	// The same volume under both topologies: the root stopped, a running, a stopped and a
	// starting named profile, and a running standalone one.
	volume := func(env *Env) {
		env.Profile("default", map[string]any{"desired_state": "stopped"})
		env.Profile("alpha", map[string]any{"desired_state": "running"})
		env.Profile("beta", map[string]any{"desired_state": "stopped"})
		env.Profile("gamma", map[string]any{"gateway_state": "starting"})
		env.Profile("solo", map[string]any{"desired_state": "running"})
		env.standalone("solo", true)
		env.standalone("beta", false)
	}
	DescribeTable("boot log lines, down markers and running gateways",
		func(multiplex bool, want map[string]bootRow) {
			env = NewEnv()
			if multiplex {
				env.multiplexed(false)
			}
			volume(env)
			env.StartSvscan()
			_, stderr, code := env.CLI("reconcile", "--once", "--boot")
			Expect(code).To(Equal(0), stderr)
			got := map[string]bootRow{}
			for _, m := range bootLogLines(readFile(env.BootLogPath())) {
				got[m[2]] = bootRow{action: m[4], folded: m[6]}
			}
			Expect(got).To(HaveLen(len(want)), "boot log: %s", readFile(env.BootLogPath()))
			for name, w := range want {
				Expect(got[name].action).To(Equal(w.action), "%s action", name)
				Expect(got[name].folded).To(Equal(w.folded), "%s folded_into_root", name)
				Expect(env.hasDown(name)).To(Equal(!w.up), "%s: down marker", name)
			}
			Eventually(func(g Gomega) {
				for name, w := range want {
					if w.up {
						env.ExpectUp(g, name)
					} else {
						env.ExpectDown(g, name)
					}
				}
			}).WithTimeout(convergeTimeout).Should(Succeed())
		},
		Entry("perProfile: every slot follows its own intent", false, map[string]bootRow{
			"default": {"registered", "False", false},
			"alpha":   {"started", "False", true},
			"beta":    {"registered", "False", false},
			"gamma":   {"registered", "False", false},
			"solo":    {"started", "False", true},
		}),
		Entry("multiplex: alpha folded into the root, which starts for it; solo standalone", true, map[string]bootRow{
			"default": {"started", "False", true},
			"alpha":   {"registered", "True", false},
			"beta":    {"registered", "False", false},
			"gamma":   {"registered", "False", false},
			"solo":    {"started", "False", true},
		}),
	)
})

var _ = Describe("topology: runtime", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	It("perProfile: a named profile set to running starts its own gateway, not the root", func() {
		env = NewEnv()
		env.Profile("default", map[string]any{"desired_state": "stopped"})
		env.Profile("alpha", map[string]any{"desired_state": "stopped"})
		env.StartConverged(func(g Gomega) { env.expectAllDown(g, "default", "alpha") })
		env.DesiredFollowed("alpha", "running", func(g Gomega) { env.ExpectDown(g, "default") })
	})

	It("multiplex: a folded profile set to running starts the root; all stopped stops it; a folded slot started by hand is stopped after the settle period", func() {
		env = NewEnv()
		env.multiplexed(false)
		env.Profile("default", map[string]any{"desired_state": "stopped"})
		env.Profile("alpha", map[string]any{"desired_state": "stopped"})
		env.Profile("beta", map[string]any{"desired_state": "stopped"})
		env.StartConverged(func(g Gomega) { env.expectAllDown(g, "default", "alpha", "beta") })

		By("alpha wants running: the root starts, alpha's own slot stays down")
		env.SetDesired("alpha", "running")
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "default")
			env.ExpectDown(g, "alpha")
			g.Expect(env.hasDown("alpha")).To(BeTrue())
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Consistently(func(g Gomega) { env.ExpectDown(g, "alpha") }).WithTimeout(500 * time.Millisecond).Should(Succeed())
		Eventually(func(g Gomega) {
			st := env.topoStatus(g, "alpha")
			g.Expect(st.Folded).To(BeTrue())
			g.Expect(st.ServedBy).To(Equal("gateway-default"))
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("alpha stops and beta wants running right after: the root keeps running for beta, never bounced")
		root := env.SupervisedPid("default")
		env.SetDesired("alpha", "stopped")
		env.SetDesired("beta", "running")
		Consistently(func(g Gomega) {
			env.ExpectUp(g, "default")
			g.Expect(env.SupervisedPid("default")).To(Equal(root))
		}).WithTimeout(2 * time.Second).Should(Succeed())
		Expect(env.AppliedActions("default")).NotTo(ContainElement(HavePrefix("stop")))

		By("every profile stopped: the root stops")
		env.SetDesired("beta", "stopped")
		Eventually(func(g Gomega) { env.ExpectDown(g, "default") }).WithTimeout(convergeTimeout).Should(Succeed())

		By("someone starts alpha's folded slot by hand: left alone for the settle period, then stopped as drift")
		t0 := time.Now()
		out, rc := S6("s6-svc", "-u", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) { env.ExpectUp(g, "alpha") }).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
		Consistently(func(g Gomega) { env.ExpectUp(g, "alpha") }).WithTimeout(until(t0.Add(env.opts.SettlePeriod - 300*time.Millisecond))).Should(Succeed())
		Eventually(func(g Gomega) {
			env.ExpectDown(g, "alpha")
			g.Expect(env.AppliedActions("alpha")).To(ContainElement("stop gateway-alpha (drift)"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		env.ExpectDown(Default, "default")
	})

	It("multiplex: a controller restarted without a boot pass keeps the root running for its folded profiles", func() {
		env = NewEnv()
		env.multiplexed(false)
		env.Profile("default", map[string]any{"desired_state": "stopped"})
		env.Profile("alpha", map[string]any{"desired_state": "running"})
		env.StartSvscan()
		_, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), stderr)
		Eventually(func(g Gomega) { env.ExpectUp(g, "default") }).WithTimeout(convergeTimeout).Should(Succeed())
		pid := env.SupervisedPid("default")

		env.StartController() // the boot marker is there: no boot pass, the loop starts at once
		Consistently(func(g Gomega) {
			env.ExpectControllerAlive(g)
			env.ExpectUp(g, "default")
			g.Expect(env.SupervisedPid("default")).To(Equal(pid))
		}).WithTimeout(3 * time.Second).Should(Succeed())
		Expect(env.AppliedActions("default")).To(BeEmpty())
		env.ExpectDown(Default, "alpha")
	})

	It("multiplex: a standalone profile keeps its own gateway, and is folded into the root once its config.yaml says so no more", func() {
		env = NewEnv()
		env.multiplexed(false)
		env.Profile("default", map[string]any{"desired_state": "stopped"})
		env.Profile("solo", map[string]any{"desired_state": "running"})
		env.standalone("solo", true)
		env.StartConverged(func(g Gomega) {
			env.ExpectUp(g, "solo")
			env.ExpectDown(g, "default")
		})
		Eventually(func(g Gomega) { g.Expect(env.topoStatus(g, "solo").ServedBy).To(Equal("gateway-solo")) }).WithTimeout(convergeTimeout).Should(Succeed())

		By("config.yaml drops standalone: solo is folded, its own slot stops and the root starts")
		env.standalone("solo", false)
		Eventually(func(g Gomega) {
			env.ExpectDown(g, "solo")
			env.ExpectUp(g, "default")
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("an invalid config.yaml counts as not standalone, with one warning naming it")
		path := filepath.Join(env.ProfileDir("solo"), "config.yaml")
		Expect(os.WriteFile(path, []byte("gateway: [\n"), 0o644)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(env.LogsMatching("Gateway config warning", path)).To(HaveLen(1))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Consistently(func(g Gomega) {
			env.ExpectDown(g, "solo")
			env.ExpectUp(g, "default")
			g.Expect(env.LogsMatching("Gateway config warning", path)).To(HaveLen(1), "logged once")
		}).WithTimeout(1500 * time.Millisecond).Should(Succeed())
		env.standalone("solo", true)
		Eventually(func(g Gomega) {
			g.Expect(env.LogsMatching("Gateway config warning cleared", path)).To(HaveLen(1))
			env.ExpectUp(g, "solo")
			env.ExpectDown(g, "default")
		}).WithTimeout(convergeTimeout).Should(Succeed())
	})
})

var _ = Describe("topology: served_profiles", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	var metricsURL string
	start := func(ownSlot bool) {
		env = NewEnv()
		env.multiplexed(ownSlot)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		metricsURL = "http://" + ln.Addr().String() + "/metrics"
		Expect(ln.Close()).To(Succeed())
		env.SetConfig("metricsAddr", strconv.Quote(ln.Addr().String()))
		env.rootServes("default") // the root's multiplex guard refuses alpha
		env.Profile("default", map[string]any{"desired_state": "stopped"})
		env.Profile("alpha", map[string]any{"desired_state": "running"})
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "default") })
	}

	notServedMetric := func(g Gomega) string {
		resp, err := http.Get(metricsURL)
		g.Expect(err).NotTo(HaveOccurred())
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		g.Expect(err).NotTo(HaveOccurred())
		m := regexp.MustCompile(`(?m)^profile_controller_not_served (\S+)$`).FindStringSubmatch(string(b))
		g.Expect(m).NotTo(BeNil(), "no profile_controller_not_served in /metrics")
		return m[1]
	}

	It("reports NotServed once the root has been up for the settle period without listing the profile, and clears it once listed (fallback none)", func() {
		start(false)
		Eventually(notServedMetric).WithTimeout(convergeTimeout).Should(Equal("0"))
		Eventually(func(g Gomega) {
			st := env.topoStatus(g, "alpha")
			g.Expect(st.NotServed).To(BeTrue(), "%+v", st)
			g.Expect(st.Phase).To(Equal("NotServed"))
			g.Expect(st.ServedBy).To(Equal("gateway-default"))
			g.Expect(env.LogsMatching("Event", `"reason":"NotServed"`, "served_profiles does not list alpha")).To(HaveLen(1))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Consistently(func(g Gomega) { env.ExpectDown(g, "alpha") }).WithTimeout(time.Second).Should(Succeed())
		_, _, code := env.CLI("status")
		Expect(code).To(Equal(3), "a NotServed profile makes status unhealthy")
		Eventually(notServedMetric).WithTimeout(convergeTimeout).Should(Equal("1"))

		env.rootServes("default", "alpha")
		Eventually(func(g Gomega) {
			g.Expect(env.topoStatus(g, "alpha").NotServed).To(BeFalse())
			g.Expect(env.LogsMatching("Event", `"reason":"Served"`, "gateway-default lists it")).To(HaveLen(1))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		env.ExpectDown(Default, "alpha")
		env.ExpectUp(Default, "default")
		Eventually(notServedMetric).WithTimeout(convergeTimeout).Should(Equal("0"))
	})

	It("starts the profile's own slot while it is not served and folds it back once the root lists it (fallback ownSlot)", func() {
		t0 := time.Now()
		start(true)
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "alpha")
			st := env.topoStatus(g, "alpha")
			g.Expect(st.NotServed).To(BeTrue())
			g.Expect(st.ServedBy).To(Equal("gateway-alpha"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(time.Since(t0)).To(BeNumerically(">=", env.opts.SettlePeriod), "started before the root had been up for the settle period")
		env.ExpectUp(Default, "default")

		env.rootServes("default", "alpha")
		Eventually(func(g Gomega) {
			env.ExpectDown(g, "alpha")
			g.Expect(env.AppliedActions("alpha")).To(ContainElement("stop gateway-alpha"))
			st := env.topoStatus(g, "alpha")
			g.Expect(st.NotServed).To(BeFalse())
			g.Expect(st.ServedBy).To(Equal("gateway-default"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		env.ExpectUp(Default, "default")
	})
})
