#!/usr/bin/env bash
# Shared helpers for the hack/ scripts; source it, do not run it.

# ensure_tool CMD PACKAGE makes sure CMD is on PATH: as root with apt-get, Debian's PACKAGE is
# installed when it is missing; otherwise it fails, saying what to install.
ensure_tool() {
	local cmd=$1 pkg=$2
	if command -v "$cmd" >/dev/null 2>&1; then
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "$cmd is not installed and this is not root: run 'sudo apt-get install $pkg' and retry" >&2
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "$cmd is not installed and there is no apt-get: install $pkg" >&2
		return 1
	fi
	echo "$cmd is not installed: installing $pkg with apt-get" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "apt-get install $pkg finished but $cmd is still not on PATH" >&2
		return 1
	fi
}

# ensure_s6 makes sure s6-svscan is on PATH: s6-overlay's /command is added when present;
# otherwise, as root with apt-get, the Debian package is installed; otherwise it fails.
ensure_s6() {
	if ! command -v s6-svscan >/dev/null 2>&1 && [ -x /command/s6-svscan ]; then
		PATH="/command:$PATH"
		export PATH
	fi
	ensure_tool s6-svscan s6
}

# check_gofmt fails, listing the files, when any Go file is not gofmt-formatted.
check_gofmt() {
	local out
	out=$(gofmt -l .)
	if [ -n "$out" ]; then
		echo "gofmt: these files need formatting (run gofmt -w on them):" >&2
		echo "$out" >&2
		return 1
	fi
}

# GOLANGCI_LINT is the pinned golangci-lint, built from the Go module proxy on first use (a
# couple of minutes once, then cached by the go command). It is deliberately not in go.mod.
GOLANGCI_LINT=github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

# golangci_lint runs the pinned golangci-lint with the committed .golangci.yml.
golangci_lint() {
	go run "$GOLANGCI_LINT" "$@"
}

# run_lint runs golangci-lint on every package, then on the e2e suite with its build tag.
run_lint() {
	local rc=0
	golangci_lint run ./... || rc=1
	golangci_lint run --build-tags e2e ./test/e2e/... || rc=1
	return "$rc"
}

# go_test_live reads `go test -json` events on stdin and prints what plain `go test` prints for
# packages (ok, FAIL, build errors): per-test output is kept for failed_test_output.
go_test_live() {
	jq --unbuffered -rj '
		select((.Test == null and .Action == "output" and .Output != "PASS\n" and .Output != "FAIL\n")
			or .Action == "build-output") | .Output'
}

# go_test_counts FILE prints "passed failed skipped" for the `go test -json` log FILE.
#
# It counts every test and subtest result that go test reports. A Ginkgo suite's top-level test
# is replaced by its specs, read from the suite's closing "N Passed | M Failed | P Pending |
# K Skipped" line (pending specs count as skipped); a suite that failed without failing a spec
# (a focused spec, a leak check) adds one failure. A package that failed without any failed test
# (a build failure, a panic outside a test, a timeout) counts as one failed test.
go_test_counts() {
	jq -rs '
		def key: "\(.Package)\t\(.Test)";
		def counted: .Action == "pass" or .Action == "fail" or .Action == "skip";
		(map(select(.Test != null and .Action == "output"
				and (.Output | test("^(SUCCESS|FAIL)!.* [0-9]+ Passed \\| [0-9]+ Failed"))))
			| map({key: key, value: (.Output
				| capture("(?<p>[0-9]+) Passed \\| (?<f>[0-9]+) Failed.* \\| (?<pe>[0-9]+) Pending \\| (?<s>[0-9]+) Skipped")
				| map_values(tonumber))})
			| from_entries) as $suites
		| map(select(.Test != null and counted)) as $results
		| (reduce $results[] as $r ({p: 0, f: 0, s: 0};
			$suites[$r | key] as $g
			| if $g != null then
				.p += $g.p | .s += $g.pe + $g.s
				| .f += (if $r.Action == "fail" and $g.f == 0 then 1 else $g.f end)
			elif $r.Action == "pass" then .p += 1
			elif $r.Action == "fail" then .f += 1
			else .s += 1 end)) as $c
		| ([.[] | select(.Test == null and .Action == "fail") | .Package] | unique) as $failedPkgs
		| ([$results[] | select(.Action == "fail") | .Package] | unique) as $withFailedTests
		| "\($c.p) \($c.f + ($failedPkgs - $withFailedTests | length)) \($c.s)"' "$1"
}

# failed_test_output FILE prints the output of every failed top-level test of the `go test -json`
# log FILE (subtests included), and the name of every package that failed outside a test.
failed_test_output() {
	jq -rj -s '
		def top: "\(.Package)\t\(.Test | split("/")[0])";
		(map(select(.Test != null and .Action == "fail") | {key: top, value: true}) | from_entries) as $failed
		| (map(select(.Test != null and .Action == "fail") | .Package) | unique) as $withFailedTests
		| (.[] | select(.Test != null and .Action == "output" and $failed[top]) | .Output),
		  (.[] | select(.Test == null and .Action == "fail" and (.Package | IN($withFailedTests[]) | not))
			| "--- FAIL: package \(.Package) (no test failed: a build failure, a panic or a timeout; see above)\n")' "$1"
}

# run_shellcheck checks the hack/ scripts, .ci/run and the sample s6 scripts (POSIX sh).
run_shellcheck() {
	shellcheck hack/*.sh .ci/run &&
		shellcheck -s sh config/samples/s6-overlay/cont-init.d/* \
			config/samples/s6-overlay/s6-rc.d/*/run config/samples/s6-overlay/s6-rc.d/*/finish
}
