package main

// The rows that run on a real s6-svscan: boot to converged, edit latency (also during a
// 10,000-key resync), 20,000 junk entries, and a hung gateway of a deleted profile.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hermes/profile-controller/internal/benchvol"
)

// realWorld is a volume of named+1 profiles (and junk dirs) whose slots the controller's own
// boot pass created on a real s6-svscan, every gateway up. why is set (and err nil) when the
// controller's boot pass failed or did not bring every gateway up: the caller reports the row as
// not measurable.
type realWorld struct {
	*world
	sv *svscan
}

func (b *bench) newRealWorld(tag string, named, junk int, c controllerConfig, prep func(*world) error) (rw *realWorld, why string, err error) {
	e := b.e
	dir, err := e.dir(tag)
	if err != nil {
		return nil, "", err
	}
	w := &world{e: e, dir: dir, home: filepath.Join(dir, "home"), scandir: filepath.Join(dir, "service"),
		runtime: filepath.Join(dir, "run"), s6: e.s6Bin}
	if w.names, err = benchvol.MakeHome(w.home, named, junk); err != nil {
		return nil, "", err
	}
	if prep != nil {
		if err := prep(w); err != nil {
			return nil, "", err
		}
	}
	if w.config, err = writeConfig(dir, "config.yaml", c); err != nil {
		return nil, "", err
	}
	if err := os.Mkdir(w.scandir, 0o755); err != nil {
		return nil, "", err
	}
	sv, err := e.startSvscan(w.scandir, c.ServicesMax)
	if err != nil {
		return nil, "", err
	}
	rw = &realWorld{world: w, sv: sv}
	o, err := w.runOnce("reconcile", "--once", "--boot")
	if err != nil {
		rw.close(nil)
		return nil, "", err
	}
	if o.exit != 0 {
		rw.close(nil)
		return nil, fmt.Sprintf("the boot pass on real s6 exited %d: %s", o.exit, firstLine(o.stderr)), nil
	}
	if _, err := waitAllUp(w.scandir, w.names, time.Now().Add(2*time.Minute)); err != nil {
		rw.close(nil)
		return nil, "after the boot pass, " + err.Error(), nil
	}
	vlogf("%s: boot pass on real s6 took %s", tag, o.wall.Round(time.Millisecond))
	return rw, "", nil
}

// close stops the daemon (when given) and s6, then frees the world's tmpfs space.
func (rw *realWorld) close(d *daemon) {
	if d != nil {
		d.stop()
	}
	rw.sv.stop()
	_ = os.RemoveAll(rw.dir)
}

