//go:build e2e

package e2e

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// snapshot describes every entry under each root, one line per entry: path, type and mode,
// inode, size, mtime, link target and content hash. Slots named in skip and the trees that s6
// itself maintains (.s6-svscan, supervise/, event/) are left out.
func snapshot(roots []string, skip map[string]bool) []string {
	var lines []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path == root {
				return nil
			}
			name := d.Name()
			if (d.IsDir() && (name == "supervise" || name == "event")) || name == ".s6-svscan" || skip[path] {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			fi, err := os.Lstat(path)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			line := fmt.Sprintf("%s %v ino=%d size=%d mtime=%d", path, fi.Mode(), st.Ino, fi.Size(), fi.ModTime().UnixNano())
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(path)
				line += " -> " + target
			case fi.Mode().IsRegular():
				data, _ := os.ReadFile(path)
				line += fmt.Sprintf(" sha256=%x", sha256.Sum256(data))
			}
			lines = append(lines, line)
			return nil
		})
		Expect(err).NotTo(HaveOccurred())
	}
	sort.Strings(lines)
	return lines
}

var _ = Describe("5. safety: scandir entries that are not controller slots are never touched", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("leaves other services, files, dot-dirs and foreign gateway-* entries alone across passes and resyncs", func() {
		env.StartSvscan()
		sleeper := "#!/bin/sh\nexec sleep 3600\n"

		By("populating the scandir with entries the controller does not own")
		other := filepath.Join(env.Scandir, "other-svc")
		Expect(os.MkdirAll(other, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(other, "run"), []byte(sleeper), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(env.Scandir, "README"), []byte("not a service\n"), 0o644)).To(Succeed())
		Expect(os.MkdirAll(filepath.Join(env.Scandir, ".keep"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(env.Scandir, ".keep", "x"), []byte("x\n"), 0o644)).To(Succeed())
		outside := filepath.Join(env.Root, "outside")
		evilTarget := filepath.Join(outside, "evil")
		Expect(os.MkdirAll(evilTarget, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(evilTarget, "run"), []byte(sleeper), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(evilTarget, "marker"), []byte("keep me\n"), 0o644)).To(Succeed())
		Expect(os.Symlink(evilTarget, filepath.Join(env.Scandir, "gateway-evil"))).To(Succeed())
		// A foreign regular file squatting on the slot name of a real profile.
		Expect(os.WriteFile(filepath.Join(env.Scandir, "gateway-squat"), []byte("not yours\n"), 0o644)).To(Succeed())
		out, rc := S6("s6-svscanctl", "-a", env.Scandir)
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) {
			g.Expect(env.Svstat(other)).To(HaveKeyWithValue("up", "true"))
			g.Expect(env.Svstat("gateway-evil")).To(HaveKeyWithValue("up", "true"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		otherPid, evilPid := env.Svstat(other)["pid"], env.Svstat("gateway-evil")["pid"]

		env.Profile("alpha", map[string]any{"desired_state": "running"})
		env.Profile("gone", map[string]any{"desired_state": "running"})
		env.Profile("squat", map[string]any{"desired_state": "running"})

		roots := []string{env.Scandir, outside}
		owned := func() map[string]bool {
			skip := map[string]bool{}
			for _, name := range []string{"default", "alpha", "gone", "late"} {
				skip[env.SlotDir(name)] = true
			}
			// The controller's own lock in the scandir (a dot-name s6-svscan ignores).
			skip[filepath.Join(env.Scandir, ".profile-controller.lock")] = true
			return skip
		}
		before := snapshot(roots, owned())
		fmt.Fprintf(GinkgoWriter, "foreign entries:\n%s\n", strings.Join(before, "\n"))
		expectUntouched := func(g Gomega) {
			g.Expect(snapshot(roots, owned())).To(Equal(before))
			g.Expect(env.Svstat(other)).To(And(HaveKeyWithValue("up", "true"), HaveKeyWithValue("pid", otherPid)))
			g.Expect(env.Svstat("gateway-evil")).To(And(HaveKeyWithValue("up", "true"), HaveKeyWithValue("pid", evilPid)))
		}

		By("one-shot passes: boot, runtime, plan and status")
		// gateway-squat blocks the squat profile's slot, so a pass may report failure (1), never a usage error.
		for _, args := range [][]string{
			{"reconcile", "--once", "--boot"}, {"reconcile", "--once"}, {"plan"}, {"status", "-o", "json"},
		} {
			_, stderr, code := env.CLI(args...)
			Expect(code).To(BeElementOf(0, 1, 3), "%v: stderr: %s", args, stderr) // 3: status saw an unhealthy profile
			expectUntouched(Default)
		}
		Eventually(func(g Gomega) { env.ExpectUp(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())

		By("the runtime loop: an unregister (s6-svscanctl -an), a create (s6-svscanctl -a) and resyncs")
		env.StartController()
		Expect(os.RemoveAll(env.ProfileDir("gone"))).To(Succeed())
		env.Profile("late", map[string]any{"desired_state": "running"})
		Eventually(func(g Gomega) {
			env.ExpectControllerAlive(g)
			g.Expect(env.SlotDir("gone")).NotTo(BeADirectory())
			env.ExpectUp(g, "late")
		}).WithTimeout(15 * time.Second).Should(Succeed())
		// resyncPeriod is 1s: this spans at least two full resyncs.
		Consistently(expectUntouched).WithTimeout(2500 * time.Millisecond).WithPolling(250 * time.Millisecond).Should(Succeed())
		env.StopController()
		expectUntouched(Default)
		env.ExpectUp(Default, "alpha")
	})
})
