package main

// Live configuration: `run` reloads its configuration on SIGHUP and when the config file changes
// (reload_watch.go), through the startup path (loadConfigRaw: file, environment, the flags given
// at startup, defaults, validation). A valid configuration whose changes are all live is applied
// without a restart (Controller.Reconfigure); anything else is refused with one line and the
// configuration in use keeps running.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hermes/profile-controller/pkg/reconciler"
	"github.com/hermes/profile-controller/pkg/s6"
)

// liveFields classifies every top-level config field (by its YAML name): true when a new value
// applies while `run` runs, false when it needs a restart (a reload that changes it is refused).
// Every field of Config must be here (TestReloadClassCoversConfig): add a new one in one line.
var liveFields = map[string]bool{
	"hermesHome":        false,
	"scandir":           false,
	"s6BinDir":          false,
	"runtimeDir":        false,
	"metricsAddr":       false,
	"logFormat":         false,
	"role":              false, // who acts on the volume: decided once, with the lease, at start
	"lease":             false,
	"topology":          false, // every slot's fold changes: a restart re-plans them in one pass
	"multiplex":         false,
	"resyncPeriod":      true,
	"settlePeriod":      true,
	"minUptime":         true,
	"unregisterTimeout": true,
	"heartbeatTimeout":  true,
	"commandTimeout":    true,
	"servicesMax":       true,
	"gatewayUser":       true,
	"extraEnv":          true,
	"templates":         true,
	"verbosity":         true,
}

// Reload results: the label values of profile_controller_config_reloads_total.
const (
	reloadApplied   = "applied"
	reloadRefused   = "refused"
	reloadUnchanged = "unchanged"
)

// changedFields lists the YAML names of the top-level fields whose values differ, in the
// order of Config.
func changedFields(old, cur Config) []string {
	var out []string
	a, b := reflect.ValueOf(old), reflect.ValueOf(cur)
	for i := range a.NumField() {
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, yamlName(a.Type().Field(i)))
		}
	}
	return out
}

// yamlName is a struct field's YAML key.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

// restartRequired lists the fields of changed that cannot change while running (an unknown
// field counts as one: applying what was never classified would be a guess).
func restartRequired(changed []string) []string {
	var out []string
	for _, f := range changed {
		if live, ok := liveFields[f]; !ok || !live {
			out = append(out, f)
		}
	}
	return out
}

// reloader re-reads and applies the configuration while `run` runs. Its reload is called from
// one goroutine at a time (reloader.run).
type reloader struct {
	flags *globalFlags
	set   func(flag string) bool // the flags given at startup: they still win
	path  string                 // the config file, absolute ("" without --config)
	ctl   *reconciler.Controller
	log   logr.Logger
	// d holds the configuration in use (cfg, raw, renderer) and setVerbosity; owner is its
	// resolved gatewayUser.
	d     *deps
	owner *s6.Owner
	// refusedRaw are the bytes of the last refused file: a watch event with the same bytes is
	// not tried (and logged) again.
	refusedRaw []byte
	results    *prometheus.CounterVec
	// done, when set, is told each reload's result (tests).
	done func(result string)
}

// newReloader builds the reloader of a `run` whose dependencies are d, and registers
// profile_controller_config_reloads_total with d.reg.
func newReloader(g *globalFlags, set func(string) bool, d *deps) (*reloader, error) {
	r := &reloader{flags: g, set: set, ctl: d.ctl, log: d.log, d: d}
	if g.config != "" {
		abs, err := absPath(g.config)
		if err != nil {
			return nil, err
		}
		r.path = abs
	}
	opts, err := controllerOptions(d.cfg, d.renderer, d.log, nil, nil)
	if err != nil {
		return nil, err
	}
	r.owner = opts.Owner
	r.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "profile_controller_config_reloads_total",
		Help: "Configuration reloads of run (SIGHUP, a change of the config file), by result (applied, refused, unchanged).",
	}, []string{"result"})
	for _, res := range []string{reloadApplied, reloadRefused, reloadUnchanged} {
		r.results.WithLabelValues(res)
	}
	if d.reg != nil {
		d.reg.MustRegister(r.results)
	}
	return r, nil
}

