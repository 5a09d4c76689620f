#!/usr/bin/env bash
# bench/run.sh — measure connectord's pass-through against a fast local upstream,
# straight and through nginx proxy_pass, in one run. See bench/README.md.
#
# Usage: bench/run.sh [proxybench load flags…]   e.g. bench/run.sh -c 1,32 -d 5s -rounds 3
#
# Needs: Go, PostgreSQL (found or started by scripts/devdb.sh), psql, curl, jq,
# and Debian's nginx package, which this script installs with apt-get when it
# runs as root and nginx is missing (otherwise: sudo apt-get install nginx).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
UP_PORT=${BENCH_UPSTREAM_PORT:-18081}
NGINX_PORT=${BENCH_NGINX_PORT:-18082}
CD_PORT=${BENCH_CONNECTORD_PORT:-18080}
KEY=KeapAK-bench-service-account-key
WORK="$(mktemp -d "${TMPDIR:-/tmp}/proxybench.XXXXXX")"
PIDS=()
DB=""

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if [ -n "$DB" ]; then psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; fi
	say "logs kept in $WORK"
}
trap cleanup EXIT

for tool in go psql curl jq; do
	command -v "$tool" >/dev/null || die "$tool is needed (Debian: apt-get install postgresql-client curl jq; Go from go.dev)"
done
NGINX="$(command -v nginx || true)"
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing Debian's nginx package (apt-get install nginx)"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
		NGINX=/usr/sbin/nginx
	else
		die "nginx is missing: install Debian's package with 'sudo apt-get install nginx', then run this again"
	fi
fi

say "building connectord and proxybench"
go build -o "$WORK/connectord" ./cmd/connectord
go build -o "$WORK/proxybench" ./bench/proxybench

# A fresh database on the development PostgreSQL.
exports="$(scripts/devdb.sh)" && eval "$exports"
DB="connectord_bench_$$"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
BENCH_DB_URL="$(printf '%s' "$DATABASE_URL" | sed -E "s#/[^/?]*(\?|\$)#/$DB\1#")"

waitfor() { # URL [header]
	for _ in $(seq 100); do
		if curl -fs -o /dev/null ${2:+-H "$2"} "$1"; then return 0; fi
		sleep 0.1
	done
	die "$1 did not answer; see the logs in $WORK"
}

"$WORK/proxybench" upstream -addr "127.0.0.1:$UP_PORT" -key "$KEY" ${BENCH_SPENT_EVERY:+-spent-every "$BENCH_SPENT_EVERY"} 2>"$WORK/upstream.log" &
UP_PID=$!
PIDS+=($UP_PID)
waitfor "http://127.0.0.1:$UP_PORT/crm/rest/v1/account/profile" "X-Keap-API-Key: $KEY"

mkdir -p "$WORK/nginx/tmp" && chmod -R 777 "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log $WORK/nginx/access.log;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    upstream keap {
        server 127.0.0.1:$UP_PORT;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://keap;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header Cookie "";
            proxy_set_header X-Keap-API-Key "$KEY";
            proxy_hide_header Set-Cookie;
        }
    }
}
EOF
"$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
NGINX_PID=$!
PIDS+=($NGINX_PID)
waitfor "http://127.0.0.1:$NGINX_PORT/crm/rest/v1/account/profile"

export DATABASE_URL="$BENCH_DB_URL"
export CONNECTORD_ADDR="127.0.0.1:$CD_PORT"
export CONNECTORD_ENCRYPTION_KEY="$(head -c 32 /dev/urandom | base64)"
export CONNECTORD_INFUSIONSOFT_API_URL="http://127.0.0.1:$UP_PORT"
export CONNECTORD_KEAP_RATE_LIMIT_OFF=true # the benchmark's one key would otherwise be held to Keap's 10/s
"$WORK/connectord" orgs create --name Bench --email bench@example.test >"$WORK/org.json"
# BENCH_CONNECTORD_GOGC sets GOGC for connectord alone (an A/B of its collector setting).
${BENCH_CONNECTORD_GOGC:+env GOGC=$BENCH_CONNECTORD_GOGC} "$WORK/connectord" serve 2>"$WORK/connectord.log" &
CD_PID=$!
PIDS+=($CD_PID)
waitfor "http://127.0.0.1:$CD_PORT/readyz"

BASE="http://127.0.0.1:$CD_PORT"
USER_SECRET="$(jq -r .user.secret "$WORK/org.json")"
ORG_SECRET="$(jq -r .organization.secret "$WORK/org.json")"
TOKEN="$(curl -fsS -X POST -H "Authorization: User $USER_SECRET, Organization $ORG_SECRET" -H 'Content-Type: application/json' \
	-d "{\"element\":{\"key\":\"infusionsoftcrm\"},\"name\":\"bench\",\"configuration\":{\"authentication.type\":\"apikey\",\"infusionsoft.api.key\":\"$KEY\"}}" \
	"$BASE/instances" | jq -r .token)"
AUTH="User $USER_SECRET, Element $TOKEN"

HUB=()
if curl -fs -o /dev/null -H "Authorization: $AUTH" "$BASE/hubs/crm/contacts?pageSize=10"; then
	HUB=(-hub "/hubs/crm/contacts?pageSize=10")
else
	say "GET /hubs/crm/contacts does not answer 200 on this build: measuring the proxy only"
fi

{
	echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
	echo "versions: $(go version | cut -d' ' -f3), $("$NGINX" -v 2>&1 | cut -d' ' -f3), $(psql -tA "$DATABASE_URL" -c 'SHOW server_version'), connectord $(git describe --always --dirty 2>/dev/null || echo dev)"
	echo
} | tee "$WORK/result.md"
"$WORK/proxybench" load -direct "http://127.0.0.1:$UP_PORT" -nginx "http://127.0.0.1:$NGINX_PORT" -connectord "$BASE" \
	-key "$KEY" -auth "$AUTH" -upstream-pid "$UP_PID" -nginx-pid "$NGINX_PID" -connectord-pid "$CD_PID" \
	"${HUB[@]}" "$@" | tee -a "$WORK/result.md"
