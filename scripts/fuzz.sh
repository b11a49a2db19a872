#!/usr/bin/env bash
# fuzz.sh runs every native Go fuzz target in the repository, one after
# another, each for FUZZTIME (the first argument, default 30s; any value
# `go test -fuzztime` accepts, such as 3s, 2m or 5000x).
#
#   scripts/fuzz.sh [FUZZTIME] [REGEXP]
#
# A target is a `func FuzzX(f *testing.F)` in a *_test.go file; REGEXP, when
# given, keeps only the targets whose "./pkg FuzzX" matches it (grep -E).
# Targets run one at a time because the fuzzer of one target already uses
# every core. When a target fails, the script prints its package, its name
# and the failing input go test wrote (testdata/fuzz/FuzzX/<hash> in that
# package: commit it as a regression seed once the bug is fixed), goes on
# with the other targets and exits 1 at the end. Only the output of failing
# targets is shown in full.
set -uo pipefail

FUZZTIME=${1:-30s}
FILTER=${2:-}
GO=${GO:-go}
GOTESTFLAGS=${GOTESTFLAGS:-}   # more go test build flags, such as -vet=off
FUZZ_WORKERS=${FUZZ_WORKERS:-} # fuzzing workers a target (default: one a core)
cd "$(dirname "$0")/.." || exit 2

files=$(git ls-files -co --exclude-standard '*_test.go' 2>/dev/null) ||
	files=$(find . -name '*_test.go' -not -path './.data/*' | sed 's|^\./||')

# "./pkg FuzzX" lines, sorted.
targets=$(for f in $files; do
	dir=$(dirname "$f")
	sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$f" |
		while read -r name; do printf './%s %s\n' "$dir" "$name"; done
done | sed 's|^\./\.$|.|; s|^\./\. |. |' | sort -u)
if [[ -n $FILTER ]]; then
	targets=$(grep -E -- "$FILTER" <<<"$targets")
fi
if [[ -z $targets ]]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 2
fi

n=$(wc -l <<<"$targets")
echo "fuzz.sh: $n targets, $FUZZTIME each"
failed=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
log=$tmp/log
module=$("$GO" list -m) || exit 2
fuzzcache=$("$GO" env GOCACHE)/fuzz
runflags=(-test.run='^$' -test.fuzztime="$FUZZTIME" -test.timeout=10m -test.paniconexit0)
[[ -n $FUZZ_WORKERS ]] && runflags+=(-test.parallel="$FUZZ_WORKERS")

# fuzz runs target $2 of package $1 with the test binary $3 in the
# package's directory, as go test would (so a failing input is written to
# its testdata/fuzz), and reports whether it passed.
fuzz() {
	local pkg=$1 name=$2 bin=$3 importpath=$module
	[[ $pkg != . ]] && importpath=$module/${pkg#./}
	(cd "$pkg" && "$bin" "${runflags[@]}" -test.fuzz="^${name}\$" -test.fuzzcachedir="$fuzzcache/$importpath") >"$log" 2>&1
}

# Each package's instrumented test binary is built once (go test -c
# -fuzz), then its targets run one by one: linking a binary costs more than
# a short fuzz run.
built=
while read -r pkg name; do
	bin=$tmp/$(printf '%s' "$pkg" | tr -c 'A-Za-z0-9\n' _).test
	if [[ $pkg != "$built" ]]; then
		built=$pkg
		start=$SECONDS
		# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags
		if ! "$GO" test $GOTESTFLAGS -c -fuzz=. -o "$bin" "$pkg" >"$tmp/build" 2>&1; then
			printf 'FAIL  %-28s (build)                          %ds\n' "$pkg" $((SECONDS - start))
			cat "$tmp/build"
			rm -f "$bin"
		else
			printf 'build %-28s                                  %ds\n' "$pkg" $((SECONDS - start))
		fi
	fi
	if [[ ! -x $bin ]]; then
		failed+=("$pkg $name")
		continue
	fi
	start=$SECONDS
	if fuzz "$pkg" "$name" "$bin"; then
		printf 'ok    %-28s %-32s %ds\n' "$pkg" "$name" $((SECONDS - start))
		continue
	fi
	# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as
	# a failure, "context deadline exceeded" with no failing input, when a
	# worker is still busy as time runs out on a loaded machine
	# (go.dev/issue/75804, fixed in Go 1.27). Such a run is tried once more;
	# a second failure counts.
	if grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log"; then
		echo "fuzz.sh: $pkg $name stopped on the toolchain's fuzztime deadline race (go.dev/issue/75804); trying it again"
		if fuzz "$pkg" "$name" "$bin"; then
			printf 'ok    %-28s %-32s %ds\n' "$pkg" "$name" $((SECONDS - start))
			continue
		fi
	fi
	printf 'FAIL  %-28s %-32s %ds\n' "$pkg" "$name" $((SECONDS - start))
	cat "$log"
	corpus=$(sed -n 's/.*Failing input written to \(testdata\/fuzz\/[^ ]*\).*/\1/p' "$log" | tail -1)
	if [[ -n $corpus ]]; then
		echo "fuzz.sh: $pkg $name failed; new corpus file: ${pkg#./}/$corpus"
		echo "fuzz.sh: rerun with: $GO test -run '^$name/$(basename "$corpus")\$' $pkg"
	else
		echo "fuzz.sh: $pkg $name failed without a new corpus file (a seed input failed)"
	fi
	failed+=("$pkg $name")
done <<<"$targets"

if ((${#failed[@]} > 0)); then
	echo "fuzz.sh: ${#failed[@]} of $n targets failed:"
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
echo "fuzz.sh: all $n targets passed"