// rowConverge: from an empty scandir on a running s6-svscan to every gateway up, controller
// (`reconcile --once --boot`, exit status judged) against the baseline (the Python seed's file
// work, then one `s6-svscanctl -a`), alternating which goes first. Each run gets a fresh
// s6-svscan and scandir.
func (b *bench) rowConverge() ([]result, error) {
	e := b.e
	var out []result
	for _, n := range b.sz.convergeN {
		dir, err := e.dir(fmt.Sprintf("converge-%d", n))
		if err != nil {
			return nil, err
		}
		home := filepath.Join(dir, "home")
		names, err := benchvol.MakeHome(home, n-1, 0)
		if err != nil {
			return nil, err
		}
		c := b.config(n, 0)
		cfg, err := writeConfig(dir, "config.yaml", c)
		if err != nil {
			return nil, err
		}
		runFile, logFile := filepath.Join(dir, "baseline-run"), filepath.Join(dir, "baseline-log-run")
		if err := os.WriteFile(runFile, []byte(baselineRunScript), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(logFile, []byte(baselineLogRunScript), 0o644); err != nil {
			return nil, err
		}
		script := filepath.Join(e.root, "hack", "bench", "register_baseline.py")
		var ctl, ctlCPU, base, ratios []float64
		exits := map[int]int{}
		failed := ""
		for i := range b.sz.runs {
			var tc, tb float64
			for k := range 2 {
				sd := filepath.Join(dir, fmt.Sprintf("service-%d-%d", i, k))
				rt := filepath.Join(dir, fmt.Sprintf("run-%d-%d", i, k))
				if err := os.Mkdir(sd, 0o755); err != nil {
					return nil, err
				}
				sv, err := e.startSvscan(sd, c.ServicesMax)
				if err != nil {
					return nil, err
				}
				isCtl := (k == 0) == (i%2 == 0)
				t0 := time.Now()
				if isCtl {
					w := &world{e: e, dir: dir, home: home, scandir: sd, runtime: rt, s6: e.s6Bin, config: cfg}
					o, err := w.runOnce("reconcile", "--once", "--boot")
					if err != nil {
						sv.stop()
						return nil, err
					}
					exits[o.exit]++
					ctlCPU = append(ctlCPU, o.cpu.Seconds())
					if o.exit != 0 && failed == "" {
						failed = fmt.Sprintf("exit %d: %s", o.exit, firstLine(o.stderr))
					}
				} else {
					p, err := runProcess([]string{e.python, script, "--hermes-home", home, "--scandir", sd,
						"--run-file", runFile, "--log-run-file", logFile}, 5*time.Minute)
					if err == nil && p.exit != 0 {
						err = fmt.Errorf("baseline exit %d: %s", p.exit, firstLine(p.stderr))
					}
					if err == nil {
						var q once
						q, err = runProcess([]string{filepath.Join(e.s6Bin, "s6-svscanctl"), "-a", sd}, time.Minute)
						if err == nil && q.exit != 0 {
							err = fmt.Errorf("s6-svscanctl -a exit %d: %s", q.exit, firstLine(q.stderr))
						}
					}
					if err != nil {
						sv.stop()
						return nil, err
					}
				}
				up, err := waitAllUp(sd, names, time.Now().Add(2*time.Minute))
				total := up.Sub(t0).Seconds()
				if err != nil {
					if !isCtl {
						sv.stop()
						return nil, fmt.Errorf("baseline did not converge: %w", err)
					}
					total = math.Inf(1)
					if failed == "" {
						failed = "not converged: " + err.Error()
					}
				}
				if isCtl {
					tc = total
				} else {
					tb = total
				}
				sv.stop()
				_ = os.RemoveAll(sd)
				_ = os.RemoveAll(rt)
			}
			ctl, base, ratios = append(ctl, tc), append(base, tb), append(ratios, tc/tb)
		}
		m := median(ratios)
		ok := m <= 1 && len(exits) == 1 && exits[0] > 0 && failed == ""
		notes := fmt.Sprintf("controller %s (its own CPU %s), baseline (Python + one s6-svscanctl -a) %s, from the start of the process to every gateway up; controller exit codes %v",
			fmtSec(median(ctl)), fmtSec(median(ctlCPU)), fmtSec(median(base)), fmtExits(exits))
		if failed != "" {
			notes += "; " + failed
		}
		out = append(out, result{
			row:    fmt.Sprintf("boot to converged on a real s6-svscan, %d profiles", n),
			goal:   "exit 0; no slower than the baseline + one `s6-svscanctl -a`",
			median: fmt.Sprintf("%.2f× the baseline's time", m), spread: fmtSpread(spreadPct(ratios)),
			verdict: b.judge(ok), notes: notes,
		})
		_ = os.RemoveAll(dir)
	}
	return out, nil
}

// rowLatency: edit → s6 want change on latencyN real profiles, then the same on a volume whose
// resync covers resyncKeys keys (the profiles plus junk dirs), each edit fired while the
// controller is busy with a resync.
func (b *bench) rowLatency() ([]result, error) {
	n := b.sz.latencyN
	var out []result
	title := fmt.Sprintf("edit → s6 want change, %d profiles, real s6", n)
	rs, err := b.latencyRows(title, "latency", n-1, 0, b.config(n, 0), false, b.sz.latencyEdits)
	if err != nil {
		return nil, err
	}
	out = append(out, rs...)
	title = fmt.Sprintf("edit → s6 want change, %d profiles, real s6, while a %d-key resync runs", n, b.sz.resyncKeys)
	rs, err = b.latencyRows(title, "latency-resync", n-1, b.sz.resyncKeys-n, b.config(n, b.sz.resyncPeriod), true, b.sz.resyncEdits)
	if err != nil {
		return nil, err
	}
	return append(out, rs...), nil
}

func (b *bench) latencyRows(title, tag string, named, junk int, c controllerConfig, duringResync bool, edits int) ([]result, error) {
	rw, why, err := b.newRealWorld(tag, named, junk, c, nil)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return []result{b.unmeasurable(title+", p50", "≤ 20 ms", why), b.unmeasurable(title+", p99", "≤ 100 ms", why)}, nil
	}
	d, err := rw.startRun(tag)
	if err != nil {
		rw.close(nil)
		return nil, err
	}
	defer rw.close(d)
	quietLimit := b.sz.quietWait
	if duringResync {
		quietLimit = min(quietLimit, 10*time.Second) // with a 1 s resync it may never be quiet
	}
	quiet, err := d.waitQuiet(quietLimit)
	if err != nil {
		return nil, err
	}
	const timeout = 5 * time.Second
	ed := newEditor(rw.world, uint64(len(tag)), timeout)
	var p50s, p99s, all []float64
	missed, busy, fired, cut := 0, 0, 0, 0
	for range b.sz.runs {
		var l latencies
		for k := range edits {
			if l.missed >= 3 && l.missed == len(l.samples) {
				cut += edits - k // three edits in a row not applied: the rest would only time out too
				break
			}
			if duringResync {
				ok, err := waitBusy(d, 3*b.sz.resyncPeriod+time.Second)
				if err != nil {
					return nil, err
				}
				fired++
				if ok {
					busy++
				}
			}
			dur, err := ed.flip(ed.pick(rw.names))
			if err := l.add(dur, err); err != nil {
				return nil, err
			}
			ed.gap(20*time.Millisecond, 50*time.Millisecond)
		}
		p50s, p99s = append(p50s, percentile(l.samples, 50)), append(p99s, percentile(l.samples, 99))
		all = append(all, l.samples...)
		missed += l.missed
	}
	if done, how := d.exited(); done {
		return nil, fmt.Errorf("the controller exited during the row: %s (log %s)", how, d.logf)
	}
	notes := fmt.Sprintf("%d edits per run (desired_state flips, temp + rename), timed to the supervise/status rename (inotify); max %s; %d not seen within %s",
		edits, fmtLat(maxOf(all), timeout), missed, timeout)
	if cut > 0 {
		notes += fmt.Sprintf(" (%d more edits skipped after 3 timeouts in a row)", cut)
	}
	if duringResync {
		notes += fmt.Sprintf("; resync every %s over %d keys (%d profiles + %d junk dirs); %d of %d edits fired while the controller was busy",
			b.sz.resyncPeriod, named+1+junk, named+1, junk, busy, fired)
	}
	if !quiet {
		notes += "; the controller never went quiet after start-up"
	}
	m50, m99 := median(p50s), median(p99s)
	return []result{
		{row: title + ", p50", goal: "≤ 20 ms", median: fmtLat(m50, timeout), spread: fmtSpread(spreadPct(p50s)), verdict: b.judge(m50 <= 0.020 && missed == 0), notes: notes},
		{row: title + ", p99", goal: "≤ 100 ms", median: fmtLat(m99, timeout), spread: fmtSpread(spreadPct(p99s)), verdict: b.judge(m99 <= 0.100 && missed == 0)},
	}, nil
}

