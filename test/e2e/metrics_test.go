//go:build e2e

package e2e

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("metrics and health of a running controller", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	It("serves controller-runtime, workqueue and per-profile series after known actions, and a healthy /healthz", func() {
		env = NewEnv()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		addr := ln.Addr().String()
		Expect(ln.Close()).To(Succeed())
		env.SetConfig("metricsAddr", strconv.Quote(addr))
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
		env.RunningProfiles("alpha")
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "alpha") })
		env.Profile("beta", map[string]any{"desired_state": "running"}) // a create by the loop
		Eventually(func(g Gomega) { env.ExpectUp(g, "beta") }).WithTimeout(convergeTimeout).Should(Succeed())

		get := func(g Gomega, path string) (int, string) {
			resp, err := http.Get("http://" + addr + path)
			g.Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			g.Expect(err).NotTo(HaveOccurred())
			return resp.StatusCode, string(b)
		}
		Eventually(func(g Gomega) {
			code, body := get(g, "/metrics")
			g.Expect(code).To(Equal(200))
			g.Expect(body).To(MatchRegexp(`(?m)^controller_runtime_reconcile_total\{controller="profile",result="success"\} [1-9]`))
			g.Expect(body).To(MatchRegexp(`(?m)^controller_runtime_reconcile_errors_total\{controller="profile"\} 0$`))
			g.Expect(body).To(MatchRegexp(`(?m)^controller_runtime_active_workers\{controller="profile"\} `))
			g.Expect(body).To(MatchRegexp(`(?m)^workqueue_adds_total\{name="profile"\} [1-9]`))
			g.Expect(body).To(MatchRegexp(`(?m)^workqueue_depth\{name="profile"\} `))
			g.Expect(body).To(MatchRegexp(`(?m)^profile_controller_actions_total\{action="create",result="ok"\} [1-9]`))
			g.Expect(body).To(MatchRegexp(`(?m)^profile_controller_profile_phase\{phase="Running",profile="beta"\} 1$`))
			g.Expect(body).To(MatchRegexp(`(?m)^profile_controller_profile_intent\{intent="up",profile="beta"\} 1$`))
			g.Expect(body).To(MatchRegexp(`(?m)^profile_controller_last_resync_timestamp_seconds [1-9]`))
			g.Expect(body).To(MatchRegexp(`(?m)^profile_controller_build_info\{`))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Eventually(func(g Gomega) {
			code, body := get(g, "/healthz")
			g.Expect(code).To(Equal(200), body)
			code, body = get(g, "/readyz")
			g.Expect(code).To(Equal(200), body)
		}).Should(Succeed())
		env.StopController()
	})
})
