package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
)

// reloadEnv is a reloader over real files: a config file in a temp dir and a controller built
// from it exactly as `run` builds it (nothing is started).
type reloadEnv struct {
	root, path string
	rl         *reloader
	mu         sync.Mutex
	logs       []string
	results    chan string
}

// baseConfig is the config file's text with extra lines appended.
func (e *reloadEnv) baseConfig(extra string) string {
	return fmt.Sprintf("hermesHome: %q\nscandir: %q\nruntimeDir: %q\ns6BinDir: /usr/bin\n%s",
		filepath.Join(e.root, "home"), filepath.Join(e.root, "service"), filepath.Join(e.root, "run"), extra)
}

func newReloadEnv(t *testing.T, extra string, g globalFlags, set func(string) bool) *reloadEnv {
	t.Helper()
	t.Setenv(EnvHermesHome, "")
	t.Setenv(EnvScandir, "")
	e := &reloadEnv{root: t.TempDir(), results: make(chan string, 16)}
	e.path = filepath.Join(e.root, "etc", "config.yaml")
	if err := os.MkdirAll(filepath.Dir(e.path), 0o755); err != nil {
		t.Fatal(err)
	}
	e.write(t, e.baseConfig(extra))
	g.config = e.path
	if set == nil {
		set = func(string) bool { return false }
	}
	cfg, raw, err := loadConfigRaw(&g, set)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newRenderer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := funcr.New(func(prefix, args string) {
		e.mu.Lock()
		e.logs = append(e.logs, prefix+" "+args)
		e.mu.Unlock()
	}, funcr.Options{Verbosity: 1})
	reg := prometheus.NewRegistry()
	ctl, err := newController(cfg, r, log, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &deps{cfg: cfg, raw: raw, log: log, setVerbosity: func(int) {}, reg: reg, renderer: r, ctl: ctl}
	e.rl, err = newReloader(&g, set, d)
	if err != nil {
		t.Fatal(err)
	}
	e.rl.done = func(res string) { e.results <- res }
	return e
}

// write replaces the config file atomically (temp file, rename), as editors and tools do.
func (e *reloadEnv) write(t *testing.T, text string) {
	t.Helper()
	tmp := e.path + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, e.path); err != nil {
		t.Fatal(err)
	}
}