// reload re-reads the configuration (trigger "signal", "file", or "start" for the look right
// after the watch is set up; for the log) and applies or refuses it, and returns the result. A
// trigger other than a signal whose bytes are those of the configuration in use, or of the last
// refused one, changes nothing; a signal always goes the whole way. The start look is counted
// only when it finds a change.
func (r *reloader) reload(trigger string) string {
	res := r.reloadOnce(trigger)
	if trigger != "start" || res != reloadUnchanged {
		r.results.WithLabelValues(res).Inc()
	}
	if r.done != nil {
		r.done(res)
	}
	return res
}

func (r *reloader) reloadOnce(trigger string) string {
	if r.path == "" {
		// Without a file there is nothing to re-read: the environment and the flags of a
		// running process do not change.
		r.log.Info("Config reload skipped", "trigger", trigger, "reason", "no config file (--config not given)")
		return reloadUnchanged
	}
	if trigger != "signal" {
		if data, err := readConfigFile(r.path, os.Geteuid()); err == nil &&
			(bytes.Equal(data, r.d.raw) || (r.refusedRaw != nil && bytes.Equal(data, r.refusedRaw))) {
			r.log.V(1).Info("Config file unchanged", "trigger", trigger, "path", r.path)
			return reloadUnchanged
		}
	}
	cfg, raw, err := loadConfigRaw(r.flags, r.set)
	if err != nil {
		return r.refuse(trigger, raw, err)
	}
	changed := changedFields(r.d.cfg, cfg)
	if fixed := restartRequired(changed); len(fixed) > 0 {
		what := "it"
		if len(fixed) > 1 {
			what = "them"
		}
		return r.refuse(trigger, raw, fmt.Errorf("config: %s: %s cannot change while running (restart the controller to apply %s)",
			r.path, strings.Join(fixed, ", "), what))
	}
	rend, err := newRenderer(cfg)
	if err != nil {
		return r.refuse(trigger, raw, err)
	}
	opts, err := controllerOptions(cfg, rend, r.log, nil, nil)
	if err != nil {
		return r.refuse(trigger, raw, err)
	}
	if !sameOwner(opts.Owner, r.owner) && !slices.Contains(changed, "gatewayUser") {
		changed = append(changed, "gatewayUser") // same name, another uid or gid
	}
	r.refusedRaw = nil
	if len(changed) == 0 {
		r.d.raw = raw
		log := r.log.V(1)
		if trigger == "signal" {
			log = r.log
		}
		log.Info("Config unchanged", "trigger", trigger, "path", r.path, "generation", r.ctl.Generation())
		return reloadUnchanged
	}
	gen, err := r.ctl.Reconfigure(opts, changed)
	if err != nil {
		return r.refuse(trigger, raw, err)
	}
	if cfg.Verbosity != r.d.cfg.Verbosity && r.d.setVerbosity != nil {
		r.d.setVerbosity(cfg.Verbosity)
	}
	r.d.cfg, r.d.raw, r.d.renderer, r.owner = cfg, raw, rend, opts.Owner
	r.log.Info("Config reloaded", "trigger", trigger, "path", r.path, "generation", gen, "changed", changed)
	return reloadApplied
}

// refuse logs and records a refused configuration: one line naming the file.
func (r *reloader) refuse(trigger string, raw []byte, err error) string {
	r.refusedRaw = raw
	if raw == nil {
		r.refusedRaw = nil // unreadable: try again on the next event
	}
	err = errors.New(r.oneLine(err))
	r.log.Error(err, "Config reload refused", "trigger", trigger, "path", r.path, "generation", r.ctl.Generation())
	r.ctl.ConfigRefused(err)
	return reloadRefused
}

// oneLine is err's message on one line, every "config: " problem naming the file: on a reload
// the file is what changed.
func (r *reloader) oneLine(err error) string {
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "config: "); ok && !strings.HasPrefix(rest, r.path+": ") {
			lines[i] = "config: " + r.path + ": " + rest
		}
	}
	return strings.Join(lines, "; ")
}

func sameOwner(a, b *s6.Owner) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
