package reconciler_test

import (
	"context"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

var _ = Describe("Executor", func() {
	var (
		sv   *svscan
		fake *fakeS6
		ex   *reconciler.Executor
		rend *reconciler.Renderer
		ctx  context.Context
	)

	BeforeEach(func() {
		requireS6()
		root := testRoot()
		sv = startSvscan(root)
		fake = &fakeS6{real: &s6.Client{BinDir: s6BinDir}}
		ex = &reconciler.Executor{
			Scandir: sv.scandir, Services: fake, Scanner: fake,
			PickupTimeout: 5 * time.Second,
		}
		var err error
		rend, err = reconciler.NewRenderer(sleepTemplates, nil, filepath.Join(root, "home"), "")
		Expect(err).NotTo(HaveOccurred())
		ctx = context.Background()
	})

	dir := func(name string) string { return filepath.Join(sv.scandir, desired.SlotPrefix+name) }

	filesOf := func(name string) []s6.File {
		files, err := rend.Render(profileOf(name, desired.Up))
		Expect(err).NotTo(HaveOccurred())
		return files
	}

	create := func(name string, down bool) reconciler.Action {
		return reconciler.Action{Kind: reconciler.Create, Profile: name, Slot: desired.SlotPrefix + name, Down: down, Files: filesOf(name)}
	}
	act := func(kind reconciler.Kind, name string) reconciler.Action {
		return reconciler.Action{Kind: kind, Profile: name, Slot: desired.SlotPrefix + name}
	}

	// setUp creates slots through the executor and waits until each is up or down for good,
	// then forgets the calls that took.
	setUp := func(up []string, down []string) {
		var acts []reconciler.Action
		for _, n := range up {
			acts = append(acts, create(n, false))
		}
		for _, n := range down {
			acts = append(acts, create(n, true))
		}
		res := ex.Apply(ctx, acts)
		Expect(res.Err()).NotTo(HaveOccurred())
		for _, n := range up {
			Eventually(supervision(dir(n))).Should(HaveField("Status.PID", Not(BeZero())), "gateway-%s never came up", n)
		}
		fake.reset()
	}

	// planFor plans one profile against the real slot, as Controller.ReconcileKey does.
	planFor := func(name string, intent desired.Intent) reconciler.Decision {
		slot, err := observed.ReadSlot(sv.scandir, name)
		Expect(err).NotTo(HaveOccurred())
		p := profileOf(name, intent)
		return reconciler.PlanProfile(reconciler.Input{Name: name, Now: time.Now(), Profile: &p, Files: filesOf(name), Slot: slot}, testRules)
	}

	staging := func() []string {
		names, err := filepath.Glob(filepath.Join(sv.scandir, ".gateway-*"))
		Expect(err).NotTo(HaveOccurred())
		return names
	}

	It("creates each slot with ./down as the action says, and runs one rescan for all of them", func() {
		res := ex.Apply(ctx, []reconciler.Action{create("coder", false), create("writer", true), create("reader", true)})

		Expect(res.Errors).To(BeEmpty())
		Expect(res.Started).To(Equal([]string{"coder"}))
		Expect(fake.Ops()).To(Equal([]string{"rescan"}))
		Expect(fake.Calls()[0].Slots).To(Equal([]string{"gateway-coder", "gateway-reader", "gateway-writer"}),
			"every slot is published before the one rescan")
		Expect(staging()).To(BeEmpty())
		Expect(exists(filepath.Join(dir("coder"), "down"))).To(BeFalse())
		Expect(exists(filepath.Join(dir("writer"), "down"))).To(BeTrue())
		Expect(exists(filepath.Join(dir("reader"), "down"))).To(BeTrue())

		// Apply returned after pickup: every slot is supervised already.
		for _, n := range []string{"coder", "writer", "reader"} {
			v, err := s6.ReadSupervision(dir(n))
			Expect(err).NotTo(HaveOccurred())
			Expect(v.Supervised && v.HasStatus).To(BeTrue(), "gateway-%s not picked up", n)
		}
		Eventually(supervision(dir("coder"))).Should(HaveField("Status.PID", Not(BeZero())))
		Consistently(supervision(dir("writer"))).WithTimeout(300 * time.Millisecond).Should(HaveField("Status.WantUp", BeFalse()))

		// And the result is converged: the planner has nothing left to do.
		Eventually(func() []string { return actionStrings(planFor("coder", desired.Up).Actions) }).Should(BeEmpty())
		Expect(actionStrings(planFor("writer", desired.Down).Actions)).To(BeEmpty())
		Expect(actionStrings(planFor("reader", desired.Hold).Actions)).To(BeEmpty())
	})

	It("leaves slots published and consistent when the rescan fails, and the next plan rescans them", func() {
		fake.failOn("rescan", errInjected)
		res := ex.Apply(ctx, []reconciler.Action{create("coder", false), create("writer", true)})

		Expect(res.Errors).To(HaveLen(2))
		Expect(res.Errors["coder"]).To(MatchError(ContainSubstring("create gateway-coder (up): injected failure")))
		Expect(res.Errors["writer"]).To(MatchError(ContainSubstring("create gateway-writer (down): injected failure")))
		Expect(res.Started).To(BeEmpty())
		Expect(fake.Ops()).To(Equal([]string{"rescan"}))
		Expect(staging()).To(BeEmpty())

		for _, tc := range []struct {
			name   string
			intent desired.Intent
			down   bool
		}{{"coder", desired.Up, false}, {"writer", desired.Down, true}} {
			slot, err := observed.ReadSlot(sv.scandir, tc.name)
			Expect(err).NotTo(HaveOccurred())
			Expect(slot).NotTo(BeNil())
			Expect(slot.Err).NotTo(HaveOccurred())
			Expect(slot.Down).To(Equal(tc.down))
			Expect(slot.Supervision.Supervised).To(BeFalse())
			// Complete and consistent: no file to update, no marker to fix, only the scan is missing.
			Expect(actionStrings(planFor(tc.name, tc.intent).Actions)).To(Equal([]string{"rescan " + slot.Name}))
		}

		// s6-svscanctl works again: applying the plan picks both slots up with one rescan.
		fake.failOn("rescan", nil)
		fake.reset()
		res = ex.Apply(ctx, append(planFor("coder", desired.Up).Actions, planFor("writer", desired.Down).Actions...))
		Expect(res.Errors).To(BeEmpty())
		Expect(fake.Ops()).To(Equal([]string{"rescan"}))
		Eventually(supervision(dir("coder"))).Should(HaveField("Status.PID", Not(BeZero())))
		Expect(s6.ReadSupervision(dir("writer"))).To(And(HaveField("Supervised", BeTrue()), HaveField("Status.WantUp", BeFalse())))
	})

	It("start removes ./down, then runs s6-svc -u", func() {
		setUp(nil, []string{"writer"})

		res := ex.Apply(ctx, []reconciler.Action{act(reconciler.Start, "writer")})

		Expect(res.Errors).To(BeEmpty())
		Expect(res.Started).To(Equal([]string{"writer"}))
		Expect(fake.Calls()).To(Equal([]call{{Op: "up", Slot: "gateway-writer", Down: false, Exists: true}}),
			"./down was gone before s6-svc -u")
		Expect(exists(filepath.Join(dir("writer"), "down"))).To(BeFalse())
		Eventually(supervision(dir("writer"))).Should(And(HaveField("Status.WantUp", BeTrue()), HaveField("Status.PID", Not(BeZero()))))
	})

	It("stop creates ./down, then runs s6-svc -d", func() {
		setUp([]string{"coder"}, nil)

		res := ex.Apply(ctx, []reconciler.Action{act(reconciler.Stop, "coder")})

		Expect(res.Errors).To(BeEmpty())
		Expect(res.Started).To(BeEmpty())
		Expect(fake.Calls()).To(Equal([]call{{Op: "down", Slot: "gateway-coder", Down: true, Exists: true}}),
			"./down existed before s6-svc -d")
		Expect(exists(filepath.Join(dir("coder"), "down"))).To(BeTrue())
		Eventually(supervision(dir("coder"))).Should(And(HaveField("Status.WantUp", BeFalse()), HaveField("Status.PID", BeZero())))
	})

	It("mark only changes ./down and never touches s6", func() {
		setUp([]string{"coder"}, nil)
		res := ex.Apply(ctx, []reconciler.Action{{Kind: reconciler.Mark, Profile: "coder", Slot: "gateway-coder", Down: true}})
		Expect(res.Errors).To(BeEmpty())
		Expect(exists(filepath.Join(dir("coder"), "down"))).To(BeTrue())
		res = ex.Apply(ctx, []reconciler.Action{{Kind: reconciler.Mark, Profile: "coder", Slot: "gateway-coder", Down: true}})
		Expect(res.Errors).To(BeEmpty(), "mark is idempotent")
		Expect(fake.Calls()).To(BeEmpty())
		Expect(s6.ReadSupervision(dir("coder"))).To(HaveField("Status.WantUp", BeTrue()))
	})

	It("update rewrites the drifted files without restarting the gateway", func() {
		setUp([]string{"coder"}, nil)
		before, err := s6.ReadSupervision(dir("coder"))
		Expect(err).NotTo(HaveOccurred())
		// Drift the script by rename, not in place: truncating a script that s6-supervise may
		// be exec'ing at this very moment would make the shell read an empty file and exit 0.
		tmp := filepath.Join(dir("coder"), ".run.drift")
		Expect(os.WriteFile(tmp, []byte("#!/bin/sh\nexec sleep 5\n"), 0o700)).To(Succeed())
		Expect(os.Rename(tmp, filepath.Join(dir("coder"), "run"))).To(Succeed())
		Expect(os.Remove(filepath.Join(dir("coder"), "log", "run"))).To(Succeed())
		d := planFor("coder", desired.Up)
		Expect(actionStrings(d.Actions)).To(Equal([]string{"update gateway-coder run,log/run"}))

		res := ex.Apply(ctx, d.Actions)

		Expect(res.Errors).To(BeEmpty())
		Expect(fake.Calls()).To(BeEmpty())
		Expect(actionStrings(planFor("coder", desired.Up).Actions)).To(BeEmpty())
		Expect(s6.ReadSupervision(dir("coder"))).To(HaveField("Status.PID", before.Status.PID))
	})

	It("terminate says down without waiting; unregister removes the slots, then prunes once for all", func() {
		setUp([]string{"alpha"}, []string{"beta"})
		setUp([]string{"keep"}, nil)

		res := ex.Apply(ctx, []reconciler.Action{act(reconciler.Terminate, "alpha"), act(reconciler.Terminate, "beta")})
		Expect(res.Errors).To(BeEmpty())
		Expect(fake.Calls()).To(Equal([]call{
			{Op: "down", Slot: "gateway-alpha", Exists: true, Down: true},
			{Op: "down", Slot: "gateway-beta", Exists: true, Down: true},
		}), "terminate marks the slot down, then s6-svc -d, and returns at once")
		for _, n := range []string{"alpha", "beta"} {
			Eventually(func() (bool, error) {
				v, err := s6.ReadSupervision(dir(n))
				return v.Up(), err
			}).Should(BeFalse())
		}
		fake.reset()

		res = ex.Apply(ctx, []reconciler.Action{act(reconciler.Unregister, "alpha"), act(reconciler.Unregister, "beta")})

		Expect(res.Errors).To(BeEmpty())
		Expect(fake.Calls()).To(Equal([]call{
			{Op: "rescan-prune", Slots: []string{"gateway-keep"}},
		}), "each slot is removed before the one prune")
		Expect(exists(dir("alpha"))).To(BeFalse())
		Expect(exists(dir("beta"))).To(BeFalse())
		// Their supervisors, loggers and services go away; the other slot is untouched.
		Eventually(func() []string { return procsUnder(dir("alpha")) }).Should(BeEmpty())
		Eventually(func() []string { return procsUnder(dir("beta")) }).Should(BeEmpty())
		Expect(s6.ReadSupervision(dir("keep"))).To(HaveField("Status.PID", Not(BeZero())))
	})

	It("kill sends SIGKILL through s6-svc -k", func() {
		setUp([]string{"alpha"}, nil)

		res := ex.Apply(ctx, []reconciler.Action{act(reconciler.Terminate, "alpha"), act(reconciler.Kill, "alpha")})

		Expect(res.Errors).To(BeEmpty())
		Expect(fake.Ops()).To(Equal([]string{"down gateway-alpha", "kill gateway-alpha"}))
		Eventually(func() (bool, error) {
			v, err := s6.ReadSupervision(dir("alpha"))
			return v.Up(), err
		}).Should(BeFalse())
	})

	It("unregister of a slot no supervisor holds removes it without s6-svc", func() {
		Expect(s6.CreateSlot(sv.scandir, "gateway-old", filesOf("old"), true, nil)).To(Succeed())

		res := ex.Apply(ctx, []reconciler.Action{act(reconciler.Unregister, "old")})

		Expect(res.Errors).To(BeEmpty())
		Expect(fake.Ops()).To(Equal([]string{"rescan-prune"}))
		Expect(exists(dir("old"))).To(BeFalse())
	})

	It("a terminate that fails keeps the slot up and does not stop the others", func() {
		setUp([]string{"alpha", "beta"}, nil)
		fake.failOn("down gateway-alpha", errInjected)

		res := ex.Apply(ctx, []reconciler.Action{act(reconciler.Terminate, "alpha"), act(reconciler.Terminate, "beta")})

		Expect(res.Errors).To(HaveLen(1))
		Expect(res.Errors["alpha"]).To(MatchError(ContainSubstring("terminate gateway-alpha: injected failure")))
		Expect(exists(dir("alpha"))).To(BeTrue())
		Expect(fake.Ops()).To(Equal([]string{"down gateway-alpha", "down gateway-beta"}))
	})

	It("an error in one profile's action skips only that profile's later actions", func() {
		setUp(nil, []string{"coder", "writer"})
		// coder's run is now a non-empty directory: the update cannot rename over it.
		Expect(os.Remove(filepath.Join(dir("coder"), "run"))).To(Succeed())
		Expect(os.MkdirAll(filepath.Join(dir("coder"), "run", "x"), 0o755)).To(Succeed())
		run := filesOf("coder")[1]
		Expect(run.Name).To(Equal("run"))

		res := ex.Apply(ctx, []reconciler.Action{
			{Kind: reconciler.Update, Profile: "coder", Slot: "gateway-coder", Files: []s6.File{run}},
			act(reconciler.Start, "coder"),
			{Kind: reconciler.Update, Profile: "writer", Slot: "gateway-writer", Files: []s6.File{run}},
			act(reconciler.Start, "writer"),
		})

		Expect(res.Errors).To(HaveLen(1))
		Expect(res.Errors["coder"]).To(MatchError(HavePrefix("update gateway-coder run: ")))
		Expect(res.Err()).To(MatchError(res.Errors["coder"]))
		Expect(res.Started).To(Equal([]string{"writer"}))
		Expect(fake.Ops()).To(Equal([]string{"up gateway-writer"}), "coder's start was skipped")
		Expect(exists(filepath.Join(dir("coder"), "down"))).To(BeTrue())
		Eventually(supervision(dir("writer"))).Should(HaveField("Status.PID", Not(BeZero())))
		Expect(s6.ReadSupervision(dir("coder"))).To(HaveField("Status.WantUp", BeFalse()))
	})

	It("a failed s6-svc for one profile does not hold back the others", func() {
		setUp([]string{"coder"}, []string{"writer"})
		fake.failOn("down gateway-coder", errInjected)

		res := ex.Apply(ctx, []reconciler.Action{act(reconciler.Stop, "coder"), act(reconciler.Unregister, "coder"), act(reconciler.Start, "writer")})

		Expect(res.Errors).To(HaveLen(1))
		Expect(res.Errors["coder"]).To(MatchError(ContainSubstring("stop gateway-coder: injected failure")))
		Expect(fake.Ops()).To(Equal([]string{"down gateway-coder", "up gateway-writer"}), "coder's unregister was skipped")
		Expect(exists(dir("coder"))).To(BeTrue())
		Expect(res.Started).To(Equal([]string{"writer"}))
	})

	It("clean-staging removes a planted symlink without touching its target", func() {
		target := filepath.Join(sv.root, "precious")
		Expect(os.MkdirAll(filepath.Join(target, "sub"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(target, "sub", "data"), []byte("keep me"), 0o644)).To(Succeed())
		Expect(os.Symlink(target, filepath.Join(sv.scandir, ".gateway-x.tmp"))).To(Succeed())
		// And a real half-built staging dir next to it.
		Expect(os.MkdirAll(filepath.Join(sv.scandir, ".gateway-y.tmp", "log"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(sv.scandir, ".gateway-y.tmp", "run"), nil, 0o755)).To(Succeed())

		res := ex.Apply(ctx, []reconciler.Action{{Kind: reconciler.CleanStaging, Slot: ".gateway-x.tmp"}, {Kind: reconciler.CleanStaging, Slot: ".gateway-y.tmp"}})

		Expect(res.Errors).To(BeEmpty())
		Expect(staging()).To(BeEmpty())
		Expect(os.ReadFile(filepath.Join(target, "sub", "data"))).To(Equal([]byte("keep me")))
		Expect(fake.Calls()).To(BeEmpty())
	})

	It("a pass with nothing to do writes nothing and forks nothing", func() {
		setUp([]string{"coder"}, []string{"writer"})
		Eventually(func() []string { return actionStrings(planFor("coder", desired.Up).Actions) }).Should(BeEmpty())
		Expect(actionStrings(planFor("writer", desired.Down).Actions)).To(BeEmpty())
		before, err := os.Stat(dir("coder"))
		Expect(err).NotTo(HaveOccurred())

		res := ex.Apply(ctx, nil)

		Expect(res.Errors).To(BeEmpty())
		Expect(res.Err()).NotTo(HaveOccurred())
		Expect(fake.Calls()).To(BeEmpty())
		after, err := os.Stat(dir("coder"))
		Expect(err).NotTo(HaveOccurred())
		Expect(after.ModTime()).To(Equal(before.ModTime()))
	})

	// The planner's settle window and crash-loop backoff compare the intent's time with the
	// supervisor's last change (Supervision.Changed, the status file's mtime). It must be read.
	It("observes when the supervisor last changed (supervise/status mtime)", func() {
		setUp(nil, []string{"writer"})
		statusPath := filepath.Join(dir("writer"), "supervise", "status")

		slot, err := observed.ReadSlot(sv.scandir, "writer")
		Expect(err).NotTo(HaveOccurred())
		fi, err := os.Stat(statusPath)
		Expect(err).NotTo(HaveOccurred())
		Expect(slot.Supervision.Changed).NotTo(BeZero(), "Supervision.Changed is never set")
		Expect(slot.Supervision.Changed).To(BeTemporally("==", fi.ModTime()))

		Expect(ex.Apply(ctx, []reconciler.Action{act(reconciler.Start, "writer")}).Err()).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			v, err := s6.ReadSupervision(dir("writer"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(v.Status.PID).NotTo(BeZero())
			fi, err := os.Stat(statusPath)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(v.Changed).To(BeTemporally("==", fi.ModTime()))
			g.Expect(v.Changed).To(BeTemporally(">", slot.Supervision.Changed))
		}).Should(Succeed())
	})
})
