//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("fault: s6-svscan not running, or its control FIFO missing", func() {
	var env *Env
	BeforeEach(func() {
		env = NewEnv()
		// A long resync: a resync enqueues every key at once, which would hide the per-key
		// retry backoff this spec looks at. File events still arrive.
		env.SetConfigDuration("resyncPeriod", 30*time.Second)
		env.SetConfigDuration("minUptime", time.Second)
	})
	AfterEach(func() { env.DumpOnFailure() })

	It("keeps a slot created meanwhile absent or complete, reports the failed scan with backoff, and converges when s6-svscan is back", func() {
		keep := env.StartKeep()
		// Up for longer than minUptime: losing it with s6-svscan below is no crash of a start.
		Consistently(func() int { return env.SupervisedPid("keep") }).WithTimeout(1300 * time.Millisecond).Should(Equal(keep))

		By("stopping s6-svscan under the running controller")
		env.StopSvscanUnderController()
		consistent := func(g Gomega) {
			env.ExpectControllerAlive(g)
			env.ExpectNoStaging(g)
			for _, name := range []string{"default", "keep", "late", "later"} {
				env.ExpectSlotConsistent(g, name)
			}
		}

		// Profiles appear in one rename here: see the file-event spec for profiles whose SOUL.md
		// lands after their dir.
		By("adding a profile while nothing reads the control FIFO")
		env.ProfileAtomic("late", map[string]any{"desired_state": "running"})
		Eventually(func(g Gomega) {
			consistent(g)
			g.Expect(env.ExpectSlotConsistent(g, "late")).To(BeTrue(), "the slot is published (and complete)")
			g.Expect(env.errorsFor("late")).To(ContainElement(And(ContainSubstring("s6-svscanctl -a"), ContainSubstring(env.Scandir))))
			st := env.StatusJSON(g).Profile(g, "late")
			g.Expect(st.SlotExists).To(BeTrue())
			g.Expect(st.Supervised).To(BeFalse())
			g.Expect(st.Phase).To(Equal("Unsupervised"))
		}).WithTimeout(convergeTimeout).WithPolling(50 * time.Millisecond).Should(Succeed())

		By("removing the control FIFO too, and adding another profile")
		Expect(os.Remove(filepath.Join(env.Scandir, ".s6-svscan", "control"))).To(Succeed())
		env.ProfileAtomic("later", map[string]any{"desired_state": "running"})
		Eventually(func(g Gomega) {
			consistent(g)
			g.Expect(env.ExpectSlotConsistent(g, "later")).To(BeTrue())
			g.Expect(env.errorsFor("later")).To(ContainElement(ContainSubstring("s6-svscanctl -a")))
		}).WithTimeout(convergeTimeout).WithPolling(50 * time.Millisecond).Should(Succeed())

		By("the retries of a failing profile back off")
		Consistently(consistent).WithTimeout(4 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		failures := logTimes(env.LogsMatching("Reconcile failed", `"profile":"late"`))
		fmt.Fprintf(GinkgoWriter, "failed reconciles of late at %v\n", failures)
		Expect(len(failures)).To(BeNumerically(">=", 3))
		// 0.5 s doubling: after 4 s and more there can be no more than about 5 retries, where a
		// retry without backoff (or on every resync) would make dozens.
		Expect(len(failures)).To(BeNumerically("<=", 7), "failures at %v", failures)
		// The events of the failing create itself (its slot renamed into the scandir, the new
		// profile-dir watch) may bring one or two looks at once, and the rate limiter counts each
		// failure: the first gaps can be milliseconds. The backed-off ones never shrink.
		var gaps, backedOff []time.Duration
		for i := 1; i < len(failures); i++ {
			gap := failures[i].Sub(failures[i-1])
			gaps = append(gaps, gap)
			if gap >= 450*time.Millisecond {
				backedOff = append(backedOff, gap)
			}
		}
		Expect(backedOff).NotTo(BeEmpty(), "no retry waited for the backoff: gaps %v", gaps)
		for i := 1; i < len(backedOff); i++ {
			Expect(backedOff[i]).To(BeNumerically(">=", backedOff[i-1]*9/10), "the retry interval shrank: gaps %v", gaps)
		}

		By("starting s6-svscan again: everything converges without help")
		env.StartSvscan()
		Eventually(func(g Gomega) {
			consistent(g)
			env.ExpectSettled(g, "keep")
			env.ExpectSettled(g, "late")
			env.ExpectSettled(g, "later")
			env.ExpectDown(g, "default")
		}).WithTimeout(convergeTimeout).WithPolling(50 * time.Millisecond).Should(Succeed())
		By("the loop is healthy: an edit of desired_state is followed within 2 s")
		env.DesiredFollowed("late", "stopped", nil)
		env.StopController()
	})
})

