package main

// The rows that run on stub s6 binaries: the boot pass's own cost, the no-op pass, idle CPU,
// one event's CPU, gateway state writes and peak RSS. None of them may fork except the boot
// pass (one failing s6-svscanctl), and the stubs count every fork.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hermes/profile-controller/internal/benchvol"
)

// rowBoot: the boot pass onto an empty tmpfs scandir, as a whole process, against the Python
// baseline doing the seed's per-profile file work on the same volume, alternating which goes
// first. s6-svscanctl is a stub that fails at once, as it does at cont-init time before
// s6-svscan scans the dynamic scandir (the seed's own comment): so nothing waits for a
// supervisor, and the figure is the pass's own work.
func (b *bench) rowBoot() ([]result, error) {
	e, n := b.e, b.sz.bootN
	dir, err := e.dir("boot")
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "home")
	if _, err := benchvol.MakeHome(home, n-1, 0); err != nil {
		return nil, err
	}
	cfg, err := writeConfig(dir, "config.yaml", b.config(n, 0))
	if err != nil {
		return nil, err
	}
	script := filepath.Join(e.root, "hack", "bench", "register_baseline.py")
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var ctlWall, ctlCPU, pyWall, pyCPU, flWall, ratios, floorRatios []float64
	exits := map[int]int{}
	short := ""
	for i := range b.sz.cheapRuns {
		var c, p, f once
		for k := range 3 {
			sd := filepath.Join(dir, fmt.Sprintf("service-%d-%d", i, k))
			rt := filepath.Join(dir, fmt.Sprintf("run-%d-%d", i, k))
			if err := os.Mkdir(sd, 0o755); err != nil {
				return nil, err
			}
			switch (k + i) % 3 { // each goes first, second and third in turn
			case 0:
				w := &world{e: e, dir: dir, home: home, scandir: sd, runtime: rt, s6: e.stubFail, config: cfg}
				if c, err = w.runOnce("reconcile", "--once", "--boot"); err != nil {
					return nil, err
				}
				exits[c.exit]++
				if got := countSlots(sd); got != n && short == "" {
					short = fmt.Sprintf("; the controller left %d of %d slots (%s)", got, n, firstLine(c.stderr))
				}
			case 1:
				if p, err = runProcess([]string{e.python, script, "--hermes-home", home, "--scandir", sd}, 5*time.Minute); err != nil {
					return nil, err
				}
				if p.exit != 0 || countSlots(sd) != n {
					return nil, fmt.Errorf("baseline: exit %d, %d of %d slots: %s", p.exit, countSlots(sd), n, firstLine(p.stderr))
				}
			case 2:
				if f, err = runProcessEnv([]string{self}, []string{bootFloorEnv + "=" + home + ":" + sd}, 5*time.Minute); err != nil {
					return nil, err
				}
				if f.exit != 0 || countSlots(sd) != n {
					return nil, fmt.Errorf("boot floor: exit %d, %d of %d slots: %s", f.exit, countSlots(sd), n, firstLine(f.stderr))
				}
			}
			_ = os.RemoveAll(sd)
			_ = os.RemoveAll(rt)
		}
		ctlWall, ctlCPU = append(ctlWall, c.wall.Seconds()), append(ctlCPU, c.cpu.Seconds())
		pyWall, pyCPU = append(pyWall, p.wall.Seconds()), append(pyCPU, p.cpu.Seconds())
		flWall = append(flWall, f.wall.Seconds())
		ratios = append(ratios, p.wall.Seconds()/c.wall.Seconds())
		floorRatios = append(floorRatios, p.wall.Seconds()/f.wall.Seconds())
	}
	m := median(ratios)
	return []result{{
		row:     fmt.Sprintf("boot pass's own cost, %d slots onto tmpfs, whole process, vs Python baseline", n),
		goal:    "≥ 5× faster than the baseline",
		median:  fmt.Sprintf("%.2f× (baseline wall / controller wall)", m),
		spread:  fmtSpread(spreadPct(ratios)),
		verdict: b.judge(m >= 5),
		notes: fmt.Sprintf("controller %s wall, %s CPU; baseline %s wall, %s CPU; %d runs each, in rotating order; controller exit codes %v (s6-svscanctl is a stub that fails at once)%s",
			fmtSec(median(ctlWall)), fmtSec(median(ctlCPU)), fmtSec(median(pyWall)), fmtSec(median(pyCPU)), len(ratios), fmtExits(exits), short),
	}, {
		row:     fmt.Sprintf("boot floor: the baseline's file work in Go with raw syscalls, %d slots (process, reference)", n),
		goal:    "none (what the row above can approach)",
		median:  fmt.Sprintf("%.2f× (baseline wall / floor wall)", median(floorRatios)),
		spread:  fmtSpread(spreadPct(floorRatios)),
		verdict: "info",
		notes: fmt.Sprintf("floor %s wall, measured in the same rotation: no staging, rename, fsync, memory or checks beyond O_NOFOLLOW; the controller costs %.2f× the floor",
			fmtSec(median(flWall)), median(ctlWall)/median(flWall)),
	}}, nil
}

