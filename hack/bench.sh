#!/usr/bin/env bash
# Runs the benchmarks of ./pkg/... (BENCH regexp, default all) BENCHCOUNT times (default 6,
# each for BENCHTIME, default 1s)
# and prints the median of every metric, with the largest deviation from it in percent.
# (benchstat does the same with statistics; this avoids a dependency.)
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench "${BENCH:-.}" -benchmem -count "${BENCHCOUNT:-6}" -benchtime "${BENCHTIME:-1s}" ./pkg/... | tee "$out"
echo

# shellcheck disable=SC2016 # awk program, not shell
awk '
function median(key, n,   i, j, x, a) {
	for (i = 1; i <= n; i++) a[i] = vals[key, i] + 0
	for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function spread(key, n, m,   i, d, worst) {
	worst = 0
	for (i = 1; i <= n; i++) { d = vals[key, i] - m; if (d < 0) d = -d; if (d > worst) worst = d }
	return m == 0 ? 0 : 100 * worst / m
}
function human(v, unit) {
	if (unit == "ns/op") {
		if (v >= 1e9) return sprintf("%.4gs", v / 1e9)
		if (v >= 1e6) return sprintf("%.4gms", v / 1e6)
		if (v >= 1e3) return sprintf("%.4gµs", v / 1e3)
		return sprintf("%.4gns", v)
	}
	if (unit == "B/op") {
		if (v >= 1048576) return sprintf("%.4gMiB", v / 1048576)
		if (v >= 1024) return sprintf("%.4gKiB", v / 1024)
		return sprintf("%dB", v)
	}
	return (v >= 1e4 || v == int(v)) ? sprintf("%d %s", v, unit) : sprintf("%.4g %s", v, unit)
}
/^pkg: / { pkg = $2; sub(/.*\//, "", pkg) }
/^Benchmark/ && $2 ~ /^[0-9]+$/ {
	name = pkg "." $1
	if (!(name in seen)) { seen[name] = 1; order[++nnames] = name }
	for (i = 3; i < NF; i += 2) {
		key = name SUBSEP $(i + 1)
		if (!(key in cnt)) units[name] = units[name] " " $(i + 1)
		cnt[key]++
		vals[key, cnt[key]] = $i
	}
}
END {
	if (nnames == 0) { print "no benchmarks found"; exit 0 }
	w = 10
	for (k = 1; k <= nnames; k++) if (length(order[k]) > w) w = length(order[k])
	printf "%-" w "s  %s\n", "benchmark", "median (largest deviation from it), per metric"
	for (k = 1; k <= nnames; k++) {
		name = order[k]
		line = ""
		nu = split(units[name], u, " ")
		for (j = 1; j <= nu; j++) {
			key = name SUBSEP u[j]
			m = median(key, cnt[key])
			line = line sprintf("  %16s ±%2.0f%%", human(m, u[j]), spread(key, cnt[key], m))
		}
		printf "%-" w "s%s  n=%d\n", name, line, cnt[name SUBSEP u[1]]
	}
}' "$out"
