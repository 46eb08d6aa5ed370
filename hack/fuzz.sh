#!/usr/bin/env bash
# Runs every Fuzz* target of every package, one at a time. Targets are found with
# `go test -list '^Fuzz' ./...`. New failing inputs land in the package's
# testdata/fuzz/<Target>/ and become regression cases: commit them with the fix.
#
# Budgets are execution counts, not durations: with a wall-clock -fuzztime, Go 1.26's fuzz
# coordinator can fail a target with a bare "context deadline exceeded" when the deadline lands
# while a worker is busy (go.dev/issue/75804, fixed in Go 1.27), which a loaded CI machine hits.
# A count has no deadline to race. The counts take roughly 20-50 s each on a 2-core machine.
# FUZZTIME (a count such as 50000x, or a duration) overrides them all.
#
# Each target's result is one line, "fuzz: ok <Target> <package> (<seconds> s)" or "fuzz: FAIL
# ..." (hack/test.sh counts them), and the last line sums them up.
set -euo pipefail
cd "$(dirname "$0")/.."

budget() {
	if [ -n "${FUZZTIME:-}" ]; then
		echo "$FUZZTIME"
		return
	fi
	case "$1" in
	FuzzRenderRunScript) echo 15000x ;; # runs /bin/sh per input
	FuzzDecodeConfig) echo 50000x ;;   # a YAML decode (twice with duplicates) per input
	*) echo 150000x ;;
	esac
}

# `go test -list` prints the matching names of a package, then "ok  <pkg> <time>".
list=$(go test -list '^Fuzz' ./...)
targets=()
pending=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) pending+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for name in ${pending[@]+"${pending[@]}"}; do
			targets+=("$pkg $name")
		done
		pending=()
		;;
	*) pending=() ;;
	esac
done <<<"$list"

if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz: no Fuzz* targets found"
	exit 0
fi

failed=0
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	fuzztime=$(budget "$name")
	echo "== fuzz $name ($pkg, $fuzztime)"
	start=$SECONDS
	if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 1000x "$pkg"; then
		echo "fuzz: ok $name $pkg ($((SECONDS - start)) s)"
	else
		echo "fuzz: FAIL $name $pkg ($((SECONDS - start)) s)"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $((${#targets[@]} - failed)) targets passed, $failed failed"
[ "$failed" -eq 0 ]
