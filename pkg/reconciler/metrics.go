package reconciler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// controllerName is the controller label of the controller-runtime-shaped metrics.
const controllerName = "profile"

// metrics are the controller's Prometheus metrics, in controller-runtime's shape where one
// exists (controller_runtime_reconcile_total{controller,result} and the rest, client-go's
// workqueue_* series), so dashboards and alerts written for controllers carry over. A nil
// *metrics records nothing.
type metrics struct {
	reconciles *prometheus.CounterVec
	errors     *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	active     *prometheus.GaugeVec
	actions    *prometheus.CounterVec
	lastResync prometheus.Gauge
	queue      workqueue.MetricsProvider
}

// registerMetrics registers the controller's metrics with reg (nil: no metrics).
func (c *Controller) registerMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	ctl := []string{"controller"}
	m := &metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controller_runtime_reconcile_total",
			Help: "Total number of reconciliations per controller, by result (success, error, requeue_after).",
		}, []string{"controller", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controller_runtime_reconcile_errors_total",
			Help: "Total number of reconciliation errors per controller.",
		}, ctl),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "controller_runtime_reconcile_time_seconds",
			Help:    "Length of time per reconciliation per controller.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}, ctl),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "controller_runtime_active_workers",
			Help: "Number of currently used workers per controller.",
		}, ctl),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "profile_controller_actions_total",
			Help: "Actions applied, by kind and result (ok, error).",
		}, []string{"action", "result"}),
		lastResync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "profile_controller_last_resync_timestamp_seconds",
			Help: "When the loop last finished a resync: every key listed, fed and reconciled (Unix time).",
		}),
	}
	maxWorkers := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "controller_runtime_max_concurrent_reconciles",
		Help: "Maximum number of concurrent reconciles per controller.",
	}, ctl)
	maxWorkers.WithLabelValues(controllerName).Set(float64(c.opts.Workers))
	m.active.WithLabelValues(controllerName).Set(0)
	m.errors.WithLabelValues(controllerName)
	for _, r := range []string{"success", "error", "requeue_after"} {
		m.reconciles.WithLabelValues(controllerName, r)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "profile_controller_build_info",
		Help: "Always 1; the labels say which build runs.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(c.opts.Version, goVersion()).Set(1)
	config := &configCollector{c: c}
	m.queue = newQueueMetrics(reg)
	reg.MustRegister(c.roleGauges()...)
	reg.MustRegister(m.reconciles, m.errors, m.duration, m.active, maxWorkers, m.actions, m.lastResync, build, config,
		&profileCollector{c: c},
		gauge("profile_controller_problems", "Profiles and slots currently reported and skipped (bad name, symlink, foreign entry, unreadable state).",
			func() float64 { return float64(c.countReported()) }),
		gauge("profile_controller_slots_without_status", "Slots whose live supervisor has written no supervise/status (re-created after 5 s).",
			func() float64 { return float64(c.countNoStatus()) }),
		gauge("profile_controller_crashloop_profiles", "Profiles in crash-loop backoff.",
			func() float64 { return float64(c.countCrashLooping()) }),
		gauge("profile_controller_not_served", "Folded profiles with intent up that the root gateway, up for the settle period, does not list in served_profiles (topology multiplex).",
			func() float64 { return float64(c.count(func(ks *keyState) bool { return ks.NotServed })) }),
		gauge("profile_controller_pending_corrections", "Profiles whose correction waits for the settle window or a backoff.",
			func() float64 { return float64(c.countPending()) }),
	)
	return m
}

// reconciled records one reconcile with controller-runtime's result values.
func (m *metrics) reconciled(d time.Duration, err error, requeue time.Duration) {
	if m == nil {
		return
	}
	result := "success"
	switch {
	case err != nil:
		result = "error"
		m.errors.WithLabelValues(controllerName).Inc()
	case requeue > 0:
		result = "requeue_after"
	}
	m.reconciles.WithLabelValues(controllerName, result).Inc()
	m.duration.WithLabelValues(controllerName).Observe(d.Seconds())
}

// working counts a worker in (+1) or out (-1) of a reconcile.
func (m *metrics) working(delta float64) {
	if m != nil {
		m.active.WithLabelValues(controllerName).Add(delta)
	}
}

// queueProvider is the workqueue metrics provider (nil: client-go's no-op one).
func (m *metrics) queueProvider() workqueue.MetricsProvider {
	if m == nil {
		return nil
	}
	return m.queue
}

// resynced records the end of a resync at t.
func (m *metrics) resynced(t time.Time) {
	if m == nil {
		return
	}
	m.lastResync.Set(float64(t.UnixNano()) / 1e9)
}

func (m *metrics) applied(actions []Action, res Result) {
	if m == nil {
		return
	}
	for _, a := range actions {
		result := "ok"
		key := a.Profile
		if key == "" {
			key = a.Slot
		}
		if res.Errors[key] != nil {
			result = "error"
		}
		m.actions.WithLabelValues(string(a.Kind), result).Inc()
	}
}

// profileCollector exports one series per profile at scrape time (never per reconcile):
// intent, observed phase, crash-loop failures and the deaths s6 counted.
type profileCollector struct{ c *Controller }

var (
	profileIntentDesc = prometheus.NewDesc("profile_controller_profile_intent",
		"The runtime intent of each profile's gateway (1 for the intent it has).", []string{"profile", "intent"}, nil)
	profilePhaseDesc = prometheus.NewDesc("profile_controller_profile_phase",
		"The observed phase of each profile's slot (1 for the phase it is in).", []string{"profile", "phase"}, nil)
	profileFailuresDesc = prometheus.NewDesc("profile_controller_crashloop_failures",
		"Consecutive crash-loop failures of each profile's gateway.", []string{"profile"}, nil)
	profileDeathsDesc = prometheus.NewDesc("profile_controller_gateway_deaths",
		"Deaths of each profile's gateway since its supervisor started (s6's own restarts included).", []string{"profile"}, nil)
)

