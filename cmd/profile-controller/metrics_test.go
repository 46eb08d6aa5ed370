package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeMetrics: /metrics exposes the controller's metrics, /healthz answers, and /readyz
// is unavailable until the boot pass is done.
func TestServeMetrics(t *testing.T) {
	root := t.TempDir()
	cfg := Config{HermesHome: filepath.Join(root, "home"), Scandir: filepath.Join(root, "service"), RuntimeDir: filepath.Join(root, "run"), S6BinDir: "/usr/bin"}
	cfg.Default(nil)
	reg := prometheus.NewRegistry()
	r, err := newRenderer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := newController(cfg, r, logr.Discard(), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := serveMetrics(ctx, "127.0.0.1:0", reg, ctl, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, "http://"+addr+"/metrics")
	for _, name := range []string{"profile_controller_problems", "profile_controller_crashloop_profiles", "profile_controller_pending_corrections", "profile_controller_not_served", "go_goroutines",
		`controller_runtime_reconcile_total{controller="profile",result="requeue_after"}`, `controller_runtime_active_workers{controller="profile"}`,
		"profile_controller_build_info{", "profile_controller_config_generation{rendering="} {
		if code != 200 || !strings.Contains(body, name) {
			t.Errorf("/metrics (%d) lacks %s", code, name)
		}
	}
	if code, _ := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get(t, "http://"+addr+"/readyz"); code != 503 {
		t.Errorf("/readyz before the boot pass = %d, want 503", code)
	}
	if err := os.MkdirAll(cfg.RuntimeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.RuntimeDir, "boot-done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 503 || body != "standby: lease not taken yet\n" {
		t.Errorf("/readyz before the lease is taken = %d %q, want 503", code, body)
	}
	if err := os.MkdirAll(cfg.HermesHome, 0o755); err != nil {
		t.Fatal(err)
	}
	if role, err := ctl.TakeLease(); err != nil || role.Role != "owner" {
		t.Fatalf("TakeLease = %+v, %v", role, err)
	}
	defer ctl.ReleaseLease()
	if code, _ := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz after the boot pass = %d, want 200", code)
	}
	if _, body := get(t, "http://"+addr+"/metrics"); !strings.Contains(body, `profile_controller_role{role="owner"} 1`) || !strings.Contains(body, `profile_controller_role{role="standby"} 0`) {
		t.Errorf("/metrics lacks the owner's role:\n%s", body)
	}

	// A second controller on the same volume (another container) stands by.
	reg2 := prometheus.NewRegistry()
	other, err := newController(cfg, r, logr.Discard(), reg2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if role, err := other.TakeLease(); err != nil || role.Role != "standby" {
		t.Fatalf("second TakeLease = %+v, %v", role, err)
	}
	addr2, err := serveMetrics(ctx, "127.0.0.1:0", reg2, other, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	code, body = get(t, "http://"+addr2+"/readyz")
	if want := "standby: owned by host "; code != 503 || !strings.HasPrefix(body, want) || !strings.Contains(body, " since ") {
		t.Errorf("/readyz of a standby = %d %q, want 503 %q...", code, body, want)
	}
	if code, _ := get(t, "http://"+addr2+"/healthz"); code != 200 {
		t.Errorf("/healthz of a standby = %d, want 200 (a standby is healthy)", code)
	}
	if _, body := get(t, "http://"+addr2+"/metrics"); !strings.Contains(body, `profile_controller_role{role="standby"} 1`) {
		t.Errorf("/metrics lacks the standby's role:\n%s", body)
	}
}
