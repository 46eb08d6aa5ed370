package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hermes/profile-controller/internal/benchvol"
	"github.com/hermes/profile-controller/internal/safefs"
)

// sizes are the row sizes and durations: issue 7's in full mode, tiny ones in smoke mode.
type sizes struct {
	runs, cheapRuns int

	bootN      int
	convergeN  []int
	noopN      [2]int // the growth is judged from the first to the second
	idleN      int
	idleResync time.Duration
	eventN     [2]int
	events     int // per run
	eventRate  int // per second

	latencyN     int
	latencyEdits int
	resyncKeys   int
	resyncEdits  int
	resyncPeriod time.Duration

	junkProfiles, junk int
	junkWindow         time.Duration
	junkResync         time.Duration

	writesN, writers, writeRate int
	writesWindow                time.Duration
	writesResync                time.Duration

	hungN       int
	hungTimeout time.Duration

	rssN      int
	quietWait time.Duration // the longest wait for a started controller to go quiet
}

func fullSizes(runs int) sizes {
	runs = max(runs, 1)
	return sizes{
		runs: runs, cheapRuns: 3 * runs,
		bootN: 1000, convergeN: []int{300, 1000},
		noopN: [2]int{1000, 10000}, idleN: 10000, idleResync: 10 * time.Second,
		eventN: [2]int{1000, 10000}, events: 1000, eventRate: 100,
		latencyN: 300, latencyEdits: 60, resyncKeys: 10000, resyncEdits: 20, resyncPeriod: time.Second,
		junkProfiles: 20, junk: 20000, junkWindow: 25 * time.Second, junkResync: 10 * time.Second,
		writesN: 1000, writers: 20, writeRate: 5, writesWindow: 20 * time.Second, writesResync: 10 * time.Second,
		hungN: 20, hungTimeout: 3 * time.Second,
		rssN: 10000, quietWait: 90 * time.Second,
	}
}

func smokeSizes() sizes {
	return sizes{
		runs: 1, cheapRuns: 1,
		bootN: 20, convergeN: []int{20},
		noopN: [2]int{20, 40}, idleN: 40, idleResync: time.Second,
		eventN: [2]int{20, 40}, events: 20, eventRate: 100,
		latencyN: 20, latencyEdits: 10, resyncKeys: 200, resyncEdits: 3, resyncPeriod: time.Second,
		junkProfiles: 10, junk: 200, junkWindow: 2 * time.Second, junkResync: time.Second,
		writesN: 20, writers: 5, writeRate: 5, writesWindow: 2 * time.Second, writesResync: time.Second,
		hungN: 6, hungTimeout: time.Second,
		rssN: 40, quietWait: 20 * time.Second,
	}
}

// bench holds what the rows share.
type bench struct {
	e      *env
	sz     sizes
	smoke  bool
	gb     goBench
	worlds map[string]*world // stub worlds by name, reused across rows

	// peak RSS samples (KiB) at rssN profiles, gathered by the rows that start those processes.
	rssRun, rssReconcile []float64
	rssBoot              float64
}

// result is one line of the table.
type result struct {
	row, goal, median, spread, verdict, notes string
}

// judge turns a goal check into PASS or FAIL, or "—" in smoke mode.
func (b *bench) judge(ok bool) string {
	switch {
	case b.smoke:
		return "—"
	case ok:
		return "PASS"
	default:
		return "FAIL"
	}
}

// unmeasurable is a row the controller's behaviour made impossible to measure.
func (b *bench) unmeasurable(row, goal, why string) result {
	v := "FAIL"
	if b.smoke {
		v = "—"
	}
	return result{row: row, goal: goal, median: "n/a", spread: "", verdict: v, notes: "not measurable: " + why}
}

