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
	if ! (cd "$dir" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "${extra[@]}" .); then
		failed+=("$dir $name")
	fi
done
if ((${#failed[@]} > 0)); then
	echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz: ${#targets[@]} targets passed"
