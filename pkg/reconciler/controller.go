package reconciler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hermes/profile-controller/internal/safefs"
	"github.com/hermes/profile-controller/pkg/desired"
	"github.com/hermes/profile-controller/pkg/observed"
	"github.com/hermes/profile-controller/pkg/s6"
)

// BootMarker is the file in the runtime dir whose presence means the boot pass is done.
const BootMarker = "boot-done"

// BootLogger appends the boot pass's lines to the boot log.
type BootLogger func(lines []string) error

// Options configure a Controller. Zero durations take the defaults.
type Options struct {
	HermesHome, Scandir, RuntimeDir string
	// Services and Scanner drive s6 (usually the same *s6.Client).
	Services Services
	Scanner  Scanner
	Renderer *Renderer
	// Owner, when set, owns the supervise skeleton of new slots.
	Owner *s6.Owner
	Rules Rules
	// ResyncPeriod is the periodic full resync (default 10 s).
	ResyncPeriod time.Duration
	// UnregisterTimeout bounds the wait for down before a slot is removed (default 10 s).
	UnregisterTimeout time.Duration
	// CleanStale and BootLog write the two things the controller writes under HERMES_HOME.
	CleanStale StaleCleaner
	BootLog    BootLogger
	// Log receives structured logs; Now is the clock.
	Log logr.Logger
	Now func() time.Time
	// ServicesMax is s6-svscan's service limit, loggers included (0: unchecked).
	ServicesMax int
	// Metrics, when set, receives the controller's Prometheus metrics.
	Metrics prometheus.Registerer
	// Workers is the number of keys reconciled in parallel (default 2); a key never runs twice at once.
	Workers int
}

