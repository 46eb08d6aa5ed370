package reconciler_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// convergedInput builds a full-pass input of n profiles whose slots already match.
func convergedInput(b *testing.B, n int) reconciler.FullInput {
	r, err := reconciler.NewRenderer(reconciler.Templates{}, map[string]string{"A": "1"}, "/opt/data", "hermes")
	if err != nil {
		b.Fatal(err)
	}
	in := reconciler.FullInput{
		Now:      time.Unix(1_800_000_000, 0),
		Desired:  desired.State{Listed: true, Present: map[string]bool{}},
		Observed: observed.State{Slots: map[string]*observed.Slot{}},
		Files:    map[string][]s6.File{},
		Memory:   map[string]reconciler.Memory{},
	}
	for i := range n {
		name := fmt.Sprintf("profile-%04d", i)
		p := desired.Profile{Name: name, Dir: "/opt/data/profiles/" + name, Intent: desired.Up, BootIntent: desired.Up,
			StateModTime: in.Now.Add(-time.Hour), Port: desired.Port(name)}
		files, err := r.Render(p)
		if err != nil {
			b.Fatal(err)
		}
		slot := &observed.Slot{Name: p.Slot(), Profile: name, Files: map[string][]byte{}, Modes: map[string]uint32{},
			Supervision: s6.Supervision{Supervised: true, HasStatus: true, Changed: in.Now.Add(-2 * time.Hour),
				Status: s6.Status{PID: 100 + i, WantUp: true, Stamp: in.Now.Add(-2 * time.Hour)}}}
		for _, f := range files {
			slot.Files[f.Name], slot.Modes[f.Name] = f.Data, uint32(f.Mode.Perm())
		}
		in.Desired.Profiles = append(in.Desired.Profiles, p)
		in.Desired.Present[name] = true
		in.Observed.Slots[name] = slot
		in.Files[name] = files
	}
	return in
}

// BenchmarkPlan measures the pure planner on a converged system (the common case: no actions).
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("profiles=%d", n), func(b *testing.B) {
			in := convergedInput(b, n)
			rules := reconciler.Rules{SettlePeriod: 15 * time.Second, MinUptime: 10 * time.Second}
			b.ReportAllocs()
			for b.Loop() {
				if acts, _ := reconciler.Plan(in, rules); len(acts) != 0 {
					b.Fatalf("converged input planned %v", acts)
				}
			}
		})
	}
}

// BenchmarkReconcileNoop measures the runtime hot path on a converged, really supervised
// system: one key (what an event costs) and a full pass over every profile (what a resync
// costs). Neither may fork or write.
func BenchmarkReconcileNoop(b *testing.B) {
	if _, err := os.Stat("/usr/bin/s6-svscan"); err != nil {
		b.Skip("s6 not installed")
	}
	const n = 20
	root := b.TempDir()
	home, scandir := filepath.Join(root, "home"), filepath.Join(root, "service")
	for i := range n {
		dir := filepath.Join(home, "profiles", fmt.Sprintf("p%02d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "SOUL.md"), []byte("x"), 0o644)
		_ = os.WriteFile(filepath.Join(dir, "gateway_state.json"), []byte(`{"desired_state":"running"}`), 0o644)
	}
	_ = os.Mkdir(scandir, 0o755)
	svscan := exec.Command("/usr/bin/s6-svscan", scandir)
	svscan.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := svscan.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = exec.Command("/usr/bin/s6-svscanctl", "-t", scandir).Run()
		_ = svscan.Wait()
	})
	client := &s6.Client{BinDir: "/usr/bin"}
	ctx := context.Background()
	NewWithT(b).Eventually(func() error { return client.Rescan(ctx, scandir) }).
		WithTimeout(5 * time.Second).WithPolling(5 * time.Millisecond).Should(Succeed())
	r, err := reconciler.NewRenderer(reconciler.Templates{
		Run: "#!/bin/sh\nexec sleep 1000\n", LogRun: "#!/bin/sh\nexec cat >/dev/null\n",
	}, nil, home, "")
	if err != nil {
		b.Fatal(err)
	}
	ctl := reconciler.New(reconciler.Options{
		HermesHome: home, Scandir: scandir, RuntimeDir: filepath.Join(root, "run"),
		Services: client, Scanner: client, Renderer: r, Log: logr.Discard(),
	})
	if rep := ctl.Pass(ctx, true, false); rep.Err != nil {
		b.Fatal(rep.Err)
	}
	b.Run("key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ctl.ReconcileKey(ctx, "p07"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("pass-profiles=%d", n+1), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rep := ctl.Pass(ctx, false, false)
			if rep.Err != nil || len(rep.Actions) != 0 {
				b.Fatalf("not a no-op: %v %v", rep.Actions, rep.Err)
			}
		}
	})
}
