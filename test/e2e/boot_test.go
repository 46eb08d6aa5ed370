//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// reconcileLine is one `reconcile: profile=<p> prior_state=<s> action=<a>` line of stdout.
var reconcileLine = regexp.MustCompile(`^reconcile: profile=(\S+) prior_state=(\S+) action=(\S+)$`)

// bootLogLine is one line of HERMES_HOME/logs/container-boot.log.
var bootLogLine = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}) profile=(\S+) prior_state=(\S+) action=(started|registered|skipped) prior_exit=(clean|unclean|unknown) folded_into_root=(True|False)$`)

type outcome struct{ Prior, Action string }

// reconcileOutcomes parses every `reconcile:` line of stdout; a profile named twice fails.
func reconcileOutcomes(stdout string) map[string]outcome {
	got := map[string]outcome{}
	for _, line := range strings.Split(stdout, "\n") {
		if !strings.HasPrefix(line, "reconcile:") {
			continue
		}
		m := reconcileLine.FindStringSubmatch(line)
		Expect(m).NotTo(BeNil(), "malformed reconcile line %q", line)
		Expect(got).NotTo(HaveKey(m[1]), "profile %s reported twice", m[1])
		got[m[1]] = outcome{Prior: m[2], Action: m[3]}
	}
	return got
}

// bootLogLines parses the boot log; every line must match the format exactly.
func bootLogLines(data string) [][]string {
	var lines [][]string
	for _, line := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := bootLogLine.FindStringSubmatch(line)
		Expect(m).NotTo(BeNil(), "malformed boot log line %q", line)
		lines = append(lines, m)
	}
	return lines
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}

func touch(path string) {
	Expect(os.WriteFile(path, []byte("12345\n"), 0o644)).To(Succeed())
}

var _ = Describe("1. boot pass: reconcile --once --boot over every row of the intent table", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	type row struct {
		name  string
		state any // map: JSON object; string: raw bytes; nil: no file
		up    bool
		prior string
	}
	rows := []row{
		{"default", map[string]any{"gateway_state": "running"}, true, "running"},
		{"des-running", map[string]any{"desired_state": "running"}, true, "running"},
		{"des-stopped", map[string]any{"desired_state": "stopped"}, false, "stopped"},
		{"des-running-failed", map[string]any{"desired_state": "running", "gateway_state": "startup_failed"}, true, "running"},
		{"des-stopped-running", map[string]any{"desired_state": "stopped", "gateway_state": "running"}, false, "stopped"},
		{"gw-running", map[string]any{"gateway_state": "running"}, true, "running"},
		{"gw-draining", map[string]any{"gateway_state": "draining"}, true, "running"},
		{"gw-degraded", map[string]any{"gateway_state": "degraded"}, true, "running"},
		{"gw-stopped", map[string]any{"gateway_state": "stopped"}, false, "stopped"},
		{"gw-startup-failed", map[string]any{"gateway_state": "startup_failed"}, false, "startup_failed"},
		{"gw-starting", map[string]any{"gateway_state": "starting"}, false, "starting"},
		// Any other desired_state value or type: Down, even though the gateway was running.
		{"des-bogus", map[string]any{"desired_state": "maybe", "gateway_state": "running"}, false, "maybe"},
		{"des-number", map[string]any{"desired_state": 1, "gateway_state": "running"}, false, "<number>"},
		{"no-file", nil, false, "None"},
		{"corrupt", `{"desired_state":"running",`, false, "None"},
		{"json-array", `[]`, false, "None"},
		{"oversized", `{"desired_state":"running","pad":"` + strings.Repeat("x", 70<<10) + `"}`, false, "None"},
		{"bom", "\uFEFF" + `{"desired_state":"running"}`, true, "running"},
	}

	It("creates exactly the valid slots, starts exactly the Up rows, logs one boot line each and cleans stale files", func() {
		env.StartSvscan()
		for _, r := range rows {
			switch s := r.state.(type) {
			case map[string]any:
				env.Profile(r.name, s)
			case string:
				env.Profile(r.name, nil)
				env.WriteStateRaw(r.name, []byte(s))
			default:
				env.Profile(r.name, nil)
			}
		}
		profiles := filepath.Join(env.Home, "profiles")
		outside := filepath.Join(env.Root, "outside")
		Expect(os.MkdirAll(outside, 0o755)).To(Succeed())

		// Entries under profiles/ that are not profiles. Each would start a gateway if served.
		running := map[string]any{"desired_state": "running"}
		Expect(os.MkdirAll(filepath.Join(profiles, "nosoul"), 0o755)).To(Succeed())
		env.WriteState("nosoul", running)
		touch(filepath.Join(profiles, "nosoul", "gateway.pid"))
		linkTarget := filepath.Join(outside, "linked")
		Expect(os.MkdirAll(linkTarget, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(linkTarget, "SOUL.md"), []byte("# linked\n"), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(linkTarget, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644)).To(Succeed())
		touch(filepath.Join(linkTarget, "gateway.pid"))
		Expect(os.Symlink(linkTarget, filepath.Join(profiles, "linked"))).To(Succeed())
		env.Profile("BadName", running)
		env.Profile(".hidden", running)
		Expect(os.WriteFile(filepath.Join(profiles, "afile"), []byte("not a dir\n"), 0o644)).To(Succeed())
		// profiles/default/ is reserved for the root: its state must not drive gateway-default.
		Expect(os.MkdirAll(filepath.Join(profiles, "default"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(profiles, "default", "SOUL.md"), []byte("# x\n"), 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(profiles, "default", "gateway_state.json"), []byte(`{"desired_state":"stopped"}`), 0o644)).To(Succeed())

		// Stale runtime files from the previous container life.
		stale := []string{env.Home, env.ProfileDir("gw-running"), env.ProfileDir("des-stopped"), env.ProfileDir("no-file")}
		for _, dir := range stale {
			touch(filepath.Join(dir, "gateway.pid"))
			touch(filepath.Join(dir, "processes.json"))
		}
		precious := filepath.Join(outside, "precious.json")
		touch(precious)
		Expect(os.Symlink(precious, filepath.Join(env.ProfileDir("gw-stopped"), "processes.json"))).To(Succeed())

		// The controller must not write the state files of profiles it leaves down.
		before := map[string]string{}
		for _, r := range rows {
			if !r.up && r.state != nil {
				before[r.name] = readFile(env.StatePath(r.name))
			}
		}

		start := time.Now().Truncate(time.Second)
		stdout, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), "stderr: %s", stderr)

		By("printing one reconcile line per served profile")
		got := reconcileOutcomes(stdout)
		var wantSlots []string
		for _, r := range rows {
			wantSlots = append(wantSlots, "gateway-"+r.name)
			action := "registered"
			if r.up {
				action = "started"
			}
			Expect(got).To(HaveKey(r.name))
			Expect(got[r.name].Action).To(Equal(action), "action for %s", r.name)
			if r.prior == "<number>" {
				// The behaviour contract (docs/behaviour.md) says "desired_state verbatim" but not how a non-string renders; the
				// gateway_state fallback is the other defensible reading.
				Expect(got[r.name].Prior).To(BeElementOf("1", "running"), "prior_state for %s", r.name)
			} else {
				Expect(got[r.name].Prior).To(Equal(r.prior), "prior_state for %s", r.name)
			}
		}
		Expect(got).To(HaveLen(len(rows)), "reconcile lines for profiles that are not served: %v", got)

		By("creating exactly the valid slots, with down exactly for the non-Up rows")
		sort.Strings(wantSlots)
		Expect(env.slotNames()).To(Equal(wantSlots))
		entries, err := os.ReadDir(env.Scandir)
		Expect(err).NotTo(HaveOccurred())
		for _, ent := range entries {
			Expect(ent.Name()).NotTo(HavePrefix(".gateway-"), "staging leftover in the scandir")
		}
		for _, r := range rows {
			down := filepath.Join(env.SlotDir(r.name), "down")
			if r.up {
				Expect(down).NotTo(BeAnExistingFile(), "gateway-%s should have no down file", r.name)
			} else {
				Expect(down).To(BeAnExistingFile(), "gateway-%s should have a down file", r.name)
			}
		}

		By("running a gateway exactly for the Up rows")
		Eventually(func(g Gomega) {
			for _, r := range rows {
				if r.up {
					env.ExpectUp(g, r.name)
					g.Expect(env.ReadState(r.name)).To(HaveKeyWithValue("gateway_state", "running"), r.name)
				} else {
					env.ExpectDown(g, r.name)
				}
			}
		}).WithTimeout(convergeTimeout).WithPolling(50 * time.Millisecond).Should(Succeed())
		Expect(env.ReadState("des-running-failed")).To(HaveKeyWithValue("desired_state", "running"))
		for name, data := range before {
			Expect(readFile(env.StatePath(name))).To(Equal(data), "state file of %s (left down) was rewritten", name)
		}

		By("appending one boot log line per profile")
		bootLog := readFile(env.BootLogPath())
		logged := map[string]outcome{}
		for _, m := range bootLogLines(bootLog) {
			ts, err := time.Parse("2006-01-02T15:04:05-0700", m[1])
			Expect(err).NotTo(HaveOccurred())
			Expect(ts).To(BeTemporally(">=", start), "boot log timestamp %s", m[1])
			Expect(ts).To(BeTemporally("<=", time.Now().Add(time.Second)), "boot log timestamp %s", m[1])
			if m[4] == "skipped" {
				// Skipped entries may be logged; only entries that look like profiles qualify.
				Expect(m[2]).To(BeElementOf("BadName", "linked", "default"), "skipped line: %s", m[0])
				continue
			}
			Expect(logged).NotTo(HaveKey(m[2]), "profile %s logged twice", m[2])
			logged[m[2]] = outcome{Prior: m[3], Action: m[4]}
		}
		Expect(logged).To(Equal(got), "boot log and stdout disagree")

		By("removing stale gateway.pid and processes.json, and nothing outside the profiles")
		for _, dir := range stale {
			Expect(filepath.Join(dir, "gateway.pid")).NotTo(BeAnExistingFile())
			Expect(filepath.Join(dir, "processes.json")).NotTo(BeAnExistingFile())
		}
		Expect(precious).To(BeAnExistingFile(), "a symlinked processes.json was followed")
		Expect(filepath.Join(profiles, "nosoul", "gateway.pid")).To(BeAnExistingFile(), "a dir without SOUL.md is not a profile")
		Expect(filepath.Join(linkTarget, "gateway.pid")).To(BeAnExistingFile(), "a symlinked profile dir was followed")
		Expect(env.RuntimeDir).To(BeADirectory(), "no runtime marker dir after the boot pass")

		By("treating the next reconcile --once as a runtime pass (marker present)")
		touch(filepath.Join(env.ProfileDir("gw-running"), "gateway.pid"))
		upPids := map[string]int{}
		for _, r := range rows {
			if r.up {
				upPids[r.name] = env.SupervisedPid(r.name)
			}
		}
		_, stderr, code = env.CLI("reconcile", "--once")
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(readFile(env.BootLogPath())).To(Equal(bootLog), "a runtime pass wrote boot log lines")
		Expect(filepath.Join(env.ProfileDir("gw-running"), "gateway.pid")).To(BeAnExistingFile(), "a runtime pass cleaned stale files")
		for _, r := range rows {
			if r.up {
				Expect(env.SupervisedPid(r.name)).To(Equal(upPids[r.name]), "gateway-%s was restarted by a runtime pass", r.name)
			} else {
				// Runtime intents of the held rows (starting, no file, bad file) keep them down.
				st := env.Svstat("gateway-" + r.name)
				Expect(st).To(HaveKeyWithValue("up", "false"), "gateway-%s: %v", r.name, st)
			}
		}
	})
})

var _ = Describe("2. container restart: the boot pass brings back exactly the gateways that were up", func() {
	var env *Env
	BeforeEach(func() { env = NewEnv() })
	AfterEach(func() { env.DumpOnFailure() })

	It("restarts the running gateways after the s6 tree and the tmpfs are gone, and keeps operator stops down", func() {
		env.Profile("default", nil)
		env.Profile("alpha", map[string]any{"desired_state": "running"})
		env.Profile("beta", map[string]any{"gateway_state": "running"})
		env.Profile("gamma", map[string]any{"desired_state": "stopped"})
		env.Profile("oper", map[string]any{"gateway_state": "running"})
		upBefore := []string{"alpha", "beta", "oper"}

		env.StartSvscan()
		_, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Eventually(func(g Gomega) {
			for _, name := range upBefore {
				env.ExpectUp(g, name)
				g.Expect(env.ReadState(name)).To(HaveKeyWithValue("gateway_state", "running"), name)
			}
			env.ExpectDown(g, "default")
			env.ExpectDown(g, "gamma")
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("stopping oper the way `hermes gateway stop` does: marker, desired_state stopped, s6-svc -d")
		Expect(os.WriteFile(filepath.Join(env.ProfileDir("oper"), ".planned-stop"), nil, 0o644)).To(Succeed())
		env.SetDesired("oper", "stopped")
		out, rc := S6("s6-svc", "-d", env.SlotDir("oper"))
		Expect(rc).To(Equal(0), out)
		Eventually(func(g Gomega) {
			g.Expect(env.Svstat("gateway-oper")).To(And(HaveKeyWithValue("up", "false"), HaveKeyWithValue("exitcode", "0")))
			g.Expect(env.ReadState("oper")).To(HaveKeyWithValue("gateway_state", "stopped"))
		}).WithTimeout(convergeTimeout).Should(Succeed())

		By("stopping the container: every gateway gets an unplanned SIGTERM")
		env.StopSvscan()
		for _, name := range []string{"alpha", "beta"} {
			Expect(env.ReadState(name)).To(HaveKeyWithValue("gateway_state", "running"), name)
		}
		Expect(env.ReadState("alpha")).To(HaveKeyWithValue("desired_state", "running"))
		Expect(env.ReadState("oper")).To(And(HaveKeyWithValue("desired_state", "stopped"), HaveKeyWithValue("gateway_state", "stopped")))

		By("booting again on an empty scandir and runtime dir")
		env.WipeRun()
		env.StartSvscan()
		stdout, stderr, code := env.CLI("reconcile", "--once", "--boot")
		Expect(code).To(Equal(0), "stderr: %s", stderr)
		Expect(reconcileOutcomes(stdout)).To(Equal(map[string]outcome{
			"default": {"None", "registered"},
			"alpha":   {"running", "started"},
			"beta":    {"running", "started"},
			"gamma":   {"stopped", "registered"},
			"oper":    {"stopped", "registered"},
		}))
		Eventually(func(g Gomega) {
			env.ExpectUp(g, "alpha")
			env.ExpectUp(g, "beta")
			env.ExpectDown(g, "oper")
			env.ExpectDown(g, "gamma")
			env.ExpectDown(g, "default")
		}).WithTimeout(convergeTimeout).Should(Succeed())
		Expect(bootLogLines(readFile(env.BootLogPath()))).To(HaveLen(10), "two boot passes of five profiles")
	})
})