// logged returns the log lines that contain s.
func (e *reloadEnv) logged(s string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, l := range e.logs {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

func (e *reloadEnv) count(result string) float64 {
	mfs, err := e.rl.d.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != "profile_controller_config_reloads_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func TestReloadClassCoversConfig(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	seen := map[string]bool{}
	for i := range typ.NumField() {
		name := yamlName(typ.Field(i))
		seen[name] = true
		if _, ok := liveFields[name]; !ok {
			t.Errorf("config field %q is not classified in liveFields (live or restart-required)", name)
		}
	}
	for name := range liveFields {
		if !seen[name] {
			t.Errorf("liveFields names %q, which is no config field", name)
		}
	}
}

func TestReloadClassification(t *testing.T) {
	for _, tc := range []struct {
		field  string
		change func(*Config)
		live   bool
	}{
		{"hermesHome", func(c *Config) { c.HermesHome = "/elsewhere" }, false},
		{"scandir", func(c *Config) { c.Scandir = "/elsewhere" }, false},
		{"s6BinDir", func(c *Config) { c.S6BinDir = "/elsewhere" }, false},
		{"runtimeDir", func(c *Config) { c.RuntimeDir = "/elsewhere" }, false},
		{"metricsAddr", func(c *Config) { c.MetricsAddr = "127.0.0.1:1" }, false},
		{"logFormat", func(c *Config) { c.LogFormat = "console" }, false},
		{"templates", func(c *Config) { c.Templates.Run = "#!/bin/sh\n" }, true},
		{"extraEnv", func(c *Config) { c.ExtraEnv = map[string]string{"A": "1"} }, true},
		{"gatewayUser", func(c *Config) { c.GatewayUser = "hermes" }, true},
		{"settlePeriod", func(c *Config) { c.SettlePeriod.Duration = time.Minute }, true},
		{"minUptime", func(c *Config) { c.MinUptime.Duration = time.Minute }, true},
		{"unregisterTimeout", func(c *Config) { c.UnregisterTimeout.Duration = time.Minute }, true},
		{"heartbeatTimeout", func(c *Config) { c.HeartbeatTimeout.Duration = time.Minute }, true},
		{"resyncPeriod", func(c *Config) { c.ResyncPeriod.Duration = time.Minute }, true},
		{"commandTimeout", func(c *Config) { c.CommandTimeout.Duration = time.Minute }, true},
		{"servicesMax", func(c *Config) { c.ServicesMax = 7 }, true},
		{"verbosity", func(c *Config) { c.Verbosity = 3 }, true},
	} {
		t.Run(tc.field, func(t *testing.T) {
			var old Config
			old.Default(nil)
			cur := old
			tc.change(&cur)
			changed := changedFields(old, cur)
			if !reflect.DeepEqual(changed, []string{tc.field}) {
				t.Fatalf("changedFields = %v, want [%s]", changed, tc.field)
			}
			if fixed := restartRequired(changed); (len(fixed) == 0) != tc.live {
				t.Errorf("restartRequired(%v) = %v, want live=%v", changed, fixed, tc.live)
			}
		})
	}
}

func TestReloadAppliesLiveChange(t *testing.T) {
	e := newReloadEnv(t, "", globalFlags{}, nil)
	before := e.rl.d.renderer.Generation()
	e.write(t, e.baseConfig("extraEnv:\n  NEW: \"1\"\nsettlePeriod: 1m\n"))
	if res := e.rl.reload("signal"); res != reloadApplied {
		t.Fatalf("reload = %s, want applied; logs: %v", res, e.logged(""))
	}
	if g := e.rl.ctl.Generation(); g != 2 {
		t.Errorf("generation %d, want 2", g)
	}
	if e.rl.d.renderer.Generation() == before {
		t.Error("the rendering did not change with extraEnv")
	}
	if l := e.logged(`"Config reloaded"`); len(l) != 1 || !strings.Contains(l[0], `"changed"=["settlePeriod" "extraEnv"]`) {
		t.Errorf("log: %v", l)
	}
	if got := e.count(reloadApplied); got != 1 {
		t.Errorf("applied reloads: %v, want 1", got)
	}
}

func TestReloadRefusesInvalidAndKeepsTheOld(t *testing.T) {
	e := newReloadEnv(t, "settlePeriod: 20s\n", globalFlags{}, nil)
	old := e.rl.d.cfg
	e.write(t, e.baseConfig("settlePeriod: 20s\nresyncPeriood: 1s\nservicesMax: -1\n"))
	if res := e.rl.reload("file"); res != reloadRefused {
		t.Fatalf("reload = %s, want refused", res)
	}
	if g := e.rl.ctl.Generation(); g != 1 {
		t.Errorf("generation %d after a refused reload, want 1", g)
	}
	if !reflect.DeepEqual(e.rl.d.cfg, old) {
		t.Errorf("the configuration in use changed: %+v", e.rl.d.cfg)
	}
	l := e.logged(`"Config reload refused"`)
	if len(l) != 1 || strings.Contains(l[0], "\n") ||
		!strings.Contains(l[0], "config: "+e.path+`: line 6: unknown field \"resyncPeriood\"`) {
		t.Fatalf("refusal log: %q", l)
	}
	// The same bytes again (another event of the same write): not tried, not logged again.
	if res := e.rl.reload("file"); res != reloadUnchanged || len(e.logged(`"Config reload refused"`)) != 1 {
		t.Errorf("the same refused bytes: %s, logs %v", res, e.logged("refused"))
	}
	// A validation problem (not a decode one) names the file too.
	e.write(t, e.baseConfig("servicesMax: -1\n"))
	e.rl.reload("file")
	if l := e.logged("servicesMax must not be negative"); len(l) != 1 || !strings.Contains(l[0], "config: "+e.path+": servicesMax") {
		t.Errorf("validation refusal: %q", l)
	}
	// Fixed: applied.
	e.write(t, e.baseConfig("settlePeriod: 30s\n"))
	if res := e.rl.reload("file"); res != reloadApplied || e.rl.ctl.Generation() != 2 {
		t.Errorf("the fixed file: %s, generation %d", res, e.rl.ctl.Generation())
	}
}

func TestReloadRefusesRestartRequiredField(t *testing.T) {
	e := newReloadEnv(t, "", globalFlags{}, nil)
	text := strings.Replace(e.baseConfig("settlePeriod: 1m\n"), filepath.Join(e.root, "service"), filepath.Join(e.root, "other"), 1)
	e.write(t, text)
	if res := e.rl.reload("signal"); res != reloadRefused {
		t.Fatalf("reload = %s, want refused", res)
	}
	want := "config: " + e.path + ": scandir cannot change while running (restart the controller to apply it)"
	if l := e.logged(`"Config reload refused"`); len(l) != 1 || !strings.Contains(l[0], `"error"="`+want+`"`) {
		t.Errorf("log %q, want the error %q", l, want)
	}
	if g := e.rl.ctl.Generation(); g != 1 || e.rl.d.cfg.SettlePeriod.Duration != DefaultSettlePeriod {
		t.Errorf("the whole config was not refused: generation %d, settle %v", g, e.rl.d.cfg.SettlePeriod)
	}
}

func TestReloadUnchanged(t *testing.T) {
	e := newReloadEnv(t, "settlePeriod: 20s\n", globalFlags{settle: 3 * time.Second}, func(f string) bool { return f == "settle-period" })
	e.write(t, e.baseConfig("settlePeriod: 20s\n")) // the same bytes, a new inode
	if res := e.rl.reload("file"); res != reloadUnchanged {
		t.Errorf("identical bytes: %s", res)
	}
	if res := e.rl.reload("signal"); res != reloadUnchanged {
		t.Errorf("SIGHUP, nothing changed: %s", res)
	}
	e.write(t, e.baseConfig("# a comment\nsettlePeriod: 20s\n"))
	if res := e.rl.reload("file"); res != reloadUnchanged {
		t.Errorf("a comment only: %s", res)
	}
	// The flag given at startup still wins over the file.
	e.write(t, e.baseConfig("settlePeriod: 40s\n"))
	if res := e.rl.reload("file"); res != reloadUnchanged || e.rl.d.cfg.SettlePeriod.Duration != 3*time.Second {
		t.Errorf("a field the startup flags set: %s, settle %v", res, e.rl.d.cfg.SettlePeriod)
	}
	if g := e.rl.ctl.Generation(); g != 1 {
		t.Errorf("generation %d, want 1", g)
	}
	if got := e.count(reloadUnchanged); got != 4 {
		t.Errorf("unchanged reloads: %v, want 4", got)
	}
}

func TestReloadWithoutConfigFile(t *testing.T) {
	e := newReloadEnv(t, "", globalFlags{}, nil)
	e.rl.path = ""
	if res := e.rl.reload("signal"); res != reloadUnchanged || len(e.logged("no config file")) != 1 {
		t.Errorf("SIGHUP without --config: %s, logs %v", res, e.logged(""))
	}
}

// awaitResult waits for the next reload result other than unchanged.
func (e *reloadEnv) awaitResult(t *testing.T) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case res := <-e.results:
			if res != reloadUnchanged {
				return res
			}
		case <-deadline:
			t.Fatalf("no reload within 10 s; logs: %v", e.logged(""))
			return ""
		}
	}
}

