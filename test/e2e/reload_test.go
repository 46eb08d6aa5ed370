//go:build e2e

package e2e

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("reload: run applies a new configuration without a restart, or refuses it and keeps the old", func() {
	var env *Env
	AfterEach(func() {
		if env != nil {
			env.DumpOnFailure()
		}
	})

	It("on SIGHUP rewrites every run script in place for a new extraEnv, restarts no gateway, and shows generation 2 in status and the metric", func() {
		env = NewEnvWith(Options{RunTemplate: envRunTemplate()})
		addr := freeAddr()
		env.SetConfig("metricsAddr", strconv.Quote(addr))
		env.RunningProfiles("alpha", "beta")
		env.StartConverged(func(g Gomega) { env.ExpectAllUp(g, "alpha", "beta") })
		Eventually(func(g Gomega) {
			g.Expect(env.ConfigStatus(g).Config.Generation).To(Equal(int64(1)))
			g.Expect(MetricValue(g, addr, `profile_controller_config_generation\{rendering="[0-9a-f]+"\}`)).To(Equal(1.0))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		pids := map[string]int{"alpha": env.SupervisedPid("alpha"), "beta": env.SupervisedPid("beta")}
		stamps := map[string]map[string]fileStamp{"alpha": env.slotStamps("alpha"), "beta": env.slotStamps("beta")}

		By("a new extraEnv, then SIGHUP at once")
		env.WriteConfigAtomic(env.ConfigWith("extraEnv", `{RELOADED: "yes"}`))
		env.Hup()
		Eventually(func(g Gomega) {
			for _, name := range []string{"alpha", "beta"} {
				run, err := os.ReadFile(filepath.Join(env.SlotDir(name), "run"))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(string(run)).To(ContainSubstring("export RELOADED='yes'\n"), name)
			}
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(env.reloadLogs("Config reloaded")).To(HaveLen(1))
		for _, name := range []string{"alpha", "beta"} {
			now := env.slotStamps(name)
			Expect(now["run"]).NotTo(Equal(stamps[name]["run"]), "%s: run rewritten", name)
			for _, f := range []string{"type", "finish", "log/run"} {
				Expect(now[f]).To(Equal(stamps[name][f]), "%s: %s renders the same and must not be written", name, f)
			}
			Expect(env.SupervisedPid(name)).To(Equal(pids[name]), "%s: a reload restarts no gateway", name)
			Eventually(func() []string { return env.AppliedActions(name) }).Should(ContainElement("update gateway-"+name+" run"), "the log line follows the action")
		}
		Eventually(func(g Gomega) {
			st := env.ConfigStatus(g).Config
			g.Expect(st.Generation).To(Equal(int64(2)))
			g.Expect(st.Changed).To(Equal([]string{"extraEnv"}))
			g.Expect(st.RenderingDiffers).To(BeFalse())
			g.Expect(MetricValue(g, addr, `profile_controller_config_generation\{rendering="[0-9a-f]+"\}`)).To(Equal(2.0))
			g.Expect(MetricValue(g, addr, `profile_controller_config_reloads_total\{result="applied"\}`)).To(Equal(1.0))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		stdout, _, _ := env.CLI("status")
		Expect(stdout).To(MatchRegexp(`(?m)^config generation 2 \(rendering [0-9a-f]+, applied \S+, changed extraEnv\)$`))

		By("SIGHUP on an unchanged file: handled, nothing applied")
		env.Hup()
		Eventually(func() []string { return env.reloadLogs("Config unchanged") }).
			WithTimeout(convergeTimeout).Should(ContainElement("signal"))
		env.ExpectControllerAlive(Default)
		Expect(env.ConfigStatus(Default).Config.Generation).To(Equal(int64(2)))
		env.StopController()
	})

	It("refuses an invalid config and a restart-only change with one line naming the file, and keeps the old config in use", func() {
		env = NewEnv()
		env.RunningProfiles("alpha")
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "alpha") })
		Eventually(func(g Gomega) { g.Expect(env.ConfigStatus(g).Config.Generation).To(Equal(int64(1))) }).
			WithTimeout(convergeTimeout).Should(Succeed())
		stamps := env.slotStamps("alpha")
		pid := env.SupervisedPid("alpha")
		good, err := os.ReadFile(env.ConfigPath)
		Expect(err).NotTo(HaveOccurred())
		unknownField := env.ConfigWith("resyncPeriood", `"1s"`)
		otherScandir := strings.Replace(env.ConfigWith("extraEnv", `{A: "1"}`), strconv.Quote(env.Scandir), strconv.Quote(env.Scandir+"-other"), 1)

		By("an unknown field")
		env.WriteConfigAtomic(unknownField)
		env.Hup()
		var refused []string
		Eventually(func() []string {
			refused = env.reloadLogs("Config reload refused")
			return refused
		}).WithTimeout(convergeTimeout).ShouldNot(BeEmpty())
		Expect(refused[0]).To(MatchRegexp(`^(signal|file) config: %s: line \d+: unknown field "resyncPeriood" \(did you mean "resyncPeriod"\?\)$`,
			regexp.QuoteMeta(env.ConfigPath)))

		By("a changed scandir, with a valid extraEnv beside it")
		env.WriteConfigAtomic(otherScandir)
		Eventually(func() []string { return env.reloadLogs("Config reload refused") }).WithTimeout(convergeTimeout).
			Should(ContainElement("file config: " + env.ConfigPath + ": scandir cannot change while running (restart the controller to apply it)"))

		By("the old config kept running: nothing applied, nothing rewritten, no restart")
		Expect(env.reloadLogs("Config reloaded")).To(BeEmpty())
		Expect(env.slotStamps("alpha")).To(Equal(stamps))
		Expect(env.SupervisedPid("alpha")).To(Equal(pid))
		env.ExpectControllerAlive(Default)

		By("the good file back (status reads the file too): generation 1 in use, the refusal shown")
		env.WriteConfigAtomic(string(good))
		env.Hup()
		Eventually(func() []string { return env.reloadLogs("Config unchanged") }).WithTimeout(convergeTimeout).ShouldNot(BeEmpty())
		st := env.ConfigStatus(Default).Config
		Expect(st.Generation).To(Equal(int64(1)))
		Expect(st.Refused).To(Equal("config: " + env.ConfigPath + ": scandir cannot change while running (restart the controller to apply it)"))
		stdout, _, _ := env.CLI("status")
		Expect(stdout).To(MatchRegexp(`(?m)^config generation 1 \(rendering [0-9a-f]+, applied \S+\); last reload refused at \S+: config: .*scandir cannot change`))
		env.StopController()
	})

	It("applies a file replaced by a rename, without a signal", func() {
		env = NewEnvWith(Options{RunTemplate: envRunTemplate()})
		env.RunningProfiles("alpha")
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "alpha") })
		pid := env.SupervisedPid("alpha")
		before := env.slotStamps("alpha")

		env.WriteConfigAtomic(env.ConfigWith("extraEnv", `{FROM_FILE: "1"}`))
		Eventually(func(g Gomega) {
			run, err := os.ReadFile(filepath.Join(env.SlotDir("alpha"), "run"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(run)).To(ContainSubstring("export FROM_FILE='1'\n"))
			g.Expect(env.ConfigStatus(g).Config.Generation).To(Equal(int64(2)))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(env.reloadLogs("Config reloaded")).To(Equal([]string{"file"}))
		Expect(env.slotStamps("alpha")["finish"]).To(Equal(before["finish"]))
		Expect(env.SupervisedPid("alpha")).To(Equal(pid))
		env.StopController()
	})

	It("gives existing slots the supervise skeleton when gatewayUser is newly set, without restarting their gateways", func() {
		requireRoot("the gatewayUser reload spec creates a user")
		gid := createReloadUser()
		env = NewEnv()
		Expect(os.Chmod(env.Root, 0o755)).To(Succeed()) // MkdirTemp made it 0700
		env.RunningProfiles("alpha")
		env.StartConverged(func(g Gomega) { env.ExpectUp(g, "alpha") })
		slot := env.SlotDir("alpha")
		fi, err := os.Lstat(filepath.Join(slot, "supervise"))
		Expect(err).NotTo(HaveOccurred())
		Expect(fi.Mode().Perm()).To(Equal(fs.FileMode(0o700)), "s6's own supervise/ before the reload")
		pid := env.SupervisedPid("alpha")

		env.WriteConfigAtomic(env.ConfigWith("gatewayUser", strconv.Quote(reloadUser)))
		Eventually(func(g Gomega) {
			for _, d := range []string{slot, filepath.Join(slot, "log")} {
				for name, mode := range map[string]fs.FileMode{
					"event":             fs.ModeDir | fs.ModeSetgid | fs.ModeSticky | 0o730,
					"supervise":         fs.ModeDir | 0o710,
					"supervise/control": fs.ModeNamedPipe | 0o620,
				} {
					fi, err := os.Lstat(filepath.Join(d, name))
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(fi.Mode()).To(Equal(mode), "%s/%s", d, name)
					g.Expect(int(fi.Sys().(*syscall.Stat_t).Gid)).To(Equal(gid), "%s/%s group", d, name)
				}
			}
			// The log line follows the action, so it may come a moment after the files.
			g.Expect(env.AppliedActions("alpha")).To(ContainElement("update gateway-alpha +skeleton"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(env.SupervisedPid("alpha")).To(Equal(pid), "the skeleton restarts nothing")

		By("the user drives the running slot through it")
		out, rc := asUser(reloadUser, s6Tool("s6-svstat"), slot)
		Expect(rc).To(Equal(0), out)
		Expect(out).To(HavePrefix("up "))
		env.StopController()
	})
})

// The account of the gatewayUser reload spec: its own, so that it never meets the non-root
// spec's account in a run of another worktree.
const (
	reloadUser = "pcreload"
	reloadUID  = 10078
)

// createReloadUser adds reloadUser with a group of its own, removed when the spec ends, and
// returns its gid.
func createReloadUser() int {
	_, gid := createUser(reloadUser, reloadUID)
	return gid
}

// asUser runs argv as name through runuser (20 s at most) and returns its output and exit code.
func asUser(name string, argv ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runuser", append([]string{"-u", name, "--"}, argv...)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + s6BinDir + ":/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return string(out), exitErr.ExitCode()
	}
	Expect(err).NotTo(HaveOccurred())
	return string(out), 0
}
