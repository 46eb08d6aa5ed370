//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("update: drifted service files are rewritten in place, without a restart", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("restores a hand-edited run script and a lost finish script, keeping the gateway's pid", func() {
		env.Profile("alpha", map[string]any{"desired_state": "running"})
		env.StartSvscan()
		env.StartController()
		run := filepath.Join(env.SlotDir("alpha"), "run")
		finish := filepath.Join(env.SlotDir("alpha"), "finish")
		var rendered []byte
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "alpha")
			b, err := os.ReadFile(run)
			g.Expect(err).NotTo(HaveOccurred())
			rendered = b
		}).WithTimeout(convergeTimeout).Should(Succeed())
		pid := env.SupervisedPid("alpha")
		runInode := inode(run)

		By("editing run by hand and deleting finish")
		Expect(os.WriteFile(run, []byte("#!/bin/sh\nexec sleep 1\n"), 0o755)).To(Succeed())
		Expect(os.Remove(finish)).To(Succeed())

		Eventually(func(g Gomega) {
			b, err := os.ReadFile(run)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(b).To(Equal(rendered))
			g.Expect(finish).To(BeAnExistingFile())
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(inode(run)).NotTo(Equal(runInode), "rewritten through temp + rename, not in place")
		Expect(env.SupervisedPid("alpha")).To(Equal(pid), "an update never restarts the gateway")
		Expect(env.Logs()).To(ContainSubstring("update gateway-alpha"))
	})
})

func inode(path string) uint64 {
	fi, err := os.Stat(path)
	Expect(err).NotTo(HaveOccurred())
	return fi.Sys().(*syscall.Stat_t).Ino
}
