#!/usr/bin/env bash
# Runs every Fuzz* target of every package, one at a time, for FUZZTIME each (default 20s).
# Targets are found with `go test -list '^Fuzz' ./...`. New failing inputs land in the
# package's testdata/fuzz/<Target>/ and become regression cases: commit them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-20s}

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
	echo "== fuzz $name ($pkg, $fuzztime)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
		failed=$((failed + 1))
	fi
done
echo "fuzz: $((${#targets[@]} - failed)) targets passed, $failed failed"
[ "$failed" -eq 0 ]