var _ = Describe("fault: an s6 binary hangs or is missing", func() {
	var env *Env
	var bin, hangLog string
	BeforeEach(func() {
		env = NewEnv()
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
		hangLog = filepath.Join(env.Root, "hang.pids")
		// s6-svc records its pid, then hangs.
		bin = env.FakeBinDir("hang-bin", map[string]string{
			"s6-svc": "#!/bin/sh\necho $$ >>" + shquote(hangLog) + "\nexec sleep 60\n",
		})
	})
	AfterEach(func() { env.DumpOnFailure() })

	hangPids := func() []int {
		var pids []int
		for _, f := range strings.Fields(readFileOr(hangLog)) {
			pid, err := strconv.Atoi(f)
			Expect(err).NotTo(HaveOccurred())
			pids = append(pids, pid)
		}
		return pids
	}

	// hangStop brings alpha up with the real binaries, then switches the controller to the
	// hanging s6-svc and asks for a stop. It returns once a timed-out s6-svc was reported.
	hangStop := func() string {
		env.RunningProfiles("alpha")
		env.BootSettled("alpha")

		env.SetConfig("s6BinDir", strconv.Quote(bin))
		env.SetConfigDuration("commandTimeout", time.Second)
		env.StartController()
		env.SetDesired("alpha", "stopped")
		var report string
		Eventually(func(g Gomega) {
			errs := env.errorsFor("alpha")
			g.Expect(errs).To(ContainElement(And(ContainSubstring("s6-svc -d "+env.SlotDir("alpha")), ContainSubstring("timed out"))))
			for _, e := range errs {
				if strings.Contains(e, "timed out") {
					report = e
				}
			}
		}).WithTimeout(5 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
		return report
	}

	It("bounds a hanging s6-svc by commandTimeout, keeps other profiles converging, and exits within 2 s on SIGTERM mid-hang", func() {
		hangStop()
		By("every timed-out s6-svc was killed")
		Eventually(func(g Gomega) {
			pids := hangPids()
			g.Expect(len(pids)).To(BeNumerically(">=", 2), "retried")
			for _, pid := range pids[:len(pids)-1] {
				g.Expect(PidAlive(pid)).To(BeFalse(), "hung s6-svc %d outlived its timeout", pid)
			}
		}).WithTimeout(5 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())

		By("a new Up profile needs only s6-svscanctl: it converges while alpha's stop hangs")
		t0 := time.Now()
		env.Profile("beta", map[string]any{"desired_state": "running"})
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "beta")
		}).WithTimeout(3 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		fmt.Fprintf(GinkgoWriter, "beta up %v after its profile appeared\n", time.Since(t0))
		Eventually(func(g Gomega) {
			g.Expect(env.StatusJSON(g).Profile(g, "alpha").Intent).To(Equal("down"))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		env.ExpectUp(Default, "alpha") // the stop never got through
		env.ExpectControllerAlive(Default)

		By("SIGTERM while an s6-svc hangs with a long commandTimeout")
		env.SetConfigDuration("commandTimeout", 30*time.Second)
		env.RestartController()
		n := len(hangPids())
		var hung int
		Eventually(func(g Gomega) {
			pids := hangPids()
			g.Expect(len(pids)).To(BeNumerically(">", n))
			hung = pids[len(pids)-1]
			g.Expect(PidAlive(hung)).To(BeTrue())
		}).WithTimeout(5 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		elapsed, code := env.TermController(5*time.Second, nil)
		fmt.Fprintf(GinkgoWriter, "controller exited %v after SIGTERM with code %d\n", elapsed, code)
		Expect(code).To(Equal(0))
		Expect(elapsed).To(BeNumerically("<", 2*time.Second))
		Eventually(func() bool { return PidAlive(hung) }).WithTimeout(time.Second).Should(BeFalse(), "the abandoned s6-svc was left running")
	})

	It("names the path of the s6 binary that hung", func() {
		report := hangStop()
		Expect(report).To(ContainSubstring(filepath.Join(bin, "s6-svc")), "the error does not say which s6-svc binary hung")
		env.StopController()
	})

	It("reports a missing s6-svscanctl with its path while profiles that need only s6-svc converge", func() {
		nobin := env.FakeBinDir("no-svscanctl-bin", nil, "s6-svscanctl")
		env.RunningProfiles("alpha")
		env.BootSettled("alpha")

		env.SetConfig("s6BinDir", strconv.Quote(nobin))
		env.Profile("gamma", map[string]any{"desired_state": "running"})
		env.SetDesired("alpha", "stopped")
		stdout, stderr, code := env.CLI("reconcile", "--once")
		Expect(code).To(Equal(1))
		Expect(stderr).To(ContainSubstring("profile gamma"))
		Expect(stderr).To(ContainSubstring(filepath.Join(nobin, "s6-svscanctl")))
		Expect(stdout).To(ContainSubstring("reconcile: profile=alpha prior_state=stopped action=stopped"))
		Eventually(func(g Gomega) { env.ExpectDown(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(env.ExpectSlotConsistent(Default, "gamma")).To(BeTrue())
		env.ExpectNoStaging(Default)

		By("with the binary back, the next pass converges")
		env.SetConfig("s6BinDir", strconv.Quote(s6BinDir))
		_, stderr, code = env.CLI("reconcile", "--once")
		Expect(code).To(Equal(0), stderr)
		Eventually(func(g Gomega) { env.ExpectUp(g, "gamma") }).WithTimeout(convergeTimeout).Should(Succeed())
	})
})

var _ = Describe("fault: the controller is SIGKILLed at random points of a pass", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("leaves nothing the next pass cannot converge, no staging dir, and never restarts or removes an Up gateway", func() {
		seed := GinkgoRandomSeed()
		rng := rand.New(rand.NewPCG(uint64(seed), 0x6b696c6c))
		fmt.Fprintf(GinkgoWriter, "kill points from seed %d (rerun with --ginkgo.seed=%d)\n", seed, seed)

		up := map[string]bool{"default": true, "up1": true, "up2": true, "up3": true}
		for name := range up {
			env.Profile(name, map[string]any{"desired_state": "running"})
		}
		env.Profile("stopped1", map[string]any{"desired_state": "stopped"})
		env.Profile("held", nil)
		env.Profile("booting", map[string]any{"gateway_state": "starting"})
		env.Profile("gwrun", map[string]any{"gateway_state": "running"})
		env.Profile("Bad_Name", map[string]any{"desired_state": "running"}) // invalid name: skipped
		Expect(os.MkdirAll(filepath.Join(env.Home, "profiles", "nosoul"), 0o755)).To(Succeed())
		valid := []string{"default", "booting", "gwrun", "held", "stopped1", "up1", "up2", "up3"}
		env.StartSvscan()

		pids := map[string]int{}      // Up profile -> pid once seen up
		inodes := map[string]uint64{} // existing profile -> slot inode once created
		var churn, gone []string
		intents := []map[string]any{{"desired_state": "running"}, {"desired_state": "stopped"}, nil}

		// stable checks what no pass, killed or not, may ever do.
		stable := func(g Gomega, when string) {
			for name, ino := range inodes {
				g.Expect(env.slotInode(name)).To(Equal(ino), "%s: slot of existing profile %s removed or replaced", when, name)
			}
			for name, pid := range pids {
				g.Expect(env.SupervisedPid(name)).To(Equal(pid), "%s: Up gateway %s restarted", when, name)
			}
		}

		const runs = 25
		killed, interrupted := 0, 0
		for i := range runs {
			if i > 0 && i%6 == 0 {
				By(fmt.Sprintf("run %d: container restart (wipe the scandir and runtime dir)", i))
				env.StopSvscan()
				env.WipeRun()
				env.StartSvscan()
				clear(pids)
				clear(inodes)
			}
			name := fmt.Sprintf("churn%d", i)
			intent := intents[rng.IntN(len(intents))]
			env.Profile(name, intent)
			if intent != nil && intent["desired_state"] == "running" {
				up[name] = true
			}
			churn = append(churn, name)
			if len(churn) > 2 {
				// Its gateway may be persisting its state right now (a temp file appears in
				// the dir): retry until the whole dir is gone.
				Eventually(os.RemoveAll).WithArguments(env.ProfileDir(churn[0])).WithTimeout(2 * time.Second).Should(Succeed())
				delete(up, churn[0])
				delete(pids, churn[0])
				delete(inodes, churn[0])
				gone = append(gone, churn[0])
				churn = churn[1:]
			}

			delay := time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
			cmd, _, stderr := env.StartCLI("reconcile", "--once", "--boot")
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var err error
			select {
			case err = <-exited:
			case <-time.After(delay):
				// It may have finished (and been reaped) just now: then it was not killed.
				if kerr := cmd.Process.Signal(syscall.SIGKILL); kerr != nil {
					Expect(kerr).To(MatchError(os.ErrProcessDone))
				}
				err = <-exited
			}
			wasKilled := cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled()
			if wasKilled {
				killed++
			}
			left := env.afterKill(append(append([]string{}, valid...), churn...))
			fmt.Fprintf(GinkgoWriter, "run %d: SIGKILL after %v: killed=%t (%v), left behind: %s %s\n", i, delay, wasKilled, err, left, strings.TrimSpace(stderr.String()))
			if left != "nothing" {
				interrupted++
			}
			stable(Default, fmt.Sprintf("run %d, after the kill", i))

			_, errOut, code := env.CLI("reconcile", "--once")
			Expect(code).To(Equal(0), "run %d: the pass after the kill failed: %s", i, errOut)
			Eventually(func(g Gomega) {
				env.ExpectNoStaging(g)
				names := append(append([]string{}, valid...), churn...)
				for _, n := range names {
					g.Expect(env.ExpectSlotConsistent(g, n)).To(BeTrue(), "profile %s has no slot", n)
					g.Expect(env.Svstat("gateway-"+n)).To(HaveKeyWithValue("supervised", "true"), n)
				}
				for n := range up {
					env.ExpectUp(g, n)
				}
				for _, n := range gone {
					g.Expect(env.SlotDir(n)).NotTo(BeADirectory(), "slot of deleted profile %s left behind", n)
				}
				g.Expect(env.SlotDir("Bad_Name")).NotTo(BeADirectory())
				stable(g, fmt.Sprintf("run %d, after the next pass", i))
			}).WithTimeout(convergeTimeout).WithPolling(20 * time.Millisecond).Should(Succeed())
			for n := range up {
				if _, ok := pids[n]; !ok {
					pids[n] = env.SupervisedPid(n)
				}
			}
			for _, n := range append(append([]string{}, valid...), churn...) {
				if _, ok := inodes[n]; !ok {
					inodes[n] = env.slotInode(n)
				}
			}
		}
		fmt.Fprintf(GinkgoWriter, "%d of %d passes were killed before they finished, %d left work for the next pass\n", killed, runs, interrupted)
		Expect(killed).To(BeNumerically(">=", runs/3), "too few passes were killed for the spec to mean much")
		Expect(interrupted).To(BeNumerically(">=", runs/4), "too few kills landed inside a pass's actions for the spec to mean much")
	})
})

var _ = Describe("fault: a second controller on the same runtime dir", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("is refused with exit 1 and a message naming the lock file, for run and for reconcile --once", func() {
		lock := filepath.Join(env.RuntimeDir, "lock")
		env.RunningProfiles("alpha")
		env.StartConverged(func(g Gomega) {
			env.ExpectSettled(g, "alpha")
			g.Expect(strings.TrimSpace(readFileOr(lock))).To(Equal(strconv.Itoa(env.ControllerPid())))
		})
		alpha := env.SupervisedPid("alpha")

		for _, args := range [][]string{{"run"}, {"reconcile", "--once"}, {"reconcile", "--once", "--boot"}} {
			_, stderr, code := env.CLIWithin(10*time.Second, args...)
			Expect(code).To(Equal(1), "%v", args)
			Expect(stderr).To(ContainSubstring(lock), "%v", args)
			Expect(stderr).To(ContainSubstring("another profile-controller is running"), "%v", args)
			Expect(stderr).To(ContainSubstring("pid "+strconv.Itoa(env.ControllerPid())), "%v", args)
			// run may log its start first; the reason is one line, and the last.
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			Expect(lines[len(lines)-1]).To(HavePrefix("profile-controller: another profile-controller is running: "+lock), "%v", args)
		}
		_, _, code := env.CLI("status")
		Expect(code).To(Equal(0), "status takes no lock")

		Expect(env.SupervisedPid("alpha")).To(Equal(alpha))
		env.ExpectControllerAlive(Default)
		env.DesiredFollowed("alpha", "stopped", nil)
		env.StopController()
	})
})

var _ = Describe("fault: the profiles root vanishes or is not a directory", func() {
	var env *Env
	BeforeEach(func() {
		env = NewEnv()
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
	})
	AfterEach(func() { env.DumpOnFailure() })

	It("unregisters nothing while profiles/ is moved away, a file or a symlink, reports it, and clears when it is back", func() {
		names := []string{"alpha", "beta", "gamma"}
		env.RunningProfiles(names...)
		env.StartConverged(func(g Gomega) { env.ExpectAllUp(g, names...) })
		pids, inodes := map[string]int{}, map[string]uint64{}
		for _, n := range names {
			pids[n], inodes[n] = env.SupervisedPid(n), env.slotInode(n)
		}
		profiles := filepath.Join(env.Home, "profiles")
		away := profiles + ".away"

		cases := []struct {
			what            string
			breakIt, mendIt func()
		}{
			{"moved away (an unmounted volume)",
				func() { Expect(os.Rename(profiles, away)).To(Succeed()) },
				func() { Expect(os.Rename(away, profiles)).To(Succeed()) }},
			{"replaced by a regular file",
				func() {
					Expect(os.Rename(profiles, away)).To(Succeed())
					Expect(os.WriteFile(profiles, []byte("not a dir\n"), 0o644)).To(Succeed())
				},
				func() {
					Expect(os.Remove(profiles)).To(Succeed())
					Expect(os.Rename(away, profiles)).To(Succeed())
				}},
			{"replaced by a symlink to the real directory",
				func() {
					Expect(os.Rename(profiles, away)).To(Succeed())
					Expect(os.Symlink(away, profiles)).To(Succeed())
				},
				func() {
					Expect(os.Remove(profiles)).To(Succeed())
					Expect(os.Rename(away, profiles)).To(Succeed())
				}},
		}
		for _, c := range cases {
			By("profiles/ " + c.what)
			reported := len(env.LogsMatching("", "profiles root could not be read", `"profile":"alpha"`))
			c.breakIt()
			Eventually(func(g Gomega) {
				doc := env.StatusJSON(g)
				g.Expect(doc.Problems).To(ContainElement(HaveField("Error", ContainSubstring("profiles root not listed"))))
				g.Expect(len(env.LogsMatching("", "profiles root could not be read", `"profile":"alpha"`))).To(BeNumerically(">", reported))
			}).WithTimeout(convergeTimeout).WithPolling(100 * time.Millisecond).Should(Succeed())
			Consistently(func(g Gomega) {
				env.ExpectControllerAlive(g)
				for _, n := range names {
					g.Expect(env.slotInode(n)).To(Equal(inodes[n]), "slot of %s removed", n)
					env.ExpectUp(g, n)
					g.Expect(env.SupervisedPid(n)).To(Equal(pids[n]), "gateway %s restarted", n)
				}
			}).WithTimeout(2500 * time.Millisecond).WithPolling(50 * time.Millisecond).Should(Succeed())
			Expect(env.StatusJSON(Default).Problems).To(ContainElement(HaveField("Error", ContainSubstring("profiles root not listed"))), "reported until it clears")

			c.mendIt()
			Eventually(func(g Gomega) {
				doc := env.StatusJSON(g)
				g.Expect(doc.Problems).To(BeEmpty())
				for _, n := range names {
					g.Expect(doc.Profile(g, n).Phase).To(Equal("Running"))
				}
				g.Expect(env.LogsMatching("Problem cleared", `"profile":"alpha"`)).NotTo(BeEmpty())
			}).WithTimeout(convergeTimeout).WithPolling(100 * time.Millisecond).Should(Succeed())
		}
		for _, n := range names {
			Expect(env.AppliedActions(n)).To(BeEmpty(), "the controller acted on %s", n)
		}
		env.StopController()
	})
})

var _ = Describe("fault: s6-svscan's service limit", func() {
	var env *Env
	BeforeEach(func() {
		env = NewEnv()
		env.SetConfig("servicesMax", "6")
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
	})
	AfterEach(func() { env.DumpOnFailure() })

	It("creates no slot past servicesMax (loggers count), names the limit per profile, and keeps every created slot supervised", func() {
		env.RunningProfiles("default", "alpha", "beta", "gamma")
		// Debian's s6-svscan 2.11 counts a service and its logger as one against -c: 3 logged
		// slots are its 6 services, the same limit the controller counts with servicesMax 6.
		env.StartSvscanWith("-c", "3")
		stdout, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(1))
		Expect(stderr).To(ContainSubstring("profile gamma"))
		Expect(stderr).To(ContainSubstring("service limit"))
		Expect(stderr).To(ContainSubstring("limit 6"))
		for _, n := range []string{"alpha", "beta", "default"} {
			Expect(stderr).NotTo(ContainSubstring("profile "+n+":"), "%s was within the limit", n)
			Expect(stdout).To(ContainSubstring("profile=" + n + " "))
		}
		allSupervised := func(g Gomega, slots ...string) {
			for _, s := range slots {
				g.Expect(env.Svstat(s)).To(HaveKeyWithValue("up", "true"), s)
				g.Expect(env.Svstat(filepath.Join(env.Scandir, s, "log"))).To(HaveKeyWithValue("up", "true"), s+"/log")
			}
			g.Expect(readFileOr(env.svscanLog)).NotTo(ContainSubstring("too many services"))
		}
		Eventually(func(g Gomega) {
			g.Expect(env.slotNames()).To(Equal([]string{"gateway-alpha", "gateway-beta", "gateway-default"}))
			allSupervised(g, "gateway-alpha", "gateway-beta", "gateway-default")
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("run keeps refusing gamma, with the limit in its error")
		env.StartController()
		Eventually(func(g Gomega) {
			g.Expect(env.errorsFor("gamma")).To(ContainElement(And(ContainSubstring("service limit"), ContainSubstring("limit 6"))))
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Consistently(func(g Gomega) {
			env.ExpectControllerAlive(g)
			g.Expect(env.slotNames()).To(Equal([]string{"gateway-alpha", "gateway-beta", "gateway-default"}))
			env.ExpectNoStaging(g)
			allSupervised(g, "gateway-alpha", "gateway-beta", "gateway-default")
		}).WithTimeout(1500 * time.Millisecond).WithPolling(50 * time.Millisecond).Should(Succeed())

		By("deleting profile beta makes room: gamma gets its slot")
		Expect(os.RemoveAll(env.ProfileDir("beta"))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(env.slotNames()).To(Equal([]string{"gateway-alpha", "gateway-default", "gateway-gamma"}))
			env.ExpectUp(g, "gamma")
			g.Expect(env.Svstat(filepath.Join(env.SlotDir("gamma"), "log"))).To(HaveKeyWithValue("up", "true"))
		}).WithTimeout(convergeTimeout).WithPolling(50 * time.Millisecond).Should(Succeed())
		Expect(readFileOr(env.svscanLog)).NotTo(ContainSubstring("too many services"), "s6-svscan was asked for more services than its limit")
		env.StopController()
	})
})

var _ = Describe("fault: inotify instances exhausted", func() {
	const limitPath = "/proc/sys/fs/inotify/max_user_instances"
	const resync = 500 * time.Millisecond
	var env *Env
	BeforeEach(func() {
		env = NewEnv()
		env.SetConfigDuration("resyncPeriod", resync)
	})
	AfterEach(func() { env.DumpOnFailure() })

	It("says once that it relies on the resync, and keeps following edits within a few resync periods", func() {
		orig, err := os.ReadFile(limitPath)
		Expect(err).NotTo(HaveOccurred())
		restore := func() { Expect(os.WriteFile(limitPath, orig, 0o644)).To(Succeed()) }
		DeferCleanup(restore)

		env.Profile("alpha", map[string]any{"desired_state": "running"})
		env.StartSvscan()
		inUse := inotifyInstancesInUse()
		fmt.Fprintf(GinkgoWriter, "inotify instances in use: %d; limit was %s", inUse, orig)
		Expect(os.WriteFile(limitPath, []byte(strconv.Itoa(inUse)), 0o644)).To(Succeed())
		env.StartController()
		Eventually(func(g Gomega) {
			g.Expect(env.LogsMatching("", "relying on the periodic resync")).NotTo(BeEmpty())
		}).WithTimeout(5 * time.Second).Should(Succeed())
		// The controller has given up on inotify; other processes of this machine need theirs.
		restore()
		Eventually(func(g Gomega) { env.ExpectSettled(g, "alpha") }).WithTimeout(convergeTimeout).Should(Succeed())

		// A few resync periods, with room for a loaded CI machine: without the resync these
		// edits would never be followed at all (no watch is left to report them).
		budget := 4*resync + time.Second
		for _, want := range []string{"stopped", "running", "stopped"} {
			t0 := time.Now()
			env.SetDesired("alpha", want)
			Eventually(func(g Gomega) {
				if want == "running" {
					env.ExpectSettled(g, "alpha")
				} else {
					env.ExpectDown(g, "alpha")
				}
			}).WithTimeout(until(t0.Add(budget))).WithPolling(20*time.Millisecond).Should(Succeed(), "desired_state %s", want)
			fmt.Fprintf(GinkgoWriter, "desired_state %s followed after %v\n", want, time.Since(t0))
		}
		t0 := time.Now()
		env.Profile("beta", map[string]any{"desired_state": "running"})
		Eventually(func(g Gomega) { env.ExpectUp(g, "beta") }).WithTimeout(until(t0.Add(budget + time.Second))).Should(Succeed())

		Expect(env.LogsMatching("", "relying on the periodic resync")).To(HaveLen(1), "said more than once")
		env.StopController()
	})
})

var _ = Describe("fault: a gateway rewrites its state file many times a second", func() {
	var env *Env
	var counter string
	BeforeEach(func() {
		env = NewEnv()
		counter = filepath.Join(env.Root, "s6-calls")
		env.SetConfig("s6BinDir", strconv.Quote(env.CountingBinDir(counter)))
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
	})
	AfterEach(func() { env.DumpOnFailure() })

	It("coalesces the events: no action and no s6 command during a 3 s burst of 50 writes a second", func() {
		env.RunningProfiles("alpha", "beta")
		env.StartConverged(func(g Gomega) { env.ExpectAllSettled(g, "alpha", "beta") })
		Expect(countLines(counter)).To(BeNumerically(">", 0), "the counting wrappers were not used")
		base := countLines(counter)
		Consistently(func() int { return countLines(counter) }).WithTimeout(1200*time.Millisecond).Should(Equal(base), "idle resyncs forked s6 commands")
		actions := len(env.AppliedActions("alpha"))
		alpha := env.SupervisedPid("alpha")

		By("rewriting alpha's state file 50 times a second for 3 s (same desired_state, a counter changes)")
		done := make(chan struct{})
		written := 0
		var writeErr error
		go func() {
			defer GinkgoRecover()
			defer close(done)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			stop := time.After(3 * time.Second)
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				state := env.ReadState("alpha")
				if state == nil {
					continue // caught between the gateway's temp file and its rename: never here
				}
				state["counter"] = written
				data := fmt.Appendf(nil, `{"desired_state":"running","gateway_state":%q,"pid":%v,"counter":%d}`, state["gateway_state"], state["pid"], written)
				tmp := env.StatePath("alpha") + ".burst"
				if writeErr = os.WriteFile(tmp, data, 0o644); writeErr != nil {
					return
				}
				if writeErr = os.Rename(tmp, env.StatePath("alpha")); writeErr != nil {
					return
				}
				written++
			}
		}()
		Consistently(func(g Gomega) {
			env.ExpectControllerAlive(g)
			g.Expect(countLines(counter)).To(Equal(base), "s6 commands forked during the burst:\n%s", readFileOr(counter))
			g.Expect(env.AppliedActions("alpha")).To(HaveLen(actions))
			g.Expect(env.SupervisedPid("alpha")).To(Equal(alpha))
		}).WithTimeout(3500 * time.Millisecond).WithPolling(20 * time.Millisecond).Should(Succeed())
		Eventually(done).Should(BeClosed())
		Expect(writeErr).NotTo(HaveOccurred())
		Expect(written).To(BeNumerically(">=", 100), "the burst was too slow to mean much")

		By("a real edit right after the burst is still followed, and forks s6-svc")
		env.DesiredFollowed("alpha", "stopped", func(g Gomega) {
			g.Expect(readFileOr(counter)).To(ContainSubstring("s6-svc -d " + env.SlotDir("alpha")))
		})
		env.StopController()
	})
})

var _ = Describe("graceful shutdown: SIGTERM while the gateways go down", func() {
	var env *Env
	names := []string{"alpha", "beta", "gamma"}
	BeforeEach(func() {
		// A 1 ms settle window and minUptime: a controller that still acted would restart a
		// stopped gateway at once, so the spec can see it.
		env = NewEnvWith(Options{SettlePeriod: time.Millisecond})
		env.SetConfigDuration("minUptime", time.Millisecond)
		env.SetConfigDuration("resyncPeriod", 500*time.Millisecond)
	})
	AfterEach(func() { env.DumpOnFailure() })

	It("restarts none of them and exits 0 within 2 s", func() {
		env.RunningProfiles(names...)
		env.StartConverged(func(g Gomega) { env.ExpectAllUp(g, names...) })

		By("control: without SIGTERM a bare s6-svc -d is corrected at once")
		out, rc := S6("s6-svc", "-d", env.SlotDir("alpha"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) {
			g.Expect(env.AppliedActions("alpha")).To(ContainElement("start gateway-alpha (drift)"))
			env.ExpectUp(g, "alpha")
		}).WithTimeout(2 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
		applied := map[string]int{}
		for _, n := range names {
			applied[n] = len(env.AppliedActions(n))
		}

		By("SIGTERM, then s6-svc -d on every gateway at once")
		elapsed, code := env.TermController(5*time.Second, func() {
			for _, n := range names {
				out, rc := S6("s6-svc", "-d", env.SlotDir(n))
				Expect(rc).To(Equal(0), out)
			}
		})
		fmt.Fprintf(GinkgoWriter, "controller exited %v after SIGTERM with code %d\n", elapsed, code)
		Expect(code).To(Equal(0))
		Expect(elapsed).To(BeNumerically("<", 2*time.Second))
		entries := env.LogEntries()
		shut := slices.IndexFunc(entries, func(l LogEntry) bool { return l.Str("msg") == "Shutting down" })
		Expect(shut).To(BeNumerically(">=", 0), "no Shutting down log line")
		for _, l := range entries[shut:] {
			Expect(l.Str("msg")).NotTo(Equal("Applied action"), "acted during shutdown: %v", l)
		}
		for _, n := range names {
			Expect(env.AppliedActions(n)).To(HaveLen(applied[n]), "%s: acted after SIGTERM", n)
		}
		Eventually(func(g Gomega) {
			for _, n := range names {
				env.ExpectDown(g, n)
			}
		}).WithTimeout(2 * time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			for _, n := range names {
				env.ExpectDown(g, n)
			}
		}).WithTimeout(500 * time.Millisecond).Should(Succeed())
	})
})

var _ = Describe("fault: file events race the watch on a new profile dir", func() {
	var env *Env
	BeforeEach(func() {
		env = NewEnv()
		// Only file events can pick the profiles up in time: the resync is far away.
		env.SetConfigDuration("resyncPeriod", 30*time.Second)
	})
	AfterEach(func() { env.DumpOnFailure() })

	It("picks up a profile whose SOUL.md lands just after its dir, without waiting for the resync", func() {
		env.StartConverged(func(g Gomega) { env.ExpectDown(g, "default") })

		seed := GinkgoRandomSeed()
		rng := rand.New(rand.NewPCG(uint64(seed), 0x6e6577))
		fmt.Fprintf(GinkgoWriter, "gaps from seed %d\n", seed)
		var missed []string
		for i := range 20 {
			name := fmt.Sprintf("p%02d", i)
			// Like a CLI creating a profile: the dir first (the controller, idle, looks at it at
			// once and finds no profile), its files a moment later.
			gap := 400*time.Microsecond + time.Duration(rng.Int64N(int64(800*time.Microsecond)))
			Expect(os.MkdirAll(env.ProfileDir(name), 0o755)).To(Succeed())
			<-time.After(gap)
			env.Profile(name, map[string]any{"desired_state": "running"})
			err := InterceptGomegaFailure(func() {
				Eventually(func(g Gomega) { env.ExpectUp(g, name) }).WithTimeout(time.Second).WithPolling(10 * time.Millisecond).Should(Succeed())
			})
			if err != nil {
				missed = append(missed, fmt.Sprintf("%s (SOUL.md %v after the dir)", name, gap))
			}
		}
		Expect(missed).To(BeEmpty(), "profiles not picked up within 1 s (only the resync, 30 s away, would find them)")
		env.StopController()
	})
})