func fmtExits(m map[int]int) string {
	keys := slices.Sorted(maps.Keys(m))
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d×%d", m[k], k)
	}
	return "{" + s + "}"
}

// noopRun is what a series of no-op passes did.
type noopRun struct {
	walls, cpus, rss []float64
	exits            map[int]int
	forks            int
	forkEx, writes   []string
	runtimeWrites    []string
	stderr           string
	floorWalls       []float64 // the no-op floor's, one run after each of the controller's
	floorCPUs        []float64
}

// noopSeries runs `reconcile --once` cheapRuns times on w and checks forks and writes.
func (b *bench) noopSeries(w *world) (noopRun, error) {
	r := noopRun{exits: map[int]int{}}
	roots := []string{w.scandir, w.home, w.runtime}
	before, err := snapshots(roots...)
	if err != nil {
		return r, err
	}
	mark := b.e.forkMark()
	for range b.sz.cheapRuns {
		o, err := w.runOnce("reconcile", "--once")
		if err != nil {
			return r, err
		}
		r.walls, r.cpus, r.rss = append(r.walls, o.wall.Seconds()), append(r.cpus, o.cpu.Seconds()), append(r.rss, float64(o.maxRSS))
		r.exits[o.exit]++
		if o.exit != 0 && r.stderr == "" {
			r.stderr = firstLine(o.stderr)
		}
		f, err := w.runNoopFloor()
		if err != nil {
			return r, err
		}
		r.floorWalls, r.floorCPUs = append(r.floorWalls, f.wall.Seconds()), append(r.floorCPUs, f.cpu.Seconds())
	}
	after, err := snapshots(roots...)
	if err != nil {
		return r, err
	}
	r.forks, r.forkEx = b.e.forksSince(mark)
	all := diffs(roots, before, after)
	for _, d := range all {
		if strings.HasPrefix(d, filepath.Base(w.runtime)+": ") {
			r.runtimeWrites = append(r.runtimeWrites, d)
		} else {
			r.writes = append(r.writes, d)
		}
	}
	return r, nil
}

