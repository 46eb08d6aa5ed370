package reconciler_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

var _ = Describe("Controller.Reconfigure while Run runs", func() {
	It("rewrites every run script in place at once (its own resync), restarts nothing, and publishes the generation", func() {
		requireS6()
		root := testRoot()
		sv := startSvscan(root)
		home := filepath.Join(root, "home")
		runtimeDir := filepath.Join(root, "run")
		for _, name := range []string{"alpha", "beta"} {
			dir := filepath.Join(home, "profiles", name)
			Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("# "+name+"\n"), 0o644)).To(Succeed())
		}
		templates := reconciler.Templates{
			Run:    "#!/bin/sh\n{{range .Env}}export {{.Key}}={{shquote .Value}}\n{{end}}exec sleep 1000\n",
			LogRun: "#!/bin/sh\nexec cat >/dev/null\n",
		}
		rend, err := reconciler.NewRenderer(templates, nil, home, "")
		Expect(err).NotTo(HaveOccurred())
		client := &s6.Client{BinDir: s6BinDir}
		logs := &logSink{}
		opts := reconciler.Options{
			HermesHome: home, Scandir: sv.scandir, RuntimeDir: runtimeDir,
			Services: client, Scanner: client, Renderer: rend,
			// Far longer than the spec: only the resync Reconfigure asks for can do the rewrite.
			ResyncPeriod: time.Hour,
			Log:          logs.logger(),
		}
		c := reconciler.New(opts)
		startController(c)
		pids := map[string]int{}
		for _, name := range []string{"alpha", "beta"} {
			dir := filepath.Join(sv.scandir, "gateway-"+name)
			Eventually(supervision(dir)).Should(HaveField("Status.PID", Not(BeZero())))
			pids[name] = supervision(dir)(Default).Status.PID
		}
		published := func(g Gomega) reconciler.ConfigStatus {
			b, err := os.ReadFile(filepath.Join(runtimeDir, reconciler.ConfigStateFile))
			g.Expect(err).NotTo(HaveOccurred())
			var st reconciler.ConfigStatus
			g.Expect(json.Unmarshal(b, &st)).To(Succeed())
			return st
		}
		Expect(published(Default).Generation).To(Equal(int64(1)))

		By("ten reconfigures at once, racing the workers")
		next, err := reconciler.NewRenderer(templates, map[string]string{"LIVE": "yes"}, home, "")
		Expect(err).NotTo(HaveOccurred())
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				defer GinkgoRecover()
				o := opts
				o.Renderer = next
				_, err := c.Reconfigure(o, []string{"extraEnv"})
				Expect(err).NotTo(HaveOccurred())
			})
		}
		wg.Wait()
		Expect(c.Generation()).To(Equal(int64(11)))

		for _, name := range []string{"alpha", "beta"} {
			dir := filepath.Join(sv.scandir, "gateway-"+name)
			Eventually(func() (string, error) {
				b, err := os.ReadFile(filepath.Join(dir, "run"))
				return string(b), err
			}).WithTimeout(10 * time.Second).Should(ContainSubstring("export LIVE='yes'\n"))
			Expect(supervision(dir)(Default).Status.PID).To(Equal(pids[name]), "%s restarted", name)
		}
		Eventually(published).Should(And(HaveField("Generation", int64(11)), HaveField("Changed", []string{"extraEnv"}),
			HaveField("Rendering", next.Generation())))
	})
})
