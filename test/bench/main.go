// Command bench is the whole-process scenario driver of issue 7's benchmark table. It builds
// bin/profile-controller, generates volumes and scandirs with internal/benchvol on a tmpfs, runs
// the controller against stub s6 binaries (for the rows that must fork nothing) or a real
// s6-svscan, repeats every row, and prints one Markdown table: row, goal, median, spread,
// PASS/FAIL, notes.
//
//	go run ./test/bench                 # every row, several runs each (about 15 minutes)
//	go run ./test/bench -rows noop,idle # some rows
//	go run ./test/bench -smoke          # every row once at tiny sizes, goals not judged (< 1 min)
//	go run ./test/bench -benchstat f.csv # fold `benchstat -format csv` figures into the table
//
// It runs as root (it may mount a tmpfs, raises RLIMIT_NOFILE, starts s6-svscan) and ends every
// process it started, by pid. The exit status is non-zero only when the harness itself broke
// (or, with -strict, when a row failed); a FAIL is a finding about the controller.
//
// BENCHMARKS.md says what each row measures and how.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rowIDs are the rows in table order; -rows picks among them.
var rowIDs = []string{"boot", "converge", "noop", "idle", "event", "latency", "junk", "writes", "hung", "rss"}

var verbose bool

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func vlogf(format string, args ...any) {
	if verbose {
		logf(format, args...)
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == rusageHelperArg {
		os.Exit(rusageHelper(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	rowsFlag := flag.String("rows", "all", "comma-separated rows to run: "+strings.Join(rowIDs, ", ")+", or all")
	smoke := flag.Bool("smoke", false, "every row once at tiny sizes, goals not judged")
	runs := flag.Int("runs", 3, "repetitions of each row (cheap rows run 3× as many)")
	binFlag := flag.String("bin", "bin/profile-controller", "controller binary (relative to the repository root)")
	build := flag.Bool("build", true, "build the controller binary first")
	workFlag := flag.String("work", "", "scratch dir parent (default: a tmpfs, see BENCHMARKS.md)")
	keep := flag.Bool("keep", false, "keep the scratch dir")
	benchstatCSV := flag.String("benchstat", "", "`benchstat -format csv` output to fold into the table")
	pythonFlag := flag.String("python", "", "Python interpreter for the baseline (default /usr/bin/python3)")
	s6Flag := flag.String("s6-bin", "", "dir of the real s6 binaries (default /command or /usr/bin)")
	strict := flag.Bool("strict", false, "exit 1 when a row FAILs")
	flag.BoolVar(&verbose, "v", false, "log progress details")
	flag.Parse()
	if flag.NArg() != 0 {
		logf("unexpected argument %q", flag.Arg(0))
		return 2
	}
	selected, err := pickRows(*rowsFlag)
	if err != nil {
		logf("%v", err)
		return 2
	}
	if os.Geteuid() != 0 {
		logf("run as root: the rows mount a tmpfs, raise RLIMIT_NOFILE past 20,000 and start s6-svscan")
		return 2
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("%v: stopping everything this run started", s)
		runCleanups()
		os.Exit(130)
	}()
	defer runCleanups()

	e := &env{}
	if e.root, err = repoRoot(); err != nil {
		logf("%v", err)
		return 1
	}
	e.bin = *binFlag
	if !filepath.IsAbs(e.bin) {
		e.bin = filepath.Join(e.root, e.bin)
	}
	if *build {
		logf("building %s", e.bin)
		if err := e.build(); err != nil {
			logf("%v", err)
			return 1
		}
	}
	if err := e.findS6(*s6Flag); err != nil {
		logf("%v", err)
		return 1
	}
	if e.python, err = findPython(*pythonFlag); err != nil {
		logf("%v", err)
		return 1
	}
	if err := e.setupWork(*workFlag); err != nil {
		logf("scratch dir: %v", err)
		return 1
	}
	register(func() { e.cleanupWork(*keep) })
	if err := e.makeStubs(); err != nil {
		logf("stubs: %v", err)
		return 1
	}
	var gb goBench
	if *benchstatCSV != "" {
		if gb, err = readBenchstatCSV(*benchstatCSV); err != nil {
			logf("read %s: %v", *benchstatCSV, err)
			return 1
		}
	}

	b := &bench{e: e, sz: fullSizes(*runs), smoke: *smoke, gb: gb, worlds: map[string]*world{}}
	if *smoke {
		b.sz = smokeSizes()
	}
	logf("work dir %s on %s; s6 %s (%s %s); python %s", e.work, e.workFS, e.s6Version(), "s6-svscan", e.svscanOpt, pythonVersion(e.python))

	start := time.Now()
	var all []result
	broken := false
	for _, id := range rowIDs {
		if !selected[id] {
			continue
		}
		logf("row %s", id)
		t0 := time.Now()
		rs, err := b.runRow(id)
		if err != nil {
			broken = true
			logf("row %s: harness error: %v", id, err)
			rs = append(rs, result{row: rowTitle(id), verdict: "ERROR", notes: "harness error: " + err.Error()})
		}
		logf("row %s done in %s", id, time.Since(t0).Round(time.Second))
		all = append(all, rs...)
	}
	b.closeWorlds()

	printHeader(os.Stdout, e, b, time.Since(start))
	printTable(os.Stdout, all)
	if broken {
		return 1
	}
	if *strict {
		for _, r := range all {
			if r.verdict == "FAIL" {
				return 1
			}
		}
	}
	return 0
}

func pickRows(s string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		switch id {
		case "all":
			for _, r := range rowIDs {
				out[r] = true
			}
		case "":
		default:
			known := false
			for _, r := range rowIDs {
				known = known || r == id
			}
			if !known {
				return nil, fmt.Errorf("unknown row %q (rows: %s)", id, strings.Join(rowIDs, ", "))
			}
			out[id] = true
		}
	}
	return out, nil
}

func (b *bench) runRow(id string) ([]result, error) {
	switch id {
	case "boot":
		return b.rowBoot()
	case "converge":
		return b.rowConverge()
	case "noop":
		return b.rowNoop()
	case "idle":
		return b.rowIdle()
	case "event":
		return b.rowEvent()
	case "latency":
		return b.rowLatency()
	case "junk":
		return b.rowJunk()
	case "writes":
		return b.rowWrites()
	case "hung":
		return b.rowHung()
	default:
		return b.rowRSS()
	}
}

func rowTitle(id string) string {
	return map[string]string{
		"boot": "boot pass cost", "converge": "boot to converged", "noop": "no-op reconcile --once",
		"idle": "run idle CPU", "event": "one profile's event", "latency": "edit → s6 want change",
		"junk": "20,000 junk entries", "writes": "gateway state writes", "hung": "hung gateway",
		"rss": "peak RSS",
	}[id]
}

// machine describes the host for the header.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64); err == nil {
					mem = fmt.Sprintf(", %.1f GiB RAM", kb/1024/1024)
				}
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s)%s, %s", runtime.NumCPU(), cpu, mem, runtime.Version())
}