// rowNoop: `reconcile --once` on a converged, supervised system, as a whole process. The cost
// per profile is (wall at N − wall at N=1) / N: the process start-up is measured on a volume
// holding only the root profile and taken off.
func (b *bench) rowNoop() ([]result, error) {
	w1, err := b.stubWorld(1)
	if err != nil {
		return nil, err
	}
	base, err := b.noopSeries(w1)
	if err != nil {
		return nil, err
	}
	fixed, floorFixed := median(base.walls), median(base.floorWalls)
	var out []result
	per, floorPer := map[int][]float64{}, map[int][]float64{}
	forks, writes := base.forks, slices.Clone(base.writes)
	var forkEx, rtWrites []string
	forkEx = append(forkEx, base.forkEx...)
	for _, n := range b.sz.noopN {
		w, err := b.stubWorld(n)
		if err != nil {
			return nil, err
		}
		r, err := b.noopSeries(w)
		if err != nil {
			return nil, err
		}
		for i, wall := range r.walls {
			per[n] = append(per[n], (wall-fixed)/float64(n))
			floorPer[n] = append(floorPer[n], (r.floorWalls[i]-floorFixed)/float64(n))
		}
		if n == b.sz.rssN {
			b.rssReconcile = append(b.rssReconcile, r.rss...)
		}
		forks += r.forks
		forkEx = append(forkEx, r.forkEx...)
		writes = append(writes, r.writes...)
		rtWrites = append(rtWrites, r.runtimeWrites...)
		m := median(per[n])
		notes := fmt.Sprintf("whole process %s wall, %s CPU; start-up (N=1) %s; exit codes %v", fmtSec(median(r.walls)),
			fmtSec(median(r.cpus)), fmtSec(fixed), fmtExits(r.exits))
		if r.stderr != "" {
			notes += ": " + r.stderr
		}
		if w.warmup != "" {
			notes += "; " + w.warmup
		}
		out = append(out, result{
			row:  fmt.Sprintf("no-op `reconcile --once`, per profile, N=%d (process)", n),
			goal: "≤ 25 µs", median: fmtSec(m), spread: fmtSpread(spreadPct(per[n])),
			verdict: b.judge(m <= 25e-6 && len(r.exits) == 1 && r.exits[0] > 0), notes: notes,
		}, result{
			row:  fmt.Sprintf("no-op floor: the same 22 syscalls a profile in Go and nothing else, N=%d (process, reference)", n),
			goal: "none (what the row above can approach)", median: fmtSec(median(floorPer[n])), spread: fmtSpread(spreadPct(floorPer[n])),
			verdict: "info",
			notes: fmt.Sprintf("whole process %s wall, %s CPU; start-up (N=1) %s; run after each controller run; the controller costs %.2f× the floor a profile",
				fmtSec(median(r.floorWalls)), fmtSec(median(r.floorCPUs)), fmtSec(floorFixed), m/median(floorPer[n])),
		})
	}
	lo, hi := b.sz.noopN[0], b.sz.noopN[1]
	g := median(per[hi]) / median(per[lo])
	out = append(out, result{
		row:  fmt.Sprintf("no-op growth per profile, %d → %d (process)", lo, hi),
		goal: "≤ 1.3×", median: fmt.Sprintf("%.2f×", g), verdict: b.judge(g <= 1.3),
	})
	notes := "s6 stubs counted every fork; scandir and volume compared by inode, mode, size, mtime, ctime"
	if len(forkEx) > 0 {
		notes += fmt.Sprintf("; forks e.g. %q", forkEx)
	}
	if len(writes) > 0 {
		notes += fmt.Sprintf("; writes e.g. %q", writes[:min(3, len(writes))])
	}
	if len(rtWrites) > 0 {
		notes += fmt.Sprintf("; runtime dir (not judged): %q", rtWrites[:min(3, len(rtWrites))])
	}
	out = append(out, result{
		row:    fmt.Sprintf("no-op `reconcile --once`: forks and writes (N=1, %d, %d; %d runs each)", lo, hi, b.sz.cheapRuns),
		goal:   "0 forks, 0 writes",
		median: fmt.Sprintf("%d forks, %d writes", forks, len(writes)), verdict: b.judge(forks == 0 && len(writes) == 0),
		notes: notes,
	})
	out = append(out, b.goBenchRows("PassNoop", "sec/profile", "no-op pass per profile", "≤ 25 µs", 25e-6)...)
	return out, nil
}

