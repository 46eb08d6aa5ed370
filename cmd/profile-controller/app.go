package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/hermes/profile-controller/internal/volume"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// deps are the dependencies a command runs with, built from the configuration.
type deps struct {
	cfg Config
	// raw is the config file's bytes that cfg came from (nil without --config).
	raw []byte
	log logr.Logger
	// setVerbosity changes the V level of log (and of klog) while it is in use.
	setVerbosity func(int)
	flush        func()
	reg          *prometheus.Registry
	renderer     *reconciler.Renderer
	ctl          *reconciler.Controller
}

// setup loads the configuration for cmd and builds the logger, the renderer and the controller.
// Every error is a configuration error (exit status 2). Call flush when done.
func (a *app) setup(cmd *cobra.Command) (*deps, error) { return a.setupWith(cmd, nil) }

// setupWith is setup with the controller's OnReady hook (run's readiness notification).
func (a *app) setupWith(cmd *cobra.Command, onReady func()) (*deps, error) {
	cfg, raw, err := loadConfigRaw(&a.flags, cmd.Flags().Changed)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	format := cfg.LogFormat
	if format == "" {
		format = "console"
		if cmd.Name() == "run" {
			format = "json"
		}
	}
	log, flush, setVerbosity := newLoggerLevel(format, cfg.Verbosity, a.stderr)
	r, err := newRenderer(cfg)
	if err != nil {
		flush()
		return nil, &exitError{code: exitUsage, err: err}
	}
	reg := prometheus.NewRegistry()
	ctl, err := newController(cfg, r, log, reg, onReady)
	if err != nil {
		flush()
		return nil, &exitError{code: exitUsage, err: err}
	}
	return &deps{cfg: cfg, raw: raw, log: log, setVerbosity: setVerbosity, flush: flush, reg: reg, renderer: r, ctl: ctl}, nil
}

// config applies the file, then the environment, then the global flags set on cmd's command
// line, then the defaults, and validates the result.
func (a *app) config(cmd *cobra.Command) (Config, error) {
	return loadConfig(&a.flags, cmd.Flags().Changed)
}

// loadConfig applies file, then environment, then the flags that were set, then defaults.
func loadConfig(g *globalFlags, set func(flag string) bool) (Config, error) {
	cfg, _, err := loadConfigRaw(g, set)
	return cfg, err
}

// loadConfigRaw is loadConfig that also returns the config file's bytes (nil without a file or
// when it could not be read): the one load path of startup and of run's reloads.
func loadConfigRaw(g *globalFlags, set func(flag string) bool) (Config, []byte, error) {
	var cfg Config
	var raw []byte
	if g.config != "" {
		c, data, err := loadConfigFileRaw(g.config)
		if err != nil {
			return cfg, data, err
		}
		cfg, raw = c, data
	}
	cfg.ApplyEnv(os.Getenv)
	for _, f := range []struct {
		name  string
		apply func()
	}{
		{"hermes-home", func() { cfg.HermesHome = g.home }},
		{"scandir", func() { cfg.Scandir = g.scandir }},
		{"s6-bin-dir", func() { cfg.S6BinDir = g.binDir }},
		{"runtime-dir", func() { cfg.RuntimeDir = g.runtimeDir }},
		{"gateway-user", func() { cfg.GatewayUser = g.gwUser }},
		{"resync-period", func() { cfg.ResyncPeriod = Duration{g.resync} }},
		{"settle-period", func() { cfg.SettlePeriod = Duration{g.settle} }},
		{"v", func() { cfg.Verbosity = g.verbosity }},
		{"log-format", func() { cfg.LogFormat = g.logFormat }},
		{"role", func() { cfg.Role = g.role }},
	} {
		if set(f.name) {
			f.apply()
		}
	}
	cfg.Default(nil)
	if err := cfg.Validate(reconciler.FuncMap); err != nil {
		return cfg, raw, prefixLines("config: ", err)
	}
	return cfg, raw, nil
}

func newRenderer(cfg Config) (*reconciler.Renderer, error) {
	r, err := reconciler.NewRenderer(reconciler.Templates{
		Run: cfg.Templates.Run, Finish: cfg.Templates.Finish, LogRun: cfg.Templates.LogRun,
	}, cfg.ExtraEnv, cfg.HermesHome, cfg.GatewayUser)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return r, nil
}

// newController builds the controller; onReady (nil: none) is called once Run is ready.
func newController(cfg Config, r *reconciler.Renderer, log logr.Logger, reg prometheus.Registerer, onReady func()) (*reconciler.Controller, error) {
	opts, err := controllerOptions(cfg, r, log, reg, onReady)
	if err != nil {
		return nil, err
	}
	return reconciler.New(opts), nil
}

// controllerOptions are the controller's options for cfg: New's at startup, Reconfigure's on a
// reload (which takes only the live fields).
func controllerOptions(cfg Config, r *reconciler.Renderer, log logr.Logger, reg prometheus.Registerer, onReady func()) (reconciler.Options, error) {
	var owner *s6.Owner
	if cfg.GatewayUser != "" {
		u, err := user.Lookup(cfg.GatewayUser)
		if err != nil {
			return reconciler.Options{}, fmt.Errorf("config: gatewayUser %q: %w", cfg.GatewayUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		owner = &s6.Owner{UID: uid, GID: gid}
	}
	client := &s6.Client{BinDir: cfg.S6BinDir, Timeout: cfg.CommandTimeout.Duration}
	home := cfg.HermesHome
	return reconciler.Options{
		HermesHome: home, Scandir: cfg.Scandir, RuntimeDir: cfg.RuntimeDir,
		Services: client, Scanner: client, Renderer: r, Owner: owner,
		Rules:             reconciler.Rules{SettlePeriod: cfg.SettlePeriod.Duration, MinUptime: cfg.MinUptime.Duration},
		ResyncPeriod:      cfg.ResyncPeriod.Duration,
		UnregisterTimeout: cfg.UnregisterTimeout.Duration,
		HeartbeatTimeout:  cfg.HeartbeatTimeout.Duration,
		ServicesMax:       cfg.ServicesMax,
		Topology:          reconciler.Topology(cfg.Topology),
		Fallback:          reconciler.Fallback(cfg.Multiplex.Fallback),
		CleanStale:        func() (reconciler.StaleBatch, error) { return volume.OpenHome(home) },
		BootLog:           func(lines []string) error { return volume.AppendBootLog(home, lines) },
		Log:               log,
		Metrics:           reg,
		Version:           readVersionInfo().Version,
		OnReady:           onReady,
		Lease:             cfg.Lease == LeaseOn,
		Standby:           cfg.Role == RoleStandby,
	}, nil
}