func TestReloadWatchesTheFile(t *testing.T) {
	e := newReloadEnv(t, "", globalFlags{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	hup := make(chan os.Signal, 1)
	go func() {
		defer close(done)
		e.rl.run(ctx, hup)
	}()
	defer func() {
		cancel()
		<-done
	}()
	if res := <-e.results; res != reloadUnchanged || e.count(reloadUnchanged) != 0 {
		t.Fatalf("the first look at the file: %s (counted %v), want unchanged and not counted", res, e.count(reloadUnchanged))
	}

	e.write(t, e.baseConfig("settlePeriod: 1m\n"))
	if res := e.awaitResult(t); res != reloadApplied || e.rl.ctl.Generation() != 2 {
		t.Fatalf("a rename into place: %s, generation %d", res, e.rl.ctl.Generation())
	}

	// An in-place write.
	if err := os.WriteFile(e.path, []byte(e.baseConfig("settlePeriod: 2m\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := e.awaitResult(t); res != reloadApplied || e.rl.ctl.Generation() != 3 {
		t.Fatalf("an in-place write: %s, generation %d", res, e.rl.ctl.Generation())
	}

	hup <- os.Interrupt // any value: run only receives
	if res := <-e.results; res != reloadUnchanged {
		t.Errorf("SIGHUP on an unchanged file: %s", res)
	}
	if got := e.count(reloadApplied); got != 2 {
		t.Errorf("applied reloads: %v, want 2", got)
	}
}

// TestReloadWatchesConfigMapSwap: a Kubernetes ConfigMap volume updates by swapping its
// "..data" symlink; the config path (config.yaml -> ..data/config.yaml) itself never changes.
func TestReloadWatchesConfigMapSwap(t *testing.T) {
	e := newReloadEnv(t, "", globalFlags{}, nil)
	dir := filepath.Dir(e.path)
	version := func(name, text string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "config.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	swap := func(name string) {
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	version("..v1", string(raw))
	swap("..v1")
	if err := os.Remove(e.path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/config.yaml", e.path); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.rl.run(ctx, nil)
	}()
	defer func() {
		cancel()
		<-done
	}()
	if res := <-e.results; res != reloadUnchanged {
		t.Fatalf("the first look: %s, want unchanged", res)
	}
	version("..v2", e.baseConfig("settlePeriod: 1m\n"))
	swap("..v2")
	if res := e.awaitResult(t); res != reloadApplied || e.rl.d.cfg.SettlePeriod.Duration != time.Minute {
		t.Fatalf("a ConfigMap swap: %s, settle %v", res, e.rl.d.cfg.SettlePeriod)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..v1")); err != nil {
		t.Fatal(err)
	}
	version("..v3", e.baseConfig("settlePeriod: 2m\n"))
	swap("..v3")
	if res := e.awaitResult(t); res != reloadApplied || e.rl.d.cfg.SettlePeriod.Duration != 2*time.Minute {
		t.Fatalf("a second swap: %s, settle %v", res, e.rl.d.cfg.SettlePeriod)
	}
}
