// Command profile-controller keeps per-profile hermes gateway services converged in an s6
// scandir. main only wires: flags → config → logger → dependencies → the command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"strconv"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hermes/profile-controller/internal/volume"
	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// version is set at build time with -ldflags "-X main.version=…"; else the module version.
var version = ""

const usage = `usage: profile-controller [flags] <command> [command flags]

commands:
  run                                   always-on reconcile loop
  reconcile --once [--boot] [--dry-run] one full pass (cont-init.d); prints one line per profile
  plan                                  the actions a pass would take now; changes nothing
  status [-o table|json|yaml]           desired vs observed per profile
  version                               print the version

flags (before or after the command):
`

// exitError carries an exit code: 1 for failures, 2 for usage and configuration errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func usageErr(format string, args ...any) error {
	return &exitError{2, fmt.Errorf(format, args...)}
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "profile-controller: "+oneLine(err.Error()))
		} else {
			code = 0
		}
		os.Exit(code)
	}
}

// globalFlags are accepted before and after the command.
type globalFlags struct {
	config                                    string
	home, scandir, binDir, runtimeDir, gwUser string
	resync, settle                            Duration
	verbosity                                 int
	logFormat                                 string
}

func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.config, "config", "", "YAML config `file`")
	fs.StringVar(&g.home, "hermes-home", "", "HERMES_HOME `dir` (default /opt/data)")
	fs.StringVar(&g.scandir, "scandir", "", "s6 scan `dir` (default /run/service)")
	fs.StringVar(&g.binDir, "s6-bin-dir", "", "`dir` of the s6 binaries (default /command, else /usr/bin)")
	fs.StringVar(&g.runtimeDir, "runtime-dir", "", "tmpfs `dir` for the boot marker and lock (default /run/profile-controller)")
	fs.StringVar(&g.gwUser, "gateway-user", "", "gateway `user` (empty: no privilege drop)")
	fs.Var(&g.resync, "resync-period", "periodic resync `duration` (default 10s)")
	fs.Var(&g.settle, "settle-period", "settle window `duration` (default 15s)")
	fs.IntVar(&g.verbosity, "v", 0, "log verbosity `level`")
	fs.StringVar(&g.logFormat, "log-format", "", "log `format`: json or console")
}

