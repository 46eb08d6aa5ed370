package s6_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/hermes/profile-controller/pkg/s6"
)

// benchSlot starts a private s6-svscan with one running slot and returns the slot dir.
// Benchmarks need the real supervisor; without s6 they are skipped (CI runs the tests, which
// fail loudly when s6 is missing).
func benchSlot(b *testing.B) string {
	b.Helper()
	if _, err := os.Stat(filepath.Join(binDir, "s6-svscan")); err != nil {
		b.Skip("s6 not installed")
	}
	root := b.TempDir()
	sd := filepath.Join(root, "scandir")
	if err := os.Mkdir(sd, 0o755); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "s6-svscan"), sd)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &s6.Client{BinDir: binDir}
	b.Cleanup(func() {
		_ = exec.Command(filepath.Join(binDir, "s6-svscanctl"), "-t", sd).Run()
		_ = cmd.Wait()
	})
	ctx := context.Background()
	NewWithT(b).Eventually(func() error { return c.Rescan(ctx, sd) }).
		WithTimeout(5 * time.Second).WithPolling(5 * time.Millisecond).Should(Succeed())
	files := []s6.File{{Name: "run", Data: []byte("#!/bin/sh\nexec sleep 1000\n"), Mode: 0o755}}
	if err := s6.CreateSlot(sd, "gateway-bench", files, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := c.Rescan(ctx, sd); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(sd, "gateway-bench")
	if err := s6.WaitSupervised(ctx, dir, 5*time.Second); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkSupervision compares the native reader (lock probe + status file) with forking
// s6-svstat, on the same live slot in one run.
func BenchmarkSupervision(b *testing.B) {
	dir := benchSlot(b)
	b.Run("native", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sup, err := s6.ReadSupervision(dir)
			if err != nil || !sup.Supervised {
				b.Fatal(sup, err)
			}
		}
	})
	b.Run("exec-s6-svstat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, err := exec.Command(filepath.Join(binDir, "s6-svstat"), "-o", "up,wantedup,pid", dir).Output()
			if err != nil || len(out) == 0 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseStatus measures the decoder alone.
func BenchmarkParseStatus(b *testing.B) {
	raw, err := os.ReadFile("testdata/s6-status/2.15.1.0/up.status")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s6.ParseStatus(raw); err != nil {
			b.Fatal(err)
		}
	}
}
