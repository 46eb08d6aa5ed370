package reconciler_test

import (
	"context"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// A watch-verified slot is reused without a read only while no watch event touched it: every
// way of changing a managed file is still seen, by the watch alone (the resync is an hour).
var _ = Describe("Watch-verified slots", func() {
	var (
		ctl     *reconciler.Controller
		slot    string
		runFile string
		want    []byte
		logs    *logSink
	)

	BeforeEach(func() {
		requireS6()
		root := testRoot()
		sv := startSvscan(root)
		home := filepath.Join(root, "home")
		dir := filepath.Join(home, "profiles", "coder")
		Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("# coder\n"), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644)).To(Succeed())
		rend, err := reconciler.NewRenderer(sleepTemplates, nil, home, "")
		Expect(err).NotTo(HaveOccurred())
		client := &s6.Client{BinDir: s6BinDir}
		logs = &logSink{}
		ctl = reconciler.New(reconciler.Options{
			HermesHome: home, Scandir: sv.scandir, RuntimeDir: filepath.Join(root, "run"),
			Services: client, Scanner: client, Renderer: rend,
			ResyncPeriod: time.Hour, Log: logs.logger(),
			// The clock below runs RacyWindow (2 s) ahead: a settle period of 3 s is 1 s here.
			Rules: reconciler.Rules{SettlePeriod: safefs.RacyWindow + time.Second, MinUptime: time.Millisecond},
			// Files written just now count as older than the racy window, as on a real system.
			Now: func() time.Time { return time.Now().Add(safefs.RacyWindow) },
		})
		startController(ctl)
		slot = filepath.Join(sv.scandir, "gateway-coder")
		runFile = filepath.Join(slot, "run")
		Eventually(supervision(slot)).Should(HaveField("Status.WantUp", BeTrue()))
		want, err = os.ReadFile(runFile)
		Expect(err).NotTo(HaveOccurred())
		// The supervisor's status changes bring the looks that verify the slot.
		Eventually(func() bool { return ctl.SlotVerified("coder") }).Should(BeTrue())
	})

	// restored waits until the controller rewrote run with the rendered bytes and mode, and
	// verified the slot again.
	restored := func() {
		Eventually(func() ([]byte, error) { return os.ReadFile(runFile) }).Should(Equal(want))
		Eventually(func() (os.FileMode, error) {
			fi, err := os.Lstat(runFile)
			if err != nil {
				return 0, err
			}
			return fi.Mode(), nil
		}).Should(Equal(os.FileMode(0o755)))
		Eventually(func() bool { return ctl.SlotVerified("coder") }).Should(BeTrue())
	}

	same := func(b []byte) []byte {
		out := make([]byte, len(b))
		copy(out, b)
		out[len(out)-2] = 'X' // same size
		return out
	}

	It("sees an in-place write of the same size with the mtime put back", func() {
		fi, err := os.Lstat(runFile)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(runFile, same(want), 0o755)).To(Succeed())
		Expect(os.Chtimes(runFile, fi.ModTime(), fi.ModTime())).To(Succeed())
		restored()
	})

	It("sees a file renamed over it", func() {
		tmp := filepath.Join(slot, "run.new")
		Expect(os.WriteFile(tmp, same(want), 0o755)).To(Succeed())
		Expect(os.Rename(tmp, runFile)).To(Succeed())
		restored()
	})

	It("sees a mode change", func() {
		Expect(os.Chmod(runFile, 0o700)).To(Succeed())
		restored()
	})

	It("sees log/run changed", func() {
		logRun := filepath.Join(slot, "log", "run")
		wantLog, err := os.ReadFile(logRun)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(logRun, same(wantLog), 0o755)).To(Succeed())
		Eventually(func() ([]byte, error) { return os.ReadFile(logRun) }).Should(Equal(wantLog))
	})

	It("sees the gateway stopped behind its back, and corrects it after the settle period", func() {
		client := &s6.Client{BinDir: s6BinDir}
		Expect(client.Down(context.Background(), slot)).To(Succeed())
		Eventually(supervision(slot)).Should(HaveField("Status.WantUp", BeFalse()))
		// The status watch brought a look that read the down state; the correction then
		// comes from the settle requeue, on a reused read that must be that same down state.
		Eventually(supervision(slot)).Should(And(HaveField("Status.WantUp", BeTrue()), HaveField("Status.PID", Not(BeZero()))))
		// The supervisor may act on the start before the controller logs it: once, then never again.
		starts := func() int {
			return logs.count(0, `"msg"="Applied action"`, kv("action", "start gateway-coder (drift)"))
		}
		Eventually(starts).Should(Equal(1))
		Consistently(starts).WithTimeout(time.Second).Should(Equal(1))
	})
})
