#!/usr/bin/env bash
# nginx.sh installs nginx (Debian package) when it is missing and this runs
# as root with apt-get; otherwise it says why not. The benchmark then reports
# "nginx unavailable" instead of failing. The package's own service is not
# started: the benchmark runs nginx in the foreground with its own config.
set -uo pipefail
if command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; then
	exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "nginx.sh: nginx is not installed (install it with: sudo apt-get install -y nginx)" >&2
	exit 0
fi
echo "nginx.sh: installing nginx with apt-get" >&2
# policy-rc.d 101 keeps the package from starting the system service.
policy=/usr/sbin/policy-rc.d
created=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null 2>&1 ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null 2>&1 ||
	{ apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null 2>&1; } ||
	echo "nginx.sh: apt-get could not install nginx" >&2
[[ $created -eq 1 ]] && rm -f "$policy"
exit 0
