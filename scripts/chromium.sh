#!/usr/bin/env bash
# chromium.sh — make sure a headless Chromium is there for the console's
# browser test (cmd/connectord/console_browser_test.go), and print the export
# line that tells the test where it is.
#
# - CONNECTORD_CHROMIUM already set to an executable: use it;
# - chromium (Debian's package) on PATH: use it;
# - otherwise, as root on a machine with apt-get: apt-get update && apt-get
#   install -y chromium;
# - otherwise: stop, naming exactly what to install.
#
# The install is here, not in the test binary: a test never changes the machine.
set -euo pipefail

log() { printf 'chromium: %s\n' "$*" >&2; }

if [[ -n ${CONNECTORD_CHROMIUM:-} && -x ${CONNECTORD_CHROMIUM} ]]; then
	printf 'export CONNECTORD_CHROMIUM=%q\n' "$CONNECTORD_CHROMIUM"
	exit 0
fi
for name in chromium chromium-browser; do
	if path="$(command -v "$name")"; then
		printf 'export CONNECTORD_CHROMIUM=%q\n' "$path"
		exit 0
	fi
done

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	log "installing Debian's chromium package for the browser test (apt-get update && apt-get install -y chromium)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends chromium >&2
	if path="$(command -v chromium)"; then
		printf 'export CONNECTORD_CHROMIUM=%q\n' "$path"
		exit 0
	fi
	log "apt-get installed chromium but no chromium command is on PATH"
	exit 1
fi

log "the console's browser test needs a headless Chromium, and none is installed."
log "install Debian's chromium package as root:  apt-get update && apt-get install -y chromium"
log "(or set CONNECTORD_CHROMIUM to a Chromium or Chrome executable)"
exit 1