// waitBusy waits until the daemon spends at least half a core over 10 ms (schedstat, ns
// precision), or until limit passes; it reports which.
func waitBusy(d *daemon, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	prev, err := schedRuntime(d.pid)
	if err != nil {
		return false, err
	}
	prevT := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		cur, err := schedRuntime(d.pid)
		if err != nil {
			return false, err
		}
		now := time.Now()
		if float64(cur-prev) >= 0.5*float64(now.Sub(prevT)) {
			return true, nil
		}
		prev, prevT = cur, now
	}
	return false, nil
}

// rowJunk: edits of real profiles on a volume whose profiles/ also holds `junk` directories
// without SOUL.md, over several resyncs; and the size of the controller's *.json files in its
// runtime dir.
func (b *bench) rowJunk() ([]result, error) {
	n, junk := b.sz.junkProfiles, b.sz.junk
	title := fmt.Sprintf("%d junk entries in profiles/ (%d real profiles, real s6)", junk, n)
	latTitle := title + ": a real profile's edit applied within"
	memTitle := title + ": the controller's memory (runtime dir)"
	rw, why, err := b.newRealWorld("junk", n-1, junk, b.config(n, b.sz.junkResync), nil)
	if err != nil {
		return nil, err
	}
	if why != "" {
		return []result{b.unmeasurable(latTitle, "≤ 100 ms", why), b.unmeasurable(memTitle, "≤ 64 KiB", why)}, nil
	}
	d, err := rw.startRun("junk")
	if err != nil {
		rw.close(nil)
		return nil, err
	}
	defer rw.close(d)
	quiet, err := d.waitQuiet(b.sz.quietWait)
	if err != nil {
		return nil, err
	}
	const timeout = 15 * time.Second // past one resync period: an edit the resync applies is still timed
	ed := newEditor(rw.world, 3, timeout)
	var maxs, all []float64
	missed := 0
	var biggest usage
	sample := func() {
		if u := dirUsage(rw.runtime); u.bytes > biggest.bytes {
			biggest = u
		}
	}
	for range b.sz.runs {
		var l latencies
		t0 := time.Now()
		for time.Since(t0) < b.sz.junkWindow {
			dur, err := ed.flip(ed.pick(rw.names))
			if err := l.add(dur, err); err != nil {
				return nil, err
			}
			sample()
			ed.gap(100*time.Millisecond, 500*time.Millisecond)
		}
		maxs = append(maxs, maxOf(l.samples))
		all = append(all, l.samples...)
		missed += l.missed
	}
	sample()
	notes := fmt.Sprintf("edits for %s per run (resync %s), worst per run; over all %d edits p50 %s, p99 %s; %d not seen within %s",
		b.sz.junkWindow, b.sz.junkResync, len(all), fmtLat(percentile(all, 50), timeout), fmtLat(percentile(all, 99), timeout), missed, timeout)
	if !quiet {
		notes += "; the controller never went quiet after start-up"
	}
	m := median(maxs)
	memNote := fmt.Sprintf("all files below the runtime dir, sampled after every edit: at most %d files, the largest %s (%s)",
		biggest.files, biggest.largest.name, fmtKiB(float64(biggest.largest.size)/1024))
	return []result{
		{row: latTitle, goal: "≤ 100 ms", median: fmtLat(m, timeout), spread: fmtSpread(spreadPct(maxs)), verdict: b.judge(m <= 0.100 && missed == 0), notes: notes},
		{row: memTitle, goal: "≤ 64 KiB", median: fmtKiB(float64(biggest.bytes) / 1024), verdict: b.judge(biggest.bytes <= 64<<10), notes: memNote},
	}, nil
}

