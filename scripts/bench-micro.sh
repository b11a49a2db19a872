#!/usr/bin/env bash
# bench-micro.sh BASE [PATTERN]: the hot-path microbenchmarks (redirect,
# SDK events, User-Agent parsing, the fingerprint decision, the matcher's
# drain) of the commit BASE and of the working tree, each -count times
# with -benchmem, compared by benchstat. BASE defaults to HEAD~1.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-HEAD~1}
pattern=${2:-${BENCH_MICRO_PATTERN:-Redirect|TapstreamEvent|JSONBatch|Hit|Decide|Drain}}
count=${BENCH_MICRO_COUNT:-6}
pkgs=(./collector ./fingerprint ./matcher)
benchstat=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da

url=$(scripts/postgres.sh)
export DATABASE_URL=$url
out=$(mktemp -d)
tree="$out/base"
git worktree add --quiet --detach "$tree" "$base"
trap 'git worktree remove --force "$tree"; rm -rf "$out"' EXIT

run() { # dir file
	(cd "$1" && go test -run '^$' -bench "$pattern" -benchmem -count "$count" "${pkgs[@]}") >"$2"
}
echo "bench-micro: $base, then the working tree ($pattern, $count runs each)" >&2
run "$tree" "$out/old.txt"
run . "$out/new.txt"
go run "$benchstat" "$base=$out/old.txt" "working tree=$out/new.txt"
