#!/usr/bin/env bash
# chromium.sh makes sure a headless browser is there for the dashboard's
# browser test (dashboard/browser_test.go, driven by chromedp).
#
# When chromium (or Chrome) is on the PATH it prints nothing and exits 0.
# Otherwise, as root on a Debian-like system, it installs Debian's chromium
# package with apt-get, quietly. It never fails the build: without root or
# apt-get, or when the installation fails, it says so on stderr and exits 0,
# and the browser test skips.
set -uo pipefail

for b in chromium chromium-browser google-chrome google-chrome-stable headless-shell; do
	if command -v "$b" >/dev/null 2>&1; then
		exit 0
	fi
done

note() { printf 'chromium.sh: %s\n' "$*" >&2; }

if [[ $EUID -ne 0 ]]; then
	note "chromium is not installed and this is not root: the dashboard's browser test will skip (apt-get install chromium as root to run it)"
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	note "chromium is not installed and there is no apt-get: the dashboard's browser test will skip"
	exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
note "installing chromium for the dashboard's browser test"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
	note "apt-get install chromium failed; the dashboard's browser test will skip. The end of its output:"
	tail -n 20 "$log" >&2
fi
exit 0