// stubWorld returns a converged system of n slots (n-1 named profiles plus default) on stub s6
// binaries: benchvol.MakeHome, Converge with the controller's rendering, HoldLocks standing in
// for the supervisors, and one warm-up `reconcile --once --boot`, so that the boot marker is
// down and the page cache is warm. Worlds are cached by n and shared by the rows.
func (b *bench) stubWorld(n int) (*world, error) {
	key := fmt.Sprintf("stub-%d", n)
	if w, ok := b.worlds[key]; ok {
		return w, nil
	}
	e := b.e
	dir, err := e.dir(key)
	if err != nil {
		return nil, err
	}
	w := &world{e: e, dir: dir, home: filepath.Join(dir, "home"), scandir: filepath.Join(dir, "service"),
		runtime: filepath.Join(dir, "run"), s6: e.stubOK}
	t0 := time.Now()
	if w.names, err = benchvol.MakeHome(w.home, n-1, 0); err != nil {
		return nil, err
	}
	render, err := renderFunc(w.home)
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(w.scandir, 0o755); err != nil {
		return nil, err
	}
	if err := benchvol.Converge(w.scandir, w.names, render); err != nil {
		return nil, err
	}
	if w.release, err = benchvol.HoldLocks(w.scandir); err != nil {
		return nil, err
	}
	register(w.release)
	if w.config, err = writeConfig(dir, "config.yaml", b.config(n, 0)); err != nil {
		return nil, err
	}
	vlogf("world %s built in %s", key, time.Since(t0).Round(time.Millisecond))
	before, err := snapshot(w.scandir)
	if err != nil {
		return nil, err
	}
	o, err := w.runOnce("reconcile", "--once", "--boot")
	if err != nil {
		return nil, err
	}
	after, err := snapshot(w.scandir)
	if err != nil {
		return nil, err
	}
	if o.exit != 0 {
		w.warmup = fmt.Sprintf("warm-up boot pass exit %d: %s", o.exit, firstLine(o.stderr))
	}
	var drift, other []string
	for _, d := range diff(before, after) {
		if _, p, _ := strings.Cut(d, " "); strings.HasPrefix(p, "gateway-") {
			drift = append(drift, d)
		} else {
			other = append(other, d)
		}
	}
	if len(drift) > 0 {
		w.warmup = strings.TrimPrefix(w.warmup+fmt.Sprintf("; warm-up boot pass changed %d slot entries (e.g. %s): the bench rendering drifted from the controller's",
			len(drift), drift[0]), "; ")
	}
	if len(other) > 0 {
		vlogf("world %s: the warm-up boot pass also changed %q in the scandir", key, other)
	}
	if w.warmup != "" {
		logf("world %s: %s", key, w.warmup)
	}
	if n == b.sz.rssN {
		b.rssBoot = float64(o.maxRSS)
	}
	// The controller trusts a file's identity to prove it unchanged only once its last change is
	// older than safefs.RacyWindow; a real converged volume is that old. Let this one age too.
	time.Sleep(safefs.RacyWindow + time.Second)
	vlogf("world %s warm-up boot pass: %s, exit %d", key, o.wall.Round(time.Millisecond), o.exit)
	b.worlds[key] = w
	return w, nil
}

// withConfig returns a copy of w that runs with another config file.
func (b *bench) withConfig(w *world, name string, c controllerConfig) (*world, error) {
	p, err := writeConfig(w.dir, name, c)
	if err != nil {
		return nil, err
	}
	cp := *w
	cp.config = p
	return &cp, nil
}

// config is the base controller config of a world of n slots: the bench templates, a service
// limit that fits every slot and its logger, console logs at V(0).
func (b *bench) config(n int, resync time.Duration) controllerConfig {
	c := controllerConfig{ServicesMax: 2*n + 16, LogFormat: "json", Templates: benchTemplates()}
	if resync > 0 {
		c.ResyncPeriod = resync.String()
	}
	return c
}

func (b *bench) closeWorlds() {
	for _, w := range b.worlds {
		if w.release != nil {
			w.release()
		}
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func printHeader(w io.Writer, e *env, b *bench, took time.Duration) {
	mode := fmt.Sprintf("full, %d runs per row (%d for the cheap ones)", b.sz.runs, b.sz.cheapRuns)
	if b.smoke {
		mode = "smoke: every row once at tiny sizes, goals not judged"
	}
	fmt.Fprintf(w, "\n## profile-controller benchmarks (%s)\n\n", mode)
	fmt.Fprintf(w, "- machine: %s\n", machine())
	fmt.Fprintf(w, "- s6: %s, s6-svscan %s; python baseline: %s\n", e.s6Version(), e.svscanOpt, pythonVersion(e.python))
	fmt.Fprintf(w, "- scratch: %s; controller: %s; took %s\n\n", e.workFS, e.bin, took.Round(time.Second))
}

func printTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| row | goal | median | spread | result | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", esc(r.row), esc(r.goal), esc(r.median), esc(r.spread), r.verdict, esc(r.notes))
	}
}