// goBenchRows turns BenchmarkX/profiles=N figures from benchstat into rows: one per size of
// noopN, and their growth. Nothing when the benchmark is absent.
func (b *bench) goBenchRows(bench, unit, what, goal string, limit float64) []result {
	if b.gb == nil {
		return nil
	}
	var out []result
	var vals []float64
	for _, n := range []int{1000, 10000} {
		v, ok := b.gb.get(fmt.Sprintf("%s/profiles=%d", bench, n), unit)
		if !ok {
			continue
		}
		vals = append(vals, v.center)
		out = append(out, result{
			row:  fmt.Sprintf("%s, N=%d (Benchmark%s, in-process, benchstat)", what, n, bench),
			goal: goal, median: fmtSec(v.center), spread: v.ci, verdict: b.judge(v.center <= limit),
			notes: unit + ", median and 95% CI from benchstat",
		})
	}
	if len(vals) == 2 {
		g := vals[1] / vals[0]
		out = append(out, result{
			row:  fmt.Sprintf("%s growth 1000 → 10000 (Benchmark%s)", what, bench),
			goal: "≤ 1.3×", median: fmt.Sprintf("%.2f×", g), verdict: b.judge(g <= 1.3),
		})
	}
	return out
}

// rowIdle: `run` on a converged system, CPU over windows of two resync periods each.
func (b *bench) rowIdle() ([]result, error) {
	n, resync := b.sz.idleN, b.sz.idleResync
	w, err := b.stubWorld(n)
	if err != nil {
		return nil, err
	}
	if w, err = b.withConfig(w, "config-idle.yaml", b.config(n, resync)); err != nil {
		return nil, err
	}
	d, err := w.startRun("idle")
	if err != nil {
		return nil, err
	}
	defer d.stop()
	quiet, err := d.waitQuiet(b.sz.quietWait)
	if err != nil {
		return nil, err
	}
	roots := []string{w.scandir, w.home}
	before, err := snapshots(roots...)
	if err != nil {
		return nil, err
	}
	mark := b.e.forkMark()
	window := 2 * resync
	fracs, err := cpuFractions(d, b.sz.runs, func() error { time.Sleep(window); return nil })
	if err != nil {
		return nil, err
	}
	after, err := snapshots(roots...)
	if err != nil {
		return nil, err
	}
	forks, forkEx := b.e.forksSince(mark)
	writes := diffs(roots, before, after)
	hwm := d.stop()
	if n == b.sz.rssN {
		b.rssRun = append(b.rssRun, float64(hwm))
	}
	m := median(fracs)
	notes := fmt.Sprintf("%d windows of %s (2 resyncs each) after start-up; forks %d, scandir/volume writes %d", len(fracs), window, forks, len(writes))
	if !quiet {
		notes += fmt.Sprintf("; the controller never went quiet within %s of starting", b.sz.quietWait)
	}
	if forks > 0 {
		notes += fmt.Sprintf(" (e.g. %q)", forkEx)
	}
	return []result{{
		row:  fmt.Sprintf("`run` idle CPU, %d converged profiles, resync %s", n, resync),
		goal: "≤ 2 % of a core", median: fmtPct(m), spread: fmtSpread(spreadPct(fracs)),
		verdict: b.judge(m <= 0.02), notes: notes,
	}}, nil
}