// rowHung: the profile of a gateway that ignores SIGTERM is deleted while `run` runs; other
// profiles are edited meanwhile, until that gateway's process is gone (or a deadline well past
// the goal).
func (b *bench) rowHung() ([]result, error) {
	n, ut := b.sz.hungN, b.sz.hungTimeout
	bound := ut + 5*time.Second
	extra := 10 * time.Second
	if b.smoke {
		extra = time.Second
	}
	goneTitle := fmt.Sprintf("hung gateway of a deleted profile (ignores SIGTERM), %d profiles, unregisterTimeout %s: gateway gone after", n, ut)
	editTitle := "hung gateway: other profiles' edits meanwhile"
	c := b.config(n, 0)
	c.UnregisterTimeout = ut.String()
	victim := benchvol.ProfileName(n - 2)
	var gone, slotGone, maxs, all []float64
	missed := 0
	for r := range b.sz.runs {
		rw, why, err := b.newRealWorld(fmt.Sprintf("hung-%d", r), n-1, 0, c, func(w *world) error {
			return os.WriteFile(filepath.Join(w.profileDir(victim), hangMarker), nil, 0o644)
		})
		if err != nil {
			return nil, err
		}
		if why != "" {
			return []result{b.unmeasurable(goneTitle, "≤ unregisterTimeout + 5 s", why), b.unmeasurable(editTitle, "≤ 100 ms", why)}, nil
		}
		g, sg, l, err := b.hungRun(rw, victim, bound+extra, uint64(r))
		if err != nil {
			rw.close(nil)
			return nil, err
		}
		gone, slotGone = append(gone, g), append(slotGone, sg)
		maxs, all = append(maxs, maxOf(l.samples)), append(all, l.samples...)
		missed += l.missed
	}
	fmtGone := func(xs []float64) string {
		m := median(xs)
		if math.IsInf(m, 1) {
			return fmt.Sprintf("never (> %s)", bound+extra)
		}
		return fmtSec(m)
	}
	mg, me := median(gone), median(maxs)
	return []result{
		{row: goneTitle, goal: fmt.Sprintf("≤ unregisterTimeout + 5 s (%s)", bound), median: fmtGone(gone), spread: spreadOrInf(gone),
			verdict: b.judge(mg <= bound.Seconds()),
			notes:   fmt.Sprintf("from rm -rf of the profile dir until the gateway's pid is gone; slot dir removed after %s; watched for %s per run", fmtGone(slotGone), bound+extra)},
		{row: editTitle, goal: "≤ 100 ms", median: fmtLat(me, 5*time.Second), spread: fmtSpread(spreadPct(maxs)), verdict: b.judge(me <= 0.100 && missed == 0),
			notes: fmt.Sprintf("worst edit per run; over all %d edits p50 %s, p99 %s; %d not seen within 5 s", len(all), fmtLat(percentile(all, 50), 5*time.Second), fmtLat(percentile(all, 99), 5*time.Second), missed)},
	}, nil
}

