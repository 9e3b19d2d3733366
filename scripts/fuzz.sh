#!/usr/bin/env bash
# Runs every Go native fuzz test (func FuzzXxx(f *testing.F)) found in the given module
# directories, each for $FUZZTIME, one after the other: `go test -fuzz` takes one package and
# one target per run. Their seed corpora (f.Add and testdata/fuzz/FuzzXxx/) already run as
# plain tests in `go test`; this explores beyond them.
#
# Usage: scripts/fuzz.sh [--list] DIR...
#   FUZZTIME    how long each target runs (default 10s; a count such as 5000x works too)
#   FUZZ        only targets whose name matches this extended regexp (default: all)
#   FUZZ_FLAGS  more go test flags, e.g. -parallel=1
#
# A target that fails writes the input to its package's testdata/fuzz/FuzzXxx/ (go test says
# where): commit it, and it stays a regression test of the seed corpus. Every target runs
# even when one fails; the exit status is non-zero when any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

list=false
if [[ ${1:-} == --list ]]; then
	list=true
	shift
fi
(($# > 0)) || { echo "usage: $0 [--list] DIR..." >&2; exit 2; }
fuzztime=${FUZZTIME:-10s}
filter=${FUZZ:-.}
read -r -a extra <<<"${FUZZ_FLAGS:-}"

# Found by their source, not by `go test -list` over every package, which would build every
# test binary of every module only to find the few with fuzz targets.
targets=()
while IFS=: read -r file name; do
	[[ $name =~ $filter ]] || continue
	targets+=("$(dirname "$file") $name")
done < <(grep -rEo --include='*_test.go' --exclude-dir=testdata --exclude-dir=node_modules --exclude-dir=vendor \
	'^func Fuzz[A-Za-z0-9_]*\([a-zA-Z_][a-zA-Z0-9_]* \*testing\.F\)' "$@" |
	sed -E 's/^([^:]*):func (Fuzz[A-Za-z0-9_]*)\(.*/\1:\2/' | sort -u)

if $list; then
	for t in "${targets[@]}"; do echo "$t"; done
	exit 0
fi
if ((${#targets[@]} == 0)); then
	echo "fuzz: no fuzz targets found in $* matching '$filter'"
	exit 0
fi

echo "fuzz: ${#targets[@]} targets, $fuzztime each"
failed=()
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	echo "== fuzz $dir $name ($fuzztime)"
	corpus="$dir/testdata/fuzz/$name"
	before=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
	log=$(mktemp)
	if ! (cd "$dir" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "${extra[@]}" .) 2>&1 | tee "$log"; then
		after=$( (ls "$corpus" 2>/dev/null || true) | wc -l)
		# Go's fuzzing coordinator (before Go 1.27) can report the end of -fuzztime itself
		# as a failure, "context deadline exceeded", with no failing input
		# (go.dev/issue/75804). A failure that wrote no new input and says only that is
		# that race, not a finding; any other failure counts.
		if ((after == before)) && grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written\|panic:' "$log"; then
			echo "fuzz: $name: ignored the fuzzing coordinator's end-of-fuzztime race (go.dev/issue/75804): no failing input was written"
		else
			failed+=("$dir $name")
		fi
	fi
	rm -f "$log"
done
if ((${#failed[@]} > 0)); then
	echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: ${#targets[@]} targets passed"