// gatewayPersist rewrites a profile's gateway_state.json as the gateway does (read-merge-write,
// temp file in the same dir, fsync, rename), with the same gateway_state and a new pid and
// updated_at: an event for the controller that changes no intent.
func gatewayPersist(dir string, seq int) error {
	path := filepath.Join(dir, "gateway_state.json")
	rec := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &rec)
		if rec == nil {
			rec = map[string]any{}
		}
	}
	rec["gateway_state"] = "running"
	rec["pid"] = 100000 + seq
	rec["updated_at"] = time.Now().UTC().Format(time.RFC3339Nano)
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".gateway_state_"+strconv.Itoa(seq)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// rowEvent: the CPU one profile's event costs `run`, from many state rewrites that change no
// intent, with the resync pushed out of the way (1 h) and the idle rate taken off. One `run` per
// size; each run is a batch of events after the controller went quiet.
func (b *bench) rowEvent() ([]result, error) {
	var out []result
	medians := map[int]float64{}
	for _, n := range b.sz.eventN {
		w, err := b.stubWorld(n)
		if err != nil {
			return nil, err
		}
		if w, err = b.withConfig(w, "config-event.yaml", b.config(n, time.Hour)); err != nil {
			return nil, err
		}
		per, floor, forks, forkEx, quiet, err := b.eventRuns(w, n)
		if err != nil {
			return nil, err
		}
		medians[n] = median(per)
		notes := fmt.Sprintf("%d runs of %d state rewrites (same intent) at %d/s, CPU from /proc/<pid>/stat, idle rate subtracted; forks %d",
			len(per), b.sz.events, b.sz.eventRate, forks)
		if forks > 0 {
			notes += fmt.Sprintf(" (e.g. %q)", forkEx[:min(3, len(forkEx))])
		}
		if !quiet {
			notes += fmt.Sprintf("; the controller never went quiet within %s of starting", b.sz.quietWait)
		}
		out = append(out, result{
			row:  fmt.Sprintf("one profile's event, whole reconcile, CPU, N=%d (process)", n),
			goal: "≤ 100 µs CPU", median: fmtSec(medians[n]), spread: fmtSpread(spreadPct(per)),
			verdict: b.judge(medians[n] <= 100e-6 && forks == 0), notes: notes,
		}, result{
			row:  fmt.Sprintf("event floor: a bare Go watcher doing the least safe read of the same rewrites, N=%d (process, reference)", n),
			goal: "none (what the row above can approach)", median: fmtSec(median(floor)), spread: fmtSpread(spreadPct(floor)),
			verdict: "info", notes: floorNote(median(floor), medians[n]),
		})
	}
	lo, hi := b.sz.eventN[0], b.sz.eventN[1]
	g := medians[hi] / medians[lo]
	gs := fmt.Sprintf("%.2f×", g)
	if medians[lo] <= 0 {
		gs = "n/a (below the 10 ms tick)"
	}
	out = append(out, result{
		row:  fmt.Sprintf("one profile's event CPU, N=%d vs N=%d (process)", hi, lo),
		goal: "independent of N (≤ 1.3×)", median: gs, verdict: b.judge(medians[lo] > 0 && g <= 1.3),
	})
	out = append(out, b.goBenchRows("ReconcileKey", "sec/op", "one profile's reconcile, wall", "≤ 100 µs", 100e-6)...)
	return out, nil
}

// eventRuns starts `run`, waits for it to finish its start-up, then measures the CPU per event
// (sendEvents); then the same for the event floor process (floor.go), on the same volume.
func (b *bench) eventRuns(w *world, n int) (per, floor []float64, forks int, forkEx []string, quiet bool, err error) {
	d, err := w.startRun("event")
	if err != nil {
		return nil, nil, 0, nil, false, err
	}
	mark := b.e.forkMark()
	quiet, per, err = b.sendEvents(w, d)
	hwm := d.stop()
	if n == b.sz.rssN {
		b.rssRun = append(b.rssRun, float64(hwm))
	}
	if err != nil {
		return nil, nil, 0, nil, false, err
	}
	forks, forkEx = b.e.forksSince(mark)
	f, err := w.startFloor()
	if err != nil {
		return nil, nil, 0, nil, false, err
	}
	defer f.stop()
	if _, floor, err = b.sendEvents(w, f); err != nil {
		return nil, nil, 0, nil, false, fmt.Errorf("event floor: %w", err)
	}
	return per, floor, forks, forkEx, quiet, nil
}

// sendEvents waits for d to go quiet, then per run measures its idle rate, sends the events and
// returns the CPU per event.
func (b *bench) sendEvents(w *world, d *daemon) (quiet bool, per []float64, err error) {
	if quiet, err = d.waitQuiet(b.sz.quietWait); err != nil {
		return false, nil, err
	}
	seq := 0
	for range b.sz.runs {
		c0, err := d.cpu()
		if err != nil {
			return false, nil, err
		}
		t0 := time.Now()
		time.Sleep(2 * time.Second)
		c1, err := d.cpu()
		if err != nil {
			return false, nil, err
		}
		idle := (c1 - c0).Seconds() / time.Since(t0).Seconds()
		t1 := time.Now()
		tick := time.NewTicker(time.Second / time.Duration(b.sz.eventRate))
		for range b.sz.events {
			<-tick.C
			name := w.names[seq%len(w.names)]
			seq++
			if err := gatewayPersist(w.profileDir(name), seq); err != nil {
				tick.Stop()
				return false, nil, err
			}
		}
		tick.Stop()
		if _, err := d.waitQuiet(10 * time.Second); err != nil {
			return false, nil, err
		}
		c2, err := d.cpu()
		if err != nil {
			return false, nil, err
		}
		spent := (c2 - c1).Seconds() - idle*time.Since(t1).Seconds()
		per = append(per, spent/float64(b.sz.events))
	}
	return quiet, per, nil
}

