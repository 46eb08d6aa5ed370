package reconciler_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/internal/benchvol"
	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// failingS6 is an s6 that must never be called: a converged system forks nothing.
type failingS6 struct{ calls atomic.Int64 }

func (f *failingS6) call() error                               { f.calls.Add(1); return errors.New("no s6 call expected") }
func (f *failingS6) Up(context.Context, string) error          { return f.call() }
func (f *failingS6) Down(context.Context, string) error        { return f.call() }
func (f *failingS6) Kill(context.Context, string) error        { return f.call() }
func (f *failingS6) Rescan(context.Context, string) error      { return f.call() }
func (f *failingS6) RescanPrune(context.Context, string) error { return f.call() }

// convergedVolume lays out n named profiles (and the root) with converged, supervised-looking
// slots (benchvol), and returns a controller for it, the profile names and the s6 stand-in.
func convergedVolume(b *testing.B, n int) (func() *reconciler.Controller, []string, *failingS6) {
	return convergedVolumeWith(b, n, nil)
}

// convergedVolumeWith is convergedVolume with prepare (when not nil) run on the volume before
// the slots are laid out.
func convergedVolumeWith(b *testing.B, n int, prepare func(home string, names []string)) (func() *reconciler.Controller, []string, *failingS6) {
	b.Helper()
	opts, names, fake := convergedOptions(b, n, prepare)
	return func() *reconciler.Controller { return reconciler.New(opts) }, names, fake
}

// convergedOptions lays out the volume of convergedVolumeWith and returns the options of a
// controller for it (a fresh one per New), the profile names and the s6 stand-in.
func convergedOptions(b testing.TB, n int, prepare func(home string, names []string)) (reconciler.Options, []string, *failingS6) {
	b.Helper()
	root := b.TempDir()
	home, scandir := filepath.Join(root, "home"), filepath.Join(root, "service")
	names, err := benchvol.MakeHome(home, n, 0)
	if err != nil {
		b.Fatal(err)
	}
	if prepare != nil {
		prepare(home, names)
	}
	r, err := reconciler.NewRenderer(reconciler.Templates{}, nil, home, "")
	if err != nil {
		b.Fatal(err)
	}
	loader := desired.Loader{Home: home}
	render := func(name string) ([]s6.File, error) {
		p, _, err := loader.LoadProfile(name)
		if err != nil {
			return nil, err
		}
		return r.Render(p)
	}
	if err := os.Mkdir(scandir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := benchvol.Converge(scandir, names, render); err != nil {
		b.Fatal(err)
	}
	release, err := benchvol.HoldLocks(scandir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(release)
	fake := &failingS6{}
	// The volume was written just now; a real one is older than the racy window, so the
	// controllers' clock runs that much ahead (instead of waiting it out).
	now := func() time.Time { return time.Now().Add(safefs.RacyWindow) }
	return reconciler.Options{
		HermesHome: home, Scandir: scandir, RuntimeDir: filepath.Join(root, "run"),
		Services: fake, Scanner: fake, Renderer: r, Log: logr.Discard(), Now: now,
	}, names, fake
}

// BenchmarkPassNoop is `reconcile --once` with nothing to do, minus process start: a fresh
// controller (no caches) runs one full pass over n converged profiles. Reported per profile.
func BenchmarkPassNoop(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("profiles=%d", n), func(b *testing.B) {
			newCtl, names, fake := convergedVolume(b, n)
			if rep := newCtl().Pass(context.Background(), false, false); rep.Err != nil || len(rep.Actions) != 0 {
				b.Fatalf("not converged: %v %v", rep.Actions, rep.Err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rep := newCtl().Pass(context.Background(), false, false)
				if rep.Err != nil || len(rep.Actions) != 0 {
					b.Fatalf("not a no-op: %v %v", rep.Actions, rep.Err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(names)), "ns/profile")
			if fake.calls.Load() != 0 {
				b.Fatalf("%d s6 calls", fake.calls.Load())
			}
		})
	}
}

// BenchmarkReconcileKey is what one event costs the running loop (one key, warm caches), and
// BenchmarkResync what a resync costs per key (every key once), at n profiles: neither may
// grow with n.
func BenchmarkReconcileKey(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("profiles=%d", n), func(b *testing.B) {
			newCtl, _, fake := convergedVolume(b, n)
			ctl := newCtl()
			ctl.RefreshRoots()
			loopReconcileKey(b, ctl, benchvol.ProfileName(n/2), fake)
		})
	}
}

// loopReconcileKey reconciles key once to warm its caches, then once per benchmark iteration,
// and fails if any reconcile called s6 (a converged system forks nothing).
func loopReconcileKey(b *testing.B, ctl *reconciler.Controller, key string, fake *failingS6) {
	ctx := context.Background()
	if _, err := ctl.ReconcileKey(ctx, key); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ctl.ReconcileKey(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
	if fake.calls.Load() != 0 {
		b.Fatalf("%d s6 calls", fake.calls.Load())
	}
}

func BenchmarkResync(b *testing.B) {
	for _, n := range sizes() {
		b.Run(fmt.Sprintf("profiles=%d", n), func(b *testing.B) {
			newCtl, names, fake := convergedVolume(b, n)
			ctl := newCtl()
			ctx := context.Background()
			for _, k := range names {
				if _, err := ctl.ReconcileKey(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ctl.RefreshRoots() // as the loop does at each resync
				for _, k := range names {
					if _, err := ctl.ReconcileKey(ctx, k); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(names)), "ns/profile")
			if fake.calls.Load() != 0 {
				b.Fatalf("%d s6 calls", fake.calls.Load())
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

// sizes are the numbers of profiles the scale benchmarks run at: 1,000 and 10,000, or 100 with
// -short (the CI smoke run, which only proves the code still runs).
func sizes() []int {
	if testing.Short() {
		return []int{100}
	}
	return []int{1000, 10000}
}
