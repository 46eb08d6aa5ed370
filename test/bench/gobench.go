package main

import (
	"encoding/csv"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// benchValue is one benchmark's center and confidence interval as benchstat reports them.
type benchValue struct {
	center float64 // in the unit, seconds for "sec/…"
	ci     string  // "±3%", "±∞" (too few runs)
}

// goBench maps "Name/sub" (GOMAXPROCS suffix removed) and unit ("sec/op", "sec/profile") to
// its value.
type goBench map[[2]string]benchValue

var procsSuffix = regexp.MustCompile(`-\d+$`)

// readBenchstatCSV reads `benchstat -format csv` output: blocks whose header row is
// ",<unit>,CI" followed by "name,center,ci" rows (one input file, so one value column).
func readBenchstatCSV(path string) (goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	out := goBench{}
	unit := ""
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rec) < 2 {
			unit = ""
			continue
		}
		if rec[0] == "" {
			if len(rec) >= 3 && rec[2] == "CI" {
				unit = rec[1]
			}
			continue
		}
		if unit == "" || rec[0] == "geomean" {
			continue
		}
		v, err := strconv.ParseFloat(rec[1], 64)
		if err != nil {
			continue
		}
		ci := ""
		if len(rec) >= 3 {
			ci = "±" + strings.TrimPrefix(rec[2], "±")
		}
		out[[2]string{procsSuffix.ReplaceAllString(rec[0], ""), unit}] = benchValue{center: v, ci: ci}
	}
	return out, nil
}

// get returns the value of a benchmark ("ReconcileKey/profiles=1000", without the Benchmark
// prefix, as benchstat prints it) in unit.
func (g goBench) get(name, unit string) (benchValue, bool) {
	v, ok := g[[2]string{strings.TrimPrefix(name, "Benchmark"), unit}]
	return v, ok
}
