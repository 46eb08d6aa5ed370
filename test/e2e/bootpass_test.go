//go:build e2e

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// bootLogLines counts the lines of the boot log (0 when there is none).
func (e *Env) bootLogLines() int {
	b, err := os.ReadFile(e.BootLogPath())
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

var _ = Describe("boot pass: cut short, run twice", func() {
	var env *Env
	AfterEach(func() { env.DumpOnFailure() })

	It("never stops a gateway it started when the boot pass runs again after a SIGKILL", func() {
		// The gateways stay "starting" for a long while: the state a second boot pass reads, and
		// whose boot column says down.
		env = NewEnvWith(Options{StartDelay: time.Minute})
		seed := GinkgoRandomSeed()
		rng := rand.New(rand.NewPCG(uint64(seed), 0x626f6f74))
		fmt.Fprintf(GinkgoWriter, "kill points from seed %d\n", seed)
		var names []string
		for i := range 30 {
			names = append(names, fmt.Sprintf("gw%02d", i))
		}
		const runs = 8
		stopped, withUp := 0, 0
		for run := range runs {
			if run > 0 {
				env.StopSvscan()
				env.WipeRun()
			}
			for _, n := range names {
				env.Profile(n, map[string]any{"gateway_state": "running"}) // boot column: up
			}
			env.StartSvscan()
			delay := time.Duration(50+rng.Int64N(1200)) * time.Millisecond
			cmd, _, _ := env.StartCLI("reconcile", "--once", "--boot")
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				fmt.Fprintf(GinkgoWriter, "run %d: the first boot pass finished: %v\n", run, err)
			case <-time.After(delay):
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					Expect(err).To(MatchError(os.ErrProcessDone))
				}
				err := <-exited
				fmt.Fprintf(GinkgoWriter, "run %d: killed: %v\n", run, err)
			}
			// Whatever the kill left: the gateways up now were started in this container.
			pids := map[string]int{}
			for _, n := range names {
				if st := env.Svstat("gateway-" + n); st["up"] == "true" && st["wantedup"] == "true" {
					pids[n] = env.SupervisedPid(n)
				}
			}
			if len(pids) > 0 {
				withUp++
			}
			_, errOut, code := env.CLI("reconcile", "--once", "--boot")
			Expect(code).To(Equal(0), "run %d: second boot pass: %s", run, errOut)
			for n, pid := range pids {
				if env.SupervisedPid(n) != pid || env.Svstat("gateway-" + n)["wantedup"] != "true" {
					stopped++
					fmt.Fprintf(GinkgoWriter, "run %d: %s (pid %d) was stopped by the second boot pass\n", run, n, pid)
				}
			}
			fmt.Fprintf(GinkgoWriter, "run %d: SIGKILL after %v, %d gateways up before the second boot pass\n", run, delay, len(pids))
			Eventually(func(g Gomega) {
				for _, n := range names {
					env.ExpectUp(g, n)
				}
			}).WithTimeout(convergeTimeout).Should(Succeed())
			Expect(os.ReadFile(env.BootLogPath())).To(ContainSubstring("action=started"))
		}
		Expect(stopped).To(BeZero(), "gateways started in this container were stopped by a boot pass")
		Expect(withUp).To(BeNumerically(">=", runs/2), "too few runs had gateways up before the second boot pass for the spec to mean much")
	})

	It("leaves no boot marker and no boot-log line when SIGTERM ends the boot pass, and the next start redoes it", func() {
		env = NewEnv()
		seed := GinkgoRandomSeed()
		rng := rand.New(rand.NewPCG(uint64(seed), 0x7465726d))
		var names []string
		for i := range 60 {
			names = append(names, fmt.Sprintf("t%02d", i))
			env.Profile(names[i], map[string]any{"desired_state": "running"})
		}
		marker := filepath.Join(env.RuntimeDir, "boot-done")
		interrupted := 0
		for run := range 6 {
			if run > 0 {
				env.StopSvscan()
				env.WipeRun()
			}
			env.StartSvscan()
			before := env.bootLogLines()
			args := []string{"run"}
			if run%2 == 1 {
				args = []string{"reconcile", "--once", "--boot"}
			}
			delay := time.Duration(20+rng.Int64N(300)) * time.Millisecond
			cmd, _, errOut := env.StartCLI(args...)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				fmt.Fprintf(GinkgoWriter, "run %d: finished before the SIGTERM: %v\n", run, err)
			case <-time.After(delay):
				Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
				Eventually(exited).WithTimeout(5 * time.Second).Should(Receive())
			}
			status := cmd.ProcessState.Sys().(syscall.WaitStatus)
			Expect(status.Signaled()).To(BeFalse(), "%v died of a signal: %s", args, errOut.String())
			added := env.bootLogLines() - before
			_, statErr := os.Stat(marker)
			fmt.Fprintf(GinkgoWriter, "run %d: %v, SIGTERM after %v: exit %d, marker %v, %d boot-log lines\n",
				run, args, delay, status.ExitStatus(), statErr == nil, added)
			if statErr == nil {
				Expect(added).To(Equal(len(names)+1), "a recorded boot pass logs every profile")
				if args[0] == "run" {
					Expect(status.ExitStatus()).To(Equal(0))
				}
				continue
			}
			interrupted++
			Expect(added).To(BeZero(), "an interrupted boot pass wrote boot-log lines")
			if args[0] == "run" {
				Expect(status.ExitStatus()).To(Equal(0), "run stopped by SIGTERM exits 0")
			} else {
				Expect(status.ExitStatus()).To(Equal(1), "an interrupted reconcile --once fails")
			}
			// The next start does the boot pass (and records it).
			_, out, code := env.CLI("reconcile", "--once")
			Expect(code).To(Equal(0), out)
			Expect(marker).To(BeARegularFile())
			Expect(env.bootLogLines() - before).To(Equal(len(names) + 1))
		}
		Expect(interrupted).To(BeNumerically(">=", 2), "too few SIGTERMs landed inside the boot pass for the spec to mean much")
	})
})
