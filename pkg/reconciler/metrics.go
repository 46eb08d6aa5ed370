package reconciler

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's Prometheus metrics. The names follow controller-runtime's where
// one exists (controller_runtime_reconcile_total → profile_controller_reconcile_total), so
// dashboards carry over. A nil *metrics records nothing.
type metrics struct {
	reconciles *prometheus.CounterVec
	duration   prometheus.Histogram
	actions    *prometheus.CounterVec
	lastResync prometheus.Gauge
}

// registerMetrics registers the controller's metrics with reg (nil: no metrics).
func (c *Controller) registerMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "profile_controller_reconcile_total",
			Help: "Reconciles of one profile key, by result (success, error, requeue).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "profile_controller_reconcile_time_seconds",
			Help:    "Time to reconcile one profile key.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "profile_controller_actions_total",
			Help: "Actions applied, by kind and result (ok, error).",
		}, []string{"action", "result"}),
	}
	m.lastResync = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "profile_controller_last_resync_timestamp_seconds",
		Help: "When the loop last listed every key for a resync (Unix time).",
	})
	reg.MustRegister(m.lastResync)
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.reconciles, m.duration, m.actions,
		gauge("profile_controller_problems", "Profiles and slots currently reported and skipped (bad name, symlink, foreign entry, unreadable state).",
			func() float64 { return float64(c.countReported()) }),
		gauge("profile_controller_slots_without_status", "Slots whose live supervisor has written no supervise/status (re-created after 5 s).",
			func() float64 { return float64(c.countNoStatus()) }),
		gauge("profile_controller_crashloop_profiles", "Profiles in crash-loop backoff.",
			func() float64 { return float64(c.countCrashLooping()) }),
		gauge("profile_controller_pending_corrections", "Profiles whose correction waits for the settle window or a backoff.",
			func() float64 { return float64(c.countPending()) }),
	)
	return m
}

func (m *metrics) reconciled(d time.Duration, err error, requeue time.Duration) {
	if m == nil {
		return
	}
	result := "success"
	switch {
	case err != nil:
		result = "error"
	case requeue > 0:
		result = "requeue"
	}
	m.reconciles.WithLabelValues(result).Inc()
	m.duration.Observe(d.Seconds())
}

// resynced records the end of a resync's listing at t.
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

func (c *Controller) countReported() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.reported {
		if !strings.HasPrefix(k, "watch/") {
			n++
		}
	}
	return n
}

// countCrashLooping and countPending run at scrape time, never per key.
func (c *Controller) countCrashLooping() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ks := range c.keys {
		if ks.Crashed {
			n++
		}
	}
	return n
}

func (c *Controller) countNoStatus() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ks := range c.keys {
		if !ks.NoStatusSince.IsZero() {
			n++
		}
	}
	return n
}

func (c *Controller) countPending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ks := range c.keys {
		if ks.pending != "" {
			n++
		}
	}
	return n
}