// rowWrites: `run` on a converged system of writesN profiles while `writers` gateways each
// rewrite their state writeRate times a second (same intent), default resync.
func (b *bench) rowWrites() ([]result, error) {
	n := b.sz.writesN
	w, err := b.stubWorld(n)
	if err != nil {
		return nil, err
	}
	if w, err = b.withConfig(w, "config-writes.yaml", b.config(n, b.sz.writesResync)); err != nil {
		return nil, err
	}
	d, err := w.startRun("writes")
	if err != nil {
		return nil, err
	}
	defer d.stop()
	quiet, err := d.waitQuiet(b.sz.quietWait)
	if err != nil {
		return nil, err
	}
	before, err := snapshot(w.scandir)
	if err != nil {
		return nil, err
	}
	mark := b.e.forkMark()
	writes := 0
	fracs, err := cpuFractions(d, b.sz.runs, func() error {
		k, err := b.gateways(w, b.sz.writesWindow)
		writes += k
		return err
	})
	if err != nil {
		return nil, err
	}
	after, err := snapshot(w.scandir)
	if err != nil {
		return nil, err
	}
	forks, forkEx := b.e.forksSince(mark)
	changes := diff(before, after)
	d.stop()
	floor, err := b.writesFloor(w)
	if err != nil {
		return nil, fmt.Errorf("event floor under the writers: %w", err)
	}
	m := median(fracs)
	notes := fmt.Sprintf("%d windows of %s, %d state writes in all, resync %s", len(fracs), b.sz.writesWindow, writes, b.sz.writesResync)
	if !quiet {
		notes += "; the controller never went quiet after start-up"
	}
	actNotes := "actions = s6 forks (stubs) and scandir changes"
	if forks > 0 {
		actNotes += fmt.Sprintf("; forks e.g. %q", forkEx)
	}
	if len(changes) > 0 {
		actNotes += fmt.Sprintf("; scandir changes e.g. %q", changes[:min(3, len(changes))])
	}
	row := fmt.Sprintf("%d gateways × %d state writes/s, %d profiles", b.sz.writers, b.sz.writeRate, n)
	return []result{
		{row: row + ": CPU", goal: "≤ 3 % of a core", median: fmtPct(m), spread: fmtSpread(spreadPct(fracs)),
			verdict: b.judge(m <= 0.03), notes: notes},
		{row: row + ": the event floor under the same writers (process, reference)", goal: "none (what the row above can approach)",
			median: fmtPct(median(floor)), spread: fmtSpread(spreadPct(floor)), verdict: "info",
			notes: fmt.Sprintf("the bare Go watcher of the event row, started after `run` stopped, %d windows of %s; the controller costs %.1f× the floor",
				len(floor), b.sz.writesWindow, m/median(floor))},
		{row: row + ": forks and actions", goal: "0 forks, no actions",
			median:  fmt.Sprintf("%d forks, %d scandir changes", forks, len(changes)),
			verdict: b.judge(forks == 0 && len(changes) == 0), notes: actNotes},
	}, nil
}

// writesFloor runs the event floor on w under the writes row's gateways and returns its CPU
// fraction per window.
func (b *bench) writesFloor(w *world) ([]float64, error) {
	f, err := w.startFloor()
	if err != nil {
		return nil, err
	}
	defer f.stop()
	if _, err := f.waitQuiet(b.sz.quietWait); err != nil {
		return nil, err
	}
	return cpuFractions(f, b.sz.runs, func() error {
		_, err := b.gateways(w, b.sz.writesWindow)
		return err
	})
}

