#!/usr/bin/env bash
# The whole test run, as CI runs it (.ci/run -> make test -> here). In order:
#   1. checks: go vet and golangci-lint (each plain and with -tags e2e), gofmt, go mod tidy
#      -diff, and shellcheck on the scripts;
#   2. unit tests with -race: every package, Ginkgo suites and the sample-tree test included;
#   3. the e2e suite with -race (-tags e2e, a real s6-svscan and real processes);
#   4. fuzzing: every Fuzz* target for its execution-count budget (hack/fuzz.sh);
#   5. the benchmark smoke run (hack/bench.sh --smoke), when bench.sh has that option.
# s6, jq and shellcheck are installed with apt-get when missing (as root). Every step runs even
# when an earlier one failed.
#
# The last line is "N passed, M failed" (", K skipped" when some were), counting tests:
#   - every `go test` result, top-level tests and subtests alike, with a Ginkgo suite counted as
#     its specs, and a package that failed outside any test (build failure, panic, timeout) as
#     one failed test (hack/lib.sh: go_test_counts);
#   - each check of step 1, each fuzz target of step 4 and the benchmark smoke run as one test.
# The exit status is non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/lib.sh
source hack/lib.sh

ensure_s6
ensure_tool jq jq
go mod download

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0
skipped=0
failures=()

# record NAME RC counts one test named NAME that passed when RC is 0.
record() {
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$1")
	fi
}

# check NAME CMD... runs one check and records it as one test.
check() {
	local name=$1 rc=0
	shift
	echo "== $name"
	"$@" || rc=$?
	record "$name" "$rc"
}

# gotest PHASE ARGS... runs `go test -json ARGS` with package lines shown as they come, then
# counts its tests and prints the output of the failed ones.
gotest() {
	local phase=$1 rc counts p f s
	shift
	# Ginkgo's colour codes would break the summary line that go_test_counts reads.
	set +e
	GINKGO_NO_COLOR=TRUE go test -json "$@" | tee "$logs/$phase.json" | go_test_live
	rc=${PIPESTATUS[0]}
	set -e
	if ! counts=$(go_test_counts "$logs/$phase.json"); then
		echo "could not count the results in the go test -json log" >&2
		counts="0 1 0"
	fi
	read -r p f s <<<"$counts"
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# go test failed but no test or package did (a bad flag, a listing error): one failure.
		f=1
	fi
	if [ "$f" -gt 0 ]; then
		echo "-- failed in $phase:"
		failed_test_output "$logs/$phase.json"
		failures+=("$phase tests")
	fi
	echo "$phase: $p passed, $f failed, $s skipped"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
}

check "go vet" go vet ./...
check "go vet -tags e2e" go vet -tags e2e ./test/e2e/...
check "gofmt" check_gofmt
check "golangci-lint" golangci_lint run ./...
check "golangci-lint --build-tags e2e" golangci_lint run --build-tags e2e ./test/e2e/...
check "go mod tidy -diff" go mod tidy -diff
shellcheck_all() { ensure_tool shellcheck shellcheck && run_shellcheck; }
check "shellcheck" shellcheck_all

echo "== unit tests (-race)"
gotest unit -race -count=1 ./...

echo "== e2e tests (-race, -tags e2e)"
if [ -z "$(go list -tags e2e ./test/e2e/...)" ]; then
	echo "no e2e package under ./test/e2e (build tag e2e)" >&2
	record "e2e package" 1
else
	gotest e2e -race -count=1 -tags e2e -timeout 20m ./test/e2e/...
fi

echo "== fuzzing (execution-count budgets per target; FUZZTIME overrides)"
rc=0
hack/fuzz.sh 2>&1 | tee "$logs/fuzz" || rc=$?
fp=$(grep -c '^fuzz: ok ' "$logs/fuzz" || true)
ff=$(grep -c '^fuzz: FAIL ' "$logs/fuzz" || true)
passed=$((passed + fp))
failed=$((failed + ff))
while read -r _ _ name _; do failures+=("fuzz $name"); done < <(grep '^fuzz: FAIL ' "$logs/fuzz" || true)
if [ "$rc" -ne 0 ] && [ "$ff" -eq 0 ]; then
	record "fuzzing (hack/fuzz.sh failed outside any target)" 1
fi

if [ -x hack/bench.sh ] && grep -q -- '--smoke' hack/bench.sh; then
	check "benchmark smoke run (hack/bench.sh --smoke)" hack/bench.sh --smoke
fi

echo
if [ "${#failures[@]}" -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failures[@]}"
fi
summary="$passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then
	summary="$summary, $skipped skipped"
fi
echo "$summary"
[ "$failed" -eq 0 ]