func spreadOrInf(xs []float64) string {
	if slices.ContainsFunc(xs, func(x float64) bool { return math.IsInf(x, 1) }) {
		return ""
	}
	return fmtSpread(spreadPct(xs))
}

// hungRun deletes the victim profile and edits others until the victim's gateway is gone or
// watch passes. It returns the seconds until the gateway's pid and the slot dir were gone
// (+Inf when not), and the edit latencies.
func (b *bench) hungRun(rw *realWorld, victim string, watch time.Duration, seed uint64) (gone, slotGone float64, l latencies, err error) {
	slot := filepath.Join(rw.scandir, "gateway-"+victim)
	pid, start, err := gatewayPID(slot)
	if err != nil {
		return 0, 0, l, err
	}
	if !ignoresTERM(pid) {
		return 0, 0, l, fmt.Errorf("gateway %d of %s does not ignore SIGTERM: the bench template is broken", pid, victim)
	}
	d, err := rw.startRun("hung")
	if err != nil {
		return 0, 0, l, err
	}
	defer func() {
		d.stop()
		if alive(pid, start) {
			_ = syscallKill(pid)
		}
		rw.close(nil)
	}()
	if _, err := d.waitQuiet(b.sz.quietWait); err != nil {
		return 0, 0, l, err
	}
	others := slices.DeleteFunc(slices.Clone(rw.names), func(s string) bool { return s == victim })
	ed := newEditor(rw.world, 100+seed, 5*time.Second)
	gone, slotGone = math.Inf(1), math.Inf(1)
	t0 := time.Now()
	if err := os.RemoveAll(rw.profileDir(victim)); err != nil {
		return 0, 0, l, err
	}
	check := func() {
		if math.IsInf(gone, 1) && !alive(pid, start) {
			gone = time.Since(t0).Seconds()
		}
		if math.IsInf(slotGone, 1) {
			if _, err := os.Lstat(slot); os.IsNotExist(err) {
				slotGone = time.Since(t0).Seconds()
			}
		}
	}
	for time.Since(t0) < watch && math.IsInf(gone, 1) {
		dur, err := ed.flip(ed.pick(others))
		if err := l.add(dur, err); err != nil {
			return 0, 0, l, err
		}
		check()
		pause := time.Now().Add(100*time.Millisecond + time.Duration(ed.rng.Int64N(int64(200*time.Millisecond))))
		for time.Now().Before(pause) && math.IsInf(gone, 1) {
			time.Sleep(10 * time.Millisecond)
			check()
		}
	}
	check()
	return gone, slotGone, l, nil
}

// ignoresTERM reports whether pid ignores SIGTERM (bit 15 of SigIgn in /proc/<pid>/status).
func ignoresTERM(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(15-1)) != 0
		}
	}
	return false
}

// fmtLat formats a latency in seconds; one that reached the edit timeout is shown as such.
func fmtLat(v float64, timeout time.Duration) string {
	if v >= timeout.Seconds() {
		return "≥ " + fmtSec(timeout.Seconds()) + " (timed out)"
	}
	return fmtSec(v)
}