func (o *Options) defaults() {
	if o.ResyncPeriod <= 0 {
		o.ResyncPeriod = 10 * time.Second
	}
	if o.UnregisterTimeout <= 0 {
		o.UnregisterTimeout = 10 * time.Second
	}
	if o.Rules.SettlePeriod <= 0 {
		o.Rules.SettlePeriod = 15 * time.Second
	}
	if o.Rules.MinUptime <= 0 {
		o.Rules.MinUptime = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
}

// Controller reconciles profiles into s6 slots.
type Controller struct {
	opts   Options
	loader desired.Loader
	exec   *Executor

	memOnce  sync.Once
	saveMu   sync.Mutex // serialises writes of the memory file
	mu       sync.Mutex
	mem      map[string]Memory
	pending  map[string]string
	reported map[string]string // last problem logged per key, to log changes only
	metrics  *metrics
}

// New returns a Controller. It does not touch the file system.
func New(opts Options) *Controller {
	opts.defaults()
	c := &Controller{
		opts:   opts,
		loader: desired.Loader{Home: opts.HermesHome},
		exec: &Executor{
			Scandir: opts.Scandir, Services: opts.Services, Scanner: opts.Scanner, Owner: opts.Owner,
			CleanStale: opts.CleanStale, UnregisterTimeout: opts.UnregisterTimeout,
			ServicesMax: opts.ServicesMax,
		},
		mem:      map[string]Memory{},
		pending:  map[string]string{},
		reported: map[string]string{},
	}
	c.metrics = c.registerMetrics(opts.Metrics)
	return c
}

// BootPending reports whether the boot pass has not run since the runtime dir was created.
func (c *Controller) BootPending() bool {
	_, err := os.Lstat(filepath.Join(c.opts.RuntimeDir, BootMarker))
	return errors.Is(err, os.ErrNotExist)
}

// commit stores the planner's memory, records controller starts, and persists the memory
// file in the runtime dir when something durable changed (a failure there is logged only).
func (c *Controller) commit(decisions map[string]Decision, res Result, now time.Time) {
	c.mu.Lock()
	before := make(map[string]Memory, len(c.mem))
	for k, v := range c.mem {
		before[k] = v
	}
	for name, d := range decisions {
		c.mem[name] = d.Memory
		if d.Pending != "" {
			c.pending[name] = d.Pending
		} else {
			delete(c.pending, name)
		}
	}
	for name, d := range decisions {
		if res.Errors[name] != nil {
			continue
		}
		for _, a := range d.Actions {
			c.mem[name] = c.mem[name].applied(a)
		}
	}
	for _, name := range res.Started {
		c.mem[name] = c.mem[name].started(now)
	}
	c.mu.Unlock()
	if err := c.persistIfChanged(before); err != nil && !errors.Is(err, errNoChange) {
		c.opts.Log.Error(err, "Could not persist controller memory")
	}
}

// ReconcileKey reconciles one profile key from its full desired and observed state. It
// returns how long to wait before looking again (0: only on the next event or resync).
func (c *Controller) ReconcileKey(ctx context.Context, name string) (time.Duration, error) {
	now := c.opts.Now()
	log := c.opts.Log.WithValues("profile", name)
	p, present, perr := c.loader.LoadProfile(name)
	var prof *desired.Profile
	var files []s6.File
	if perr == nil && present {
		f, err := c.opts.Renderer.Render(p)
		if err != nil {
			perr = err
		} else {
			prof, files = &p, f
		}
	}
	if errors.Is(perr, desired.ErrNotProfile) {
		perr = nil // a directory without SOUL.md is simply not a profile
	}
	c.report(log, name, "profile", perr)
	var actions []Action
	if staging, err := observed.StagingExists(c.opts.Scandir, name); err == nil && staging {
		actions = append(actions, Action{Kind: CleanStaging, Profile: name, Slot: s6.StagingName(desired.SlotPrefix + name)})
	}
	slot, serr := observed.ReadSlot(c.opts.Scandir, name)
	c.report(log, name, "slot", serr)
	if serr != nil {
		// A foreign entry (symlink, file) under a slot name: reported, never touched.
		return 0, c.exec.Apply(ctx, actions).Err()
	}
	var slotErr error
	if slot != nil {
		slotErr = slot.Err
	}
	c.report(log, name, "slot state", slotErr)
	c.mu.Lock()
	mem := c.mem[name]
	c.mu.Unlock()
	d := PlanProfile(Input{
		Name: name, Now: now, Profile: prof, Files: files,
		Keep:   present, // LoadProfile reports present when profiles/ cannot be read
		Slot:   slot,
		Memory: mem,
	}, c.opts.Rules)
	actions = append(actions, d.Actions...)
	var res Result
	if len(actions) > 0 {
		res = c.exec.Apply(ctx, actions)
		c.metrics.applied(actions, res)
		for _, a := range actions {
			if err := res.Errors[name]; err == nil {
				log.Info("Applied action", "action", a.String())
			}
		}
	}
	c.commit(map[string]Decision{name: d}, res, now)
	if d.Pending != "" {
		log.V(1).Info("Correction pending", "pending", d.Pending)
	}
	return d.RequeueAfter, res.Err()
}

// report logs a per-key problem once, when it appears or changes, and its clearing.
func (c *Controller) report(log logr.Logger, name, what string, err error) {
	key := what + "/" + name
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.mu.Lock()
	prev := c.reported[key]
	if msg == "" {
		delete(c.reported, key)
	} else {
		c.reported[key] = msg
	}
	c.mu.Unlock()
	switch {
	case msg != "" && msg != prev:
		log.Error(err, "Skipped "+what)
	case msg == "" && prev != "":
		log.Info("Problem cleared", "was", prev)
	}
}

// Keys lists every key worth a look: "default", entries of profiles/, and slots and staging
// leftovers in the scandir. Sorted, deduplicated.
func (c *Controller) Keys() []string {
	set := map[string]bool{desired.DefaultProfile: true}
	if home, err := safefs.OpenDir(c.opts.HermesHome); err == nil {
		if pd, err := home.OpenDir("profiles"); err == nil {
			names, _ := pd.ReadDirNames()
			for _, n := range names {
				if !strings.HasPrefix(n, ".") {
					set[n] = true
				}
			}
			pd.Close()
		}
		home.Close()
	}
	if sd, err := safefs.OpenDir(c.opts.Scandir); err == nil {
		names, _ := sd.ReadDirNames()
		for _, n := range names {
			if k, ok := keyForScandirEntry(n); ok {
				set[k] = true
			}
		}
		sd.Close()
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// keyForScandirEntry maps "gateway-<n>" and ".gateway-<n>.tmp" to n.
func keyForScandirEntry(name string) (string, bool) {
	if s6.IsStagingName(name) {
		return strings.TrimSuffix(strings.TrimPrefix(name, "."+desired.SlotPrefix), ".tmp"), true
	}
	if k, ok := strings.CutPrefix(name, desired.SlotPrefix); ok && k != "" {
		return k, true
	}
	return "", false
}
