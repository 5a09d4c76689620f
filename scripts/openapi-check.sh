#!/usr/bin/env bash
# openapi-check.sh — validate api/openapi.yaml with @apidevtools/swagger-parser
# from npm, the second validator beside the kin-openapi one the Go tests use.
# It installs the validator itself (npm ci in tools/openapi-check, from the
# committed package-lock.json) and fails with a clear message without npm.
#
# Usage: scripts/openapi-check.sh [FILE]   (default api/openapi.yaml)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
doc="${1:-$root/api/openapi.yaml}"
tools="$root/tools/openapi-check"

have_node() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }
# A fresh machine has only Go: as root with apt-get, install Debian's Node.js
# and npm (the validator needs Node.js 16 or later; Debian 12 ships 18).
if ! have_node && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
	echo "openapi-check: installing Debian's nodejs and npm (apt-get update && apt-get install -y nodejs npm)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends nodejs npm >&2
fi
if ! have_node; then
	echo "openapi-check: node and npm are needed to validate $doc with @apidevtools/swagger-parser;" >&2
	echo "  install Node.js 16 or later and npm (on Debian/Ubuntu: sudo apt-get install nodejs npm) and run make test again." >&2
	exit 1
fi
# npm ci again only when the lock file changed since the last install.
stamp="$tools/node_modules/.connectord-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$tools/package-lock.json"; then
	echo "openapi-check: npm ci in tools/openapi-check" >&2
	(cd "$tools" && npm ci --no-audit --no-fund --loglevel=error) >&2
	cp "$tools/package-lock.json" "$stamp"
fi
node "$tools/validate.mjs" "$doc"