func newFlagSet(name string, g *globalFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var g globalFlags
	top := newFlagSet("profile-controller", &g, stderr)
	set := map[string]bool{}
	if err := top.Parse(args); err != nil {
		return parseErr(err)
	}
	top.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if top.NArg() == 0 {
		top.Usage()
		return usageErr("no command given")
	}
	cmd, rest := top.Arg(0), top.Args()[1:]
	// Globals after the command land in their own struct (registering resets the values),
	// then are copied onto g through the top-level set.
	var after globalFlags
	fs := newFlagSet(cmd, &after, stderr)
	once := fs.Bool("once", false, "reconcile: run one full pass")
	boot := fs.Bool("boot", false, "reconcile: force the boot pass")
	dry := fs.Bool("dry-run", false, "reconcile: plan only, change nothing")
	output := fs.String("o", "table", "status: output `format` table, json or yaml")
	if err := fs.Parse(rest); err != nil {
		return parseErr(err)
	}
	var setErr error
	fs.Visit(func(f *flag.Flag) {
		set[f.Name] = true
		if top.Lookup(f.Name) != nil {
			setErr = errors.Join(setErr, top.Set(f.Name, f.Value.String()))
		}
	})
	if setErr != nil {
		return usageErr("%v", setErr)
	}
	if fs.NArg() > 0 {
		return usageErr("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, "profile-controller", versionString())
		return nil
	case "run", "plan", "status":
	case "reconcile":
		if !*once {
			return usageErr("reconcile needs --once (the loop is `run`)")
		}
	default:
		return usageErr("unknown command %q (run, reconcile, plan, status, version)", cmd)
	}
	if cmd != "reconcile" && (set["once"] || set["boot"] || set["dry-run"]) {
		return usageErr("--once, --boot and --dry-run belong to reconcile")
	}
	if cmd != "status" && set["o"] {
		return usageErr("-o belongs to status")
	}

	cfg, err := loadConfig(&g, set)
	if err != nil {
		return &exitError{2, err}
	}
	log, flush, err := newLogger(cfg, cmd, stderr)
	if err != nil {
		return &exitError{2, err}
	}
	defer flush()
	reg := prometheus.NewRegistry()
	ctl, err := newController(cfg, log, reg)
	if err != nil {
		return &exitError{2, err}
	}

	switch cmd {
	case "run":
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		log.Info("Starting", "version", versionString(), "hermesHome", cfg.HermesHome, "scandir", cfg.Scandir)
		if cfg.MetricsAddr != "" {
			if _, err := serveMetrics(ctx, cfg.MetricsAddr, reg, ctl, log); err != nil {
				return err
			}
		}
		return ctl.Run(ctx)
	case "reconcile":
		return reconcileOnce(ctx, ctl, *boot, *dry, stdout, stderr)
	case "plan":
		return printPlan(ctx, ctl, stdout)
	default:
		return printStatus(ctx, ctl, *output, stdout)
	}
}

func parseErr(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &exitError{2, err}
}

// loadConfig applies file, then environment, then the flags that were set, then defaults.
func loadConfig(g *globalFlags, set map[string]bool) (Config, error) {
	var cfg Config
	if g.config != "" {
		c, err := LoadConfigFile(g.config)
		if err != nil {
			return cfg, err
		}
		cfg = c
	}
	cfg.ApplyEnv(os.Getenv)
	for name, apply := range map[string]func(){
		"hermes-home":   func() { cfg.HermesHome = g.home },
		"scandir":       func() { cfg.Scandir = g.scandir },
		"s6-bin-dir":    func() { cfg.S6BinDir = g.binDir },
		"runtime-dir":   func() { cfg.RuntimeDir = g.runtimeDir },
		"gateway-user":  func() { cfg.GatewayUser = g.gwUser },
		"resync-period": func() { cfg.ResyncPeriod = g.resync },
		"settle-period": func() { cfg.SettlePeriod = g.settle },
		"v":             func() { cfg.Verbosity = g.verbosity },
		"log-format":    func() { cfg.LogFormat = g.logFormat },
	} {
		if set[name] {
			apply()
		}
	}
	cfg.Default(nil)
	if err := cfg.Validate(reconciler.FuncMap); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg Config, cmd string, stderr io.Writer) (logr.Logger, func(), error) {
	format := cfg.LogFormat
	if format == "" {
		format = "console"
		if cmd == "run" {
			format = "json"
		}
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder
	if format == "json" {
		encoder = zapcore.NewJSONEncoder(enc)
	} else {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		encoder = zapcore.NewConsoleEncoder(enc)
	}
	core := zapcore.NewCore(encoder, zapcore.AddSync(stderr), zap.NewAtomicLevelAt(zapcore.Level(-cfg.Verbosity)))
	zl := zap.New(core)
	return zapr.NewLogger(zl), func() { _ = zl.Sync() }, nil
}

func newController(cfg Config, log logr.Logger, reg prometheus.Registerer) (*reconciler.Controller, error) {
	r, err := reconciler.NewRenderer(reconciler.Templates{
		Run: cfg.Templates.Run, Finish: cfg.Templates.Finish, LogRun: cfg.Templates.LogRun,
	}, cfg.ExtraEnv, cfg.HermesHome, cfg.GatewayUser)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var owner *s6.Owner
	if cfg.GatewayUser != "" {
		u, err := user.Lookup(cfg.GatewayUser)
		if err != nil {
			return nil, fmt.Errorf("config: gatewayUser %q: %w", cfg.GatewayUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		owner = &s6.Owner{UID: uid, GID: gid}
	}
	client := &s6.Client{BinDir: cfg.S6BinDir, Timeout: cfg.CommandTimeout.Duration}
	home := cfg.HermesHome
	return reconciler.New(reconciler.Options{
		HermesHome: home, Scandir: cfg.Scandir, RuntimeDir: cfg.RuntimeDir,
		Services: client, Scanner: client, Renderer: r, Owner: owner,
		Rules:             reconciler.Rules{SettlePeriod: cfg.SettlePeriod.Duration, MinUptime: cfg.MinUptime.Duration},
		ResyncPeriod:      cfg.ResyncPeriod.Duration,
		UnregisterTimeout: cfg.UnregisterTimeout.Duration,
		ServicesMax:       cfg.ServicesMax,
		CleanStale:        func(profile string) ([]string, error) { return volume.CleanStaleProfile(home, profile) },
		BootLog:           func(lines []string) error { return volume.AppendBootLog(home, lines) },
		Log:               log,
		Metrics:           reg,
	}), nil
}

func reconcileOnce(ctx context.Context, ctl *reconciler.Controller, boot, dry bool, stdout, stderr io.Writer) error {
	if !dry {
		unlock, err := ctl.Lock()
		if err != nil {
			return err
		}
		defer unlock()
	}
	rep := ctl.Pass(ctx, boot || ctl.BootPending(), dry)
	// stdout: one line per served profile (and per unregistered slot); stderr: what was
	// skipped, warnings and errors, one line each.
	for _, l := range rep.Lines {
		switch {
		case l.Action == "skipped":
			fmt.Fprintf(stderr, "profile-controller: warning: skipped %s\n", oneLine(l.Err.Error()))
			continue
		case l.Err != nil:
			fmt.Fprintf(stderr, "profile-controller: error: profile %s: %s\n", l.Profile, oneLine(l.Err.Error()))
		}
		fmt.Fprintln(stdout, l.String())
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stderr, "profile-controller: warning: %s\n", oneLine(w.Error()))
	}
	if rep.Err != nil {
		if len(rep.Lines) == 0 {
			return rep.Err
		}
		return errors.New("some actions failed (see the errors above); the next pass retries them")
	}
	if dry {
		for _, a := range rep.Actions {
			fmt.Fprintln(stdout, "plan: "+a.String())
		}
	}
	return nil
}

func printPlan(ctx context.Context, ctl *reconciler.Controller, stdout io.Writer) error {
	rep, err := ctl.Status(ctx)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range rep.Profiles {
		for _, a := range p.Actions {
			fmt.Fprintln(stdout, "plan: "+a)
			n++
		}
		if p.Pending != "" {
			fmt.Fprintf(stdout, "plan: pending %s: %s\n", p.Slot, p.Pending)
			n++
		}
	}
	for _, s := range rep.Staging {
		fmt.Fprintln(stdout, "plan: clean-staging "+s)
		n++
	}
	if n == 0 {
		fmt.Fprintln(stdout, "plan: nothing to do")
	}
	return nil
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' {
			out = append(out, ';', ' ')
			continue
		}
		out = append(out, r)
	}
	return string(out)
}