func (p *profileCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{profileIntentDesc, profilePhaseDesc, profileFailuresDesc, profileDeathsDesc} {
		ch <- d
	}
}

func (p *profileCollector) Collect(ch chan<- prometheus.Metric) {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, ks := range c.keys {
		if ks.profile != nil {
			ch <- prometheus.MustNewConstMetric(profileIntentDesc, prometheus.GaugeValue, 1, name, ks.profile.Intent.String())
		}
		ch <- prometheus.MustNewConstMetric(profilePhaseDesc, prometheus.GaugeValue, 1, name, ks.phase())
		ch <- prometheus.MustNewConstMetric(profileFailuresDesc, prometheus.GaugeValue, float64(ks.Failures), name)
		if ks.sup != nil {
			ch <- prometheus.MustNewConstMetric(profileDeathsDesc, prometheus.GaugeValue, float64(ks.sup.Deaths), name)
		}
	}
}

// configCollector exports the configuration generation in use at scrape time, so a
// reconfiguration has nothing to update.
type configCollector struct{ c *Controller }

var configGenerationDesc = prometheus.NewDesc("profile_controller_config_generation",
	"The configuration generation in use: 1 for the configuration the controller started with, one more for each reload applied; "+
		"rendering identifies what the rendered slot files depend on (templates, extraEnv, hermesHome, gatewayUser).",
	[]string{"rendering"}, nil)

func (p *configCollector) Describe(ch chan<- *prometheus.Desc) { ch <- configGenerationDesc }

func (p *configCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.c.settings()
	ch <- prometheus.MustNewConstMetric(configGenerationDesc, prometheus.GaugeValue, float64(s.gen), s.renderer.Generation())
}

// phase is the key's phase as status names it, from what the last look saw.
func (ks *keyState) phase() string {
	ps := ProfileStatus{SlotExists: ks.sup != nil || ks.Files != nil, Pending: ks.pending, NotServed: ks.NotServed}
	if sup := ks.sup; sup != nil {
		ps.Supervised = sup.Supervised
		ps.StatusMissing = sup.Supervised && !sup.HasStatus
		if sup.HasStatus {
			ps.Up, ps.WantUp, ps.Paused = sup.Status.Up(), sup.Status.WantUp, sup.Status.Up() && sup.Status.Paused
		}
	}
	return phaseOf(ps, ks.Memory)
}

// queueMetrics implements client-go's workqueue.MetricsProvider with the series names
// controller-runtime registers (workqueue_depth{name}, …).
type queueMetrics struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	latency, work              *prometheus.HistogramVec
}

func newQueueMetrics(reg prometheus.Registerer) *queueMetrics {
	name := []string{"name"}
	buckets := prometheus.ExponentialBuckets(10e-9, 10, 12)
	q := &queueMetrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_depth", Help: "Current depth of workqueue."}, name),
		adds:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_adds_total", Help: "Total number of adds handled by workqueue."}, name),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_queue_duration_seconds",
			Help: "How long in seconds an item stays in workqueue before being requested.", Buckets: buckets}, name),
		work: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_work_duration_seconds",
			Help: "How long in seconds processing an item from workqueue takes.", Buckets: buckets}, name),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_unfinished_work_seconds",
			Help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration."}, name),
		longest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_longest_running_processor_seconds",
			Help: "How many seconds has the longest running processor for workqueue been running."}, name),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_retries_total", Help: "Total number of retries handled by workqueue."}, name),
	}
	reg.MustRegister(q.depth, q.adds, q.latency, q.work, q.unfinished, q.longest, q.retries)
	return q
}

func (q *queueMetrics) NewDepthMetric(n string) workqueue.GaugeMetric {
	return q.depth.WithLabelValues(n)
}
func (q *queueMetrics) NewAddsMetric(n string) workqueue.CounterMetric {
	return q.adds.WithLabelValues(n)
}
func (q *queueMetrics) NewLatencyMetric(n string) workqueue.HistogramMetric {
	return q.latency.WithLabelValues(n)
}
func (q *queueMetrics) NewWorkDurationMetric(n string) workqueue.HistogramMetric {
	return q.work.WithLabelValues(n)
}
func (q *queueMetrics) NewUnfinishedWorkSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return q.unfinished.WithLabelValues(n)
}
func (q *queueMetrics) NewLongestRunningProcessorSecondsMetric(n string) workqueue.SettableGaugeMetric {
	return q.longest.WithLabelValues(n)
}
func (q *queueMetrics) NewRetriesMetric(n string) workqueue.CounterMetric {
	return q.retries.WithLabelValues(n)
}

func (c *Controller) countReported() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.reported {
		if k.what != "warning" && k.what != "config warning" && k.what != "held" {
			n++
		}
	}
	return n
}

// countCrashLooping, countNoStatus and countPending run at scrape time, never per key.
func (c *Controller) countCrashLooping() int {
	return c.count(func(ks *keyState) bool { return ks.Crashed })
}
func (c *Controller) countNoStatus() int {
	return c.count(func(ks *keyState) bool { return !ks.NoStatusSince.IsZero() })
}
func (c *Controller) countPending() int {
	return c.count(func(ks *keyState) bool { return ks.pending != "" })
}

func (c *Controller) count(f func(*keyState) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ks := range c.keys {
		if f(ks) {
			n++
		}
	}
	return n
}
