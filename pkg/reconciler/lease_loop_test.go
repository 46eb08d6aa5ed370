package reconciler_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// Two controllers, each with its own s6-svscan and runtime dir, on one HERMES_HOME (two
// containers sharing a volume), run under the race detector: only the lease holder has slots.
var _ = Describe("Controller.Run with the volume lease", func() {
	type side struct {
		sv   *svscan
		opts reconciler.Options
		logs *logSink
	}
	var (
		home string
		a, b side
	)

	newSide := func() side {
		root := testRoot()
		sv := startSvscan(root)
		logs := &logSink{}
		rend, err := reconciler.NewRenderer(sleepTemplates, nil, home, "")
		Expect(err).NotTo(HaveOccurred())
		client := &s6.Client{BinDir: s6BinDir}
		return side{sv: sv, logs: logs, opts: reconciler.Options{
			HermesHome: home, Scandir: sv.scandir, RuntimeDir: filepath.Join(root, "run"),
			Services: client, Scanner: client, Renderer: rend,
			ResyncPeriod: 200 * time.Millisecond, UnregisterTimeout: 2 * time.Second,
			Log: logs.logger(), Lease: true,
		}}
	}
	slots := func(s side) func() []string {
		return func() []string {
			des, err := os.ReadDir(s.sv.scandir)
			Expect(err).NotTo(HaveOccurred())
			var out []string
			for _, de := range des {
				if de.Name() != reconciler.ScandirLockName && de.Name()[0] != '.' {
					out = append(out, de.Name())
				}
			}
			return out
		}
	}
	want := []string{"gateway-coder", "gateway-default"}

	BeforeEach(func() {
		requireS6()
		home = filepath.Join(testRoot(), "home")
		dir := filepath.Join(home, "profiles", "coder")
		Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("# coder\n"), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644)).To(Succeed())
		a, b = newSide(), newSide()
	})

	It("gives the slots to the holder only, hands them over when it stops, and steps down when its lease file becomes a symlink", func() {
		ra := startController(reconciler.New(a.opts))
		Eventually(slots(a)).Should(ConsistOf(want))
		ctlB := reconciler.New(b.opts)
		startController(ctlB)
		Eventually(ctlB.Standby).Should(HavePrefix("standby: owned by host "))
		Consistently(slots(b)).Should(BeEmpty())

		// A stops (its lease is released), B takes over with a boot pass.
		ra.cancel()
		Eventually(ra.done).Should(BeClosed())
		Eventually(slots(b)).Should(ConsistOf(want))
		Eventually(supervision(filepath.Join(b.sv.scandir, "gateway-coder"))).Should(HaveField("Status.WantUp", BeTrue()))
		Expect(ctlB.Standby()).To(BeEmpty())
		Expect(b.logs.count(0, `"msg"="Lease taken, taking over with a boot pass"`)).To(Equal(1))

		// A symlink put in place of the lease file: B cannot keep or re-take it and steps down,
		// taking its slots down; the symlink's target is never written.
		lease := filepath.Join(home, ".profile-controller.lease")
		target := filepath.Join(filepath.Dir(home), "target")
		Expect(os.WriteFile(target, []byte("x\n"), 0o600)).To(Succeed())
		Expect(os.Rename(lease, lease+".old")).To(Succeed())
		Expect(os.Symlink(target, lease)).To(Succeed())
		Eventually(slots(b)).WithTimeout(15 * time.Second).Should(BeEmpty())
		Expect(b.logs.count(0, `"msg"="Lease lost, stepping down"`)).To(Equal(1))
		Expect(ctlB.Standby()).To(ContainSubstring("is a symlink"))
		Expect(os.ReadFile(target)).To(Equal([]byte("x\n")))
	})
})
