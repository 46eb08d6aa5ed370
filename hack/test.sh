#!/usr/bin/env bash
# The whole test run, as CI runs it (.ci/run -> make test -> here):
#   s6 (installed with apt-get when missing and root), go vet, gofmt,
#   unit tests with -race (Ginkgo suites included), the e2e suite with -race (-tags e2e, real
#   s6-svscan), then every fuzz target for its execution-count budget (hack/fuzz.sh).
# Ends with "N passed, M failed", counting `go test` package runs (a fuzz target's run counts as
# one), and exits non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh

ensure_s6
go mod download

echo "== go vet"
go vet ./...
go vet -tags e2e ./test/e2e/...
echo "== gofmt"
check_gofmt
echo "== staticcheck"
run_staticcheck

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
rc=0

echo "== unit tests (-race)"
go test -race -count=1 ./... 2>&1 | tee "$logs/unit" || rc=1

echo "== e2e tests (-race, -tags e2e)"
if [ -z "$(go list -tags e2e ./test/e2e/...)" ]; then
	echo "no e2e package under ./test/e2e (build tag e2e)" | tee "$logs/e2e" >&2
	rc=1
else
	go test -race -count=1 -tags e2e -timeout 20m ./test/e2e/... 2>&1 | tee "$logs/e2e" || rc=1
fi

echo "== fuzzing (execution-count budgets per target; FUZZTIME overrides)"
hack/fuzz.sh 2>&1 | tee "$logs/fuzz" || rc=1

# Package result lines: "ok  \t<pkg>\t<time>" and "FAIL\t<pkg>\t<time>" (or "[build failed]").
count() { grep -cE "$1" "$2" || true; }
passed=0
failed=0
for phase in unit e2e fuzz; do
	p=$(count $'^ok[ ]+\t' "$logs/$phase")
	f=$(count $'^FAIL\t' "$logs/$phase")
	echo "$phase: $p passed, $f failed"
	passed=$((passed + p))
	failed=$((failed + f))
done
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# Something failed outside any package result (no e2e package, a listing error, ...).
	echo "$passed passed, $failed failed, and a step failed outside any package (see above)"
	exit 1
fi
echo "$passed passed, $failed failed"
exit "$rc"
