package main

import (
	"fmt"
	"math"
	"slices"
)

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// spreadPct is the largest deviation of xs from their median, in percent of it.
func spreadPct(xs []float64) float64 {
	m := median(xs)
	if m == 0 || len(xs) < 2 {
		return 0
	}
	worst := 0.0
	for _, x := range xs {
		worst = max(worst, math.Abs(x-m))
	}
	return 100 * worst / math.Abs(m)
}

// percentile returns the p-th percentile (0–100) of xs, nearest rank.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// maxOf returns the largest of xs (0 for none).
func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

// fmtSec formats seconds with a unit that keeps 3–4 significant digits.
func fmtSec(s float64) string {
	a := math.Abs(s)
	switch {
	case a == 0:
		return "0"
	case a < 1e-6:
		return fmt.Sprintf("%.3gns", s*1e9)
	case a < 1e-3:
		return fmt.Sprintf("%.3gµs", s*1e6)
	case a < 1:
		return fmt.Sprintf("%.3gms", s*1e3)
	default:
		return fmt.Sprintf("%.3gs", s)
	}
}

// fmtKiB formats a size given in KiB.
func fmtKiB(k float64) string {
	if k >= 1024 {
		return fmt.Sprintf("%.1f MiB", k/1024)
	}
	return fmt.Sprintf("%.0f KiB", k)
}

// fmtPct formats a fraction of a core as a percentage.
func fmtPct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// fmtSpread formats a spread in percent.
func fmtSpread(p float64) string { return fmt.Sprintf("±%.0f%%", p) }