// cpuFractions is d's CPU over elapsed time in each of runs windows, a window being one call
// of during.
func cpuFractions(d *daemon, runs int, during func() error) ([]float64, error) {
	var fracs []float64
	for range runs {
		c0, err := d.cpu()
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := during(); err != nil {
			return nil, err
		}
		c1, err := d.cpu()
		if err != nil {
			return nil, err
		}
		fracs = append(fracs, (c1-c0).Seconds()/time.Since(t0).Seconds())
	}
	return fracs, nil
}

// gateways runs b.sz.writers fake gateways on the first named profiles of w for window, each
// persisting its state writeRate times a second, and returns how many writes they made.
func (b *bench) gateways(w *world, window time.Duration) (int, error) {
	stop := make(chan struct{})
	period := time.Second / time.Duration(b.sz.writeRate)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	var firstErr error
	for g := range b.sz.writers {
		dir := w.profileDir(w.names[1+g%(len(w.names)-1)])
		wg.Go(func() {
			time.Sleep(time.Duration(g) * period / time.Duration(b.sz.writers))
			tick := time.NewTicker(period)
			defer tick.Stop()
			k := 0
			for {
				select {
				case <-stop:
					mu.Lock()
					total += k
					mu.Unlock()
					return
				case <-tick.C:
					if err := gatewayPersist(dir, g*1_000_000+k); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					k++
				}
			}
		})
	}
	time.Sleep(window)
	close(stop)
	wg.Wait()
	return total, firstErr
}

// rowRSS: peak RSS of the processes that ran over rssN profiles in the other rows (measured
// here when those rows were not run).
func (b *bench) rowRSS() ([]result, error) {
	n := b.sz.rssN
	if len(b.rssReconcile) == 0 || len(b.rssRun) == 0 {
		w, err := b.stubWorld(n)
		if err != nil {
			return nil, err
		}
		if len(b.rssReconcile) == 0 {
			r, err := b.noopSeries(w)
			if err != nil {
				return nil, err
			}
			b.rssReconcile = r.rss
		}
		if len(b.rssRun) == 0 {
			d, err := w.startRun("rss")
			if err != nil {
				return nil, err
			}
			if _, err := d.waitQuiet(b.sz.quietWait); err != nil {
				d.stop()
				return nil, err
			}
			b.rssRun = append(b.rssRun, float64(d.stop()))
		}
	}
	const limit = 30 * 1024
	return []result{
		{row: fmt.Sprintf("peak RSS over %d profiles, `run`", n), goal: "≤ 30 MiB",
			median: fmtKiB(median(b.rssRun)), spread: fmtSpread(spreadPct(b.rssRun)),
			verdict: b.judge(maxOf(b.rssRun) <= limit),
			notes:   fmt.Sprintf("VmHWM just before SIGTERM; max %s over %d processes", fmtKiB(maxOf(b.rssRun)), len(b.rssRun))},
		{row: fmt.Sprintf("peak RSS over %d profiles, `reconcile --once`", n), goal: "≤ 30 MiB",
			median: fmtKiB(median(b.rssReconcile)), spread: fmtSpread(spreadPct(b.rssReconcile)),
			verdict: b.judge(maxOf(append(slices.Clone(b.rssReconcile), b.rssBoot)) <= limit),
			notes: fmt.Sprintf("ru_maxrss (= VmHWM at exit) of the no-op passes, max %s over %d; the boot pass: %s",
				fmtKiB(maxOf(b.rssReconcile)), len(b.rssReconcile), fmtKiB(b.rssBoot))},
	}, nil
}

// floorNote compares the event floor with the controller's figure.
func floorNote(floor, controller float64) string {
	note := "same volume and rewrites, measured right after `run` stopped"
	if floor > 0 && controller > 0 {
		note += fmt.Sprintf("; the controller costs %.1f× the floor", controller/floor)
	}
	return note
}
