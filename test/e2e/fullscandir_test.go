//go:build e2e

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("fault: a full tmpfs scandir", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	It("reports a slot whose supervisor could write no status, and re-creates it once space is back", func() {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") != "" {
				Fail("this spec mounts a tmpfs and needs root; CI runs as root")
			}
			Skip("mounting a small tmpfs needs root")
		}
		env = NewEnv()
		out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", env.Scandir).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), "mount: %s", out)
		DeferCleanup(func() {
			// Cleanups run last-in first-out: this one before the Env's, so stop first.
			env.StopController()
			env.StopSvscan()
			Eventually(func() error { return exec.Command("umount", env.Scandir).Run() }).WithTimeout(10 * time.Second).Should(Succeed())
		})
		env.Profile("late", map[string]any{"desired_state": "running"})
		// Published with no s6-svscan to pick it up (the pass then fails on the scan: fine).
		_, _, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(1))
		Expect(env.SlotDir("late")).To(BeADirectory())

		By("filling the scandir, then starting s6-svscan: the supervisors get their lock, but no status")
		filler := filepath.Join(env.Scandir, ".filler")
		f, err := os.Create(filler)
		Expect(err).NotTo(HaveOccurred())
		chunk := make([]byte, 64<<10)
		for {
			if _, err := f.Write(chunk); err != nil {
				Expect(errors.Is(err, syscall.ENOSPC)).To(BeTrue(), "filling: %v", err)
				break
			}
		}
		Expect(f.Close()).To(Succeed())
		env.StartSvscan()
		// s6-svok: a supervisor holds the lock (s6-svstat itself fails: it has no status to read).
		Eventually(func() int { _, rc := S6("s6-svok", env.SlotDir("late")); return rc }).WithTimeout(convergeTimeout).Should(Equal(0))
		_, rc := S6("s6-svstat", env.SlotDir("late"))
		Expect(rc).NotTo(Equal(0))
		Expect(filepath.Join(env.SlotDir("late"), "supervise", "status")).NotTo(BeAnExistingFile())

		env.StartController()
		Eventually(func(g Gomega) {
			g.Expect(env.StatusJSON(g).Profile(g, "late").Phase).To(Equal("NoStatus"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(env.LogsMatching("Event", `"reason":"Stuck"`, "without a supervise/status")).NotTo(BeEmpty())
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("space comes back: the slot is re-created and its gateway runs")
		Expect(os.Remove(filler)).To(Succeed())
		Eventually(func(g Gomega) { env.ExpectUp(g, "late") }).WithTimeout(2 * convergeTimeout).Should(Succeed())
		Expect(filepath.Join(env.SlotDir("late"), "supervise", "status")).To(BeARegularFile())
		env.StopController()
	})
})
