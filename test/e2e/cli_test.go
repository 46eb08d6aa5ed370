//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The read-only commands (status, describe, render, diff, plan) against a real s6 tree.

// cliDoc is the part of `status -o json` these specs read.
type cliDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Healthy    *bool  `json:"healthy"`
	Unhealthy  []struct {
		Profile string `json:"profile"`
		Reason  string `json:"reason"`
	} `json:"unhealthy"`
	Profiles []struct {
		Profile string `json:"profile"`
		Phase   string `json:"phase"`
	} `json:"profiles"`
}

var _ = Describe("CLI: status, describe, render, diff and plan against a real tree", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("shows the tree, follows a drifted file from describe and diff to plan, and exits 3 when a profile is unhealthy", func() {
		env.Profile("default", map[string]any{"gateway_state": "stopped"})
		env.Profile("coder", map[string]any{"desired_state": "running"})
		env.Profile("assistant", map[string]any{"desired_state": "stopped"})
		env.BootSettled("coder")
		Eventually(func(g Gomega) { env.ExpectDown(g, "assistant") }).WithTimeout(convergeTimeout).Should(Succeed())

		By("status: a table with AGE and every profile, exit 0")
		Eventually(func(g Gomega) {
			stdout, stderr, code := env.CLI("status")
			g.Expect(code).To(Equal(0), stderr)
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			g.Expect(lines).To(HaveLen(4), stdout)
			g.Expect(lines[0]).To(MatchRegexp(`^PROFILE +INTENT +PRIOR +PHASE +STATE +PID +PORT +AGE +NOTE$`))
			g.Expect(stdout).To(MatchRegexp(`(?m)^coder +up +running +Running +up +%d +9570 +\d+s$`, env.SupervisedPid("coder")))
			g.Expect(stdout).To(MatchRegexp(`(?m)^assistant +down +stopped +Stopped +down( \(exit \d+\))? +- +9714 +\d+s$`))
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("status PROFILE -o wide: one profile, the wide columns")
		stdout, stderr, code := env.CLI("status", "coder", "-o", "wide")
		Expect(code).To(Equal(0), stderr)
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		Expect(lines).To(HaveLen(2), stdout)
		Expect(lines[0]).To(MatchRegexp(`^PROFILE +INTENT +BOOT +PRIOR +DESIRED +GATEWAY +PHASE +STATE +READY +PID +PORT +SERVED-BY +DEATHS +AGE +ACTIONS +NOTE$`))
		Expect(lines[1]).To(MatchRegexp(`^coder +up +up +running +running +running +Running +up `))

		By("status -o json and -o yaml carry the version")
		doc := cliStatusJSON(env, 0)
		Expect(doc.APIVersion).To(Equal("profile-controller/v1"))
		Expect(doc.Kind).To(Equal("StatusReport"))
		Expect(doc.Healthy).To(HaveValue(BeTrue()))
		stdout, _, code = env.CLI("status", "-o", "yaml")
		Expect(code).To(Equal(0))
		Expect(stdout).To(ContainSubstring("apiVersion: profile-controller/v1\n"))

		By("render prints what the slot holds")
		stdout, stderr, code = env.CLI("render", "coder")
		Expect(code).To(Equal(0), stderr)
		for _, f := range []string{"type", "run", "finish", "log/run"} {
			Expect(stdout).To(ContainSubstring("==> gateway-coder/" + f + " (mode "))
		}
		run, stderr, code := env.CLI("render", "coder", "--file", "run")
		Expect(code).To(Equal(0), stderr)
		onDisk, err := os.ReadFile(filepath.Join(env.SlotDir("coder"), "run"))
		Expect(err).NotTo(HaveOccurred())
		Expect(run).To(Equal(string(onDisk)))
		Expect(run).To(ContainSubstring(fakeGatewayBin))

		By("describe and diff: in sync")
		stdout, stderr, code = env.CLI("describe", "coder")
		Expect(code).To(Equal(0), stderr)
		Expect(stdout).To(MatchRegexp(`(?m)^Phase: +Running$`))
		Expect(stdout).To(MatchRegexp(`(?m)^  Running +True +- +pid %d$`, env.SupervisedPid("coder")))
		Expect(stdout).To(MatchRegexp(`(?m)^  FilesInSync +True`))
		Expect(stdout).To(MatchRegexp(`(?m)^  run +in sync$`))
		Expect(stdout).To(MatchRegexp(`(?m)^  Normal +Created +\S+ +create gateway-coder \(up\): intent up \(boot column\) from desired_state "running"`))
		stdout, stderr, code = env.CLI("diff", "coder")
		Expect(code).To(Equal(0), "diff of an in-sync slot: %s%s", stdout, stderr)
		Expect(stdout).To(BeEmpty())

		By("someone edits the slot's run script")
		pid := env.SupervisedPid("coder")
		edited := filepath.Join(env.SlotDir("coder"), "run")
		Expect(os.WriteFile(edited+".edit", []byte("#!/bin/sh\nexec sleep 1000\n"), 0o755)).To(Succeed())
		Expect(os.Rename(edited+".edit", edited)).To(Succeed())

		stdout, stderr, code = env.CLI("describe", "coder")
		Expect(code).To(Equal(0), stderr)
		Expect(stdout).To(MatchRegexp(`(?m)^  FilesInSync +False +Drifted +run `))
		Expect(stdout).To(MatchRegexp(`(?m)^  run +drifted$`))
		Expect(stdout).To(MatchRegexp(`(?m)^  Next pass: +update gateway-coder run$`))

		stdout, stderr, code = env.CLI("diff", "coder")
		Expect(code).To(Equal(1), "diff of a drifted slot: %s", stderr)
		Expect(stdout).To(ContainSubstring("--- " + edited + "\n+++ rendered/gateway-coder/run\n"))
		Expect(stdout).To(ContainSubstring("\n-exec sleep 1000\n"))
		Expect(stdout).To(ContainSubstring("\n+exec " + shquote(fakeGatewayBin)))

		By("plan and reconcile --once --dry-run print the same future")
		plan, planErr, code := env.CLI("plan")
		Expect(code).To(Equal(0), planErr)
		Expect(plan).To(Equal("plan: update gateway-coder run\n"))
		dry, dryErr, code := env.CLI("reconcile", "--once", "--dry-run")
		Expect(code).To(Equal(0), dryErr)
		Expect(dry).To(Equal(plan))
		Expect(dryErr).To(Equal(planErr))
		Expect(string(mustRead(edited))).To(Equal("#!/bin/sh\nexec sleep 1000\n"), "a dry run rewrote the file")

		By("a real pass rewrites the file without a restart; then nothing is left to do")
		_, stderr, code = env.CLI("reconcile", "--once")
		Expect(code).To(Equal(0), stderr)
		stdout, stderr, code = env.CLI("diff", "coder")
		Expect(code).To(Equal(0), "diff after the update: %s%s", stdout, stderr)
		stdout, _, code = env.CLI("plan")
		Expect(code).To(Equal(0))
		Expect(stdout).To(Equal("plan: nothing to do\n"))
		Expect(env.SupervisedPid("coder")).To(Equal(pid))

		By("a skipped profile dir makes status exit 3, in the JSON form too, which says why")
		Expect(os.MkdirAll(filepath.Join(env.Home, "profiles", "Bad_Name"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(env.Home, "profiles", "Bad_Name", "SOUL.md"), nil, 0o644)).To(Succeed())
		stdout, _, code = env.CLI("status")
		Expect(code).To(Equal(3))
		Expect(stdout).To(ContainSubstring("skipped Bad_Name: "))
		doc = cliStatusJSON(env, 3)
		Expect(doc.Healthy).To(HaveValue(BeFalse()))
		Expect(doc.Unhealthy).To(ContainElement(And(HaveField("Profile", "Bad_Name"), HaveField("Reason", "Skipped"))))
		_, _, code = env.CLI("status", "coder")
		Expect(code).To(Equal(0), "coder itself is healthy")

		By("a slot no supervisor runs is unhealthy too")
		Expect(os.RemoveAll(filepath.Join(env.Home, "profiles", "Bad_Name"))).To(Succeed())
		env.StopSvscan()
		stdout, _, code = env.CLI("status", "coder")
		Expect(code).To(Equal(3), stdout)
		Expect(stdout).To(MatchRegexp(`(?m)^coder +up +running +Unsupervised +unsupervised `))
		stdout, _, code = env.CLI("describe", "coder")
		Expect(code).To(Equal(0))
		Expect(stdout).To(MatchRegexp(`(?m)^  Healthy +False +Unsupervised `))
	})

	It("status --watch prints again on a change, not otherwise, and stops cleanly on SIGINT", func() {
		env.Profile("coder", map[string]any{"desired_state": "running"})
		env.BootSettled("coder")

		cmd := exec.Command(controllerBin, "--config", env.ConfigPath, "status", "--watch", "--interval", "100ms")
		cmd.Env = env.environ()
		out, errOut := &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, errOut
		cmd.WaitDelay = 2 * time.Second
		Expect(cmd.Start()).To(Succeed())
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		DeferCleanup(func() {
			select {
			case <-done:
			default:
				_ = cmd.Process.Kill()
				<-done
			}
			fmt.Fprintf(GinkgoWriter, "--- status --watch stdout\n%s--- stderr\n%s", out.String(), errOut.String())
		})
		tables := func() int { return strings.Count(out.String(), "PROFILE ") }

		Eventually(out.String).WithTimeout(convergeTimeout).Should(MatchRegexp(`(?m)^coder +up +running +Running +up `))
		Consistently(tables).WithTimeout(800*time.Millisecond).WithPolling(100*time.Millisecond).Should(Equal(1),
			"an unchanged report is not printed again")

		env.SetDesired("coder", "stopped") // the intent changes; no controller acts on it
		Eventually(tables).WithTimeout(convergeTimeout).Should(Equal(2))
		Expect(out.String()).To(MatchRegexp(`(?m)^coder +down +\S+ +Running +up `))

		Expect(cmd.Process.Signal(syscall.SIGINT)).To(Succeed())
		Eventually(done).WithTimeout(5*time.Second).Should(BeClosed(), "status --watch did not stop on SIGINT")
		Expect(cmd.ProcessState.ExitCode()).To(Equal(0), "stderr: %s", errOut.String())
		Expect(errOut.String()).To(BeEmpty())
	})
})

var _ = Describe("CLI: run --notify-fd", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("writes one newline to the descriptor once the boot pass is done, then stops cleanly on SIGTERM", func() {
		env.Profile("coder", map[string]any{"desired_state": "running"})
		env.StartSvscan()
		r, w, err := os.Pipe()
		Expect(err).NotTo(HaveOccurred())
		defer r.Close()
		cmd := exec.Command(controllerBin, "--config", env.ConfigPath, "run", "--notify-fd", "3")
		cmd.Env = env.environ()
		cmd.ExtraFiles = []*os.File{w} // fd 3 in the controller
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		cmd.WaitDelay = 2 * time.Second
		Expect(cmd.Start()).To(Succeed())
		Expect(w.Close()).To(Succeed()) // only the controller holds the write end now
		done := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(done)
		}()
		DeferCleanup(func() {
			select {
			case <-done:
			default:
				_ = cmd.Process.Kill()
				<-done
			}
			fmt.Fprintf(GinkgoWriter, "--- run --notify-fd 3\n%s", logs.String())
		})

		// s6-supervise reads the pipe the same way: it waits for a newline.
		got := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(r) // until the controller closes its end
			got <- string(b)
		}()
		var note string
		Eventually(got).WithTimeout(convergeTimeout).Should(Receive(&note))
		Expect(note).To(Equal("\n"))
		Expect(filepath.Join(env.RuntimeDir, "boot-done")).To(BeAnExistingFile(), "ready before the boot pass was done")
		Eventually(func(g Gomega) { env.ExpectUp(g, "coder") }).WithTimeout(convergeTimeout).Should(Succeed())

		Expect(cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
		Eventually(done).WithTimeout(5 * time.Second).Should(BeClosed())
		Expect(cmd.ProcessState.ExitCode()).To(Equal(0), logs.String())
	})
})

// cliStatusJSON runs status -o json, expects exit status code and decodes the document.
func cliStatusJSON(env *Env, code int) cliDoc {
	stdout, stderr, got := env.CLI("status", "-o", "json")
	ExpectWithOffset(1, got).To(Equal(code), stderr)
	var doc cliDoc
	ExpectWithOffset(1, json.Unmarshal([]byte(stdout), &doc)).To(Succeed(), stdout)
	return doc
}

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return b
}
