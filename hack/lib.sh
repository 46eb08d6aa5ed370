#!/usr/bin/env bash
# Shared helpers for the hack/ scripts; source it, do not run it.

# ensure_s6 makes sure s6-svscan is on PATH: s6-overlay's /command is added when present;
# otherwise, as root with apt-get, the Debian package is installed; otherwise it fails.
ensure_s6() {
	if ! command -v s6-svscan >/dev/null 2>&1 && [ -x /command/s6-svscan ]; then
		PATH="/command:$PATH"
		export PATH
	fi
	if command -v s6-svscan >/dev/null 2>&1; then
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "s6 is not installed (no s6-svscan on PATH) and this is not root: run 'sudo apt-get install s6' and retry" >&2
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "s6 is not installed (no s6-svscan on PATH) and there is no apt-get: install s6 from skarnet.org" >&2
		return 1
	fi
	echo "s6 is not installed: installing it with apt-get" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq s6 >/dev/null
	if ! command -v s6-svscan >/dev/null 2>&1; then
		echo "apt-get install s6 finished but s6-svscan is still not on PATH" >&2
		return 1
	fi
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

# STATICCHECK is the pinned staticcheck, built from the Go module proxy on first use.
STATICCHECK=honnef.co/go/tools/cmd/staticcheck@v0.8.2

# run_staticcheck runs staticcheck (configuration: staticcheck.conf) on every package, e2e included.
run_staticcheck() {
	go run "$STATICCHECK" ./... && go run "$STATICCHECK" -tags e2e ./test/e2e/...
}
