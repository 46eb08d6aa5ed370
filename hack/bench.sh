#!/usr/bin/env bash
# Benchmarks: the Go benchmarks of ./pkg/... through benchstat, then the whole-process scenario
# driver (test/bench), which prints issue 7's table with the benchstat figures folded in.
#
#   hack/bench.sh            # BENCHCOUNT (default 6) runs of every benchmark, full driver (~35 min)
#   hack/bench.sh --smoke    # every benchmark once (-benchtime 1x), driver in -smoke mode (CI)
#
# Environment: BENCH (benchmark regexp, default .), BENCHCOUNT, BENCHTIME (default 1s),
# BENCH_ROWS (driver rows, default all), BENCH_RUNS (driver repetitions, default 3),
# BENCH_OUT (dir to keep the raw outputs in; default a temp dir that is removed).
# Needs root and s6 (installed with apt-get when missing, as root); BENCHMARKS.md explains the rows.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh

smoke=0
case "${1:-}" in
--smoke) smoke=1 ;;
"") ;;
*)
	echo "usage: hack/bench.sh [--smoke]" >&2
	exit 2
	;;
esac

ensure_s6

out=${BENCH_OUT:-}
if [ -z "$out" ]; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

status=0
if [ "$smoke" = 1 ]; then
	gotest=(go test -run '^$' -bench "${BENCH:-.}" -benchtime 1x -count 1 -short ./pkg/...)
	driver=(-smoke)
else
	gotest=(go test -run '^$' -bench "${BENCH:-.}" -benchmem -count "${BENCHCOUNT:-6}" -benchtime "${BENCHTIME:-1s}" -timeout 60m ./pkg/...)
	driver=(-runs "${BENCH_RUNS:-3}")
fi

echo "== Go benchmarks: ${gotest[*]}"
if ! "${gotest[@]}" | tee "$out/gobench.txt"; then
	echo "bench: go test -bench failed (the table below still runs)" >&2
	status=1
fi
echo
echo "== benchstat"
go tool benchstat "$out/gobench.txt" || status=1
go tool benchstat -format csv "$out/gobench.txt" >"$out/benchstat.csv" 2>/dev/null || status=1

echo
echo "== scenario driver: go run ./test/bench ${driver[*]}"
if ! go run ./test/bench "${driver[@]}" -rows "${BENCH_ROWS:-all}" -benchstat "$out/benchstat.csv" | tee "$out/table.md"; then
	echo "bench: the scenario driver broke (see above)" >&2
	status=1
fi
exit "$status"
