#!/usr/bin/env bash
# devdb.sh — make sure a PostgreSQL server is reachable for development and
# tests, and print shell `export` lines for DATABASE_URL and TEST_DATABASE_URL.
#
# Usage:
#   eval "$(scripts/devdb.sh)"      # find or start a server, export the URLs
#   scripts/devdb.sh stop           # stop the private cluster in .devdb/
#   scripts/devdb.sh status         # tell whether the private cluster runs
#
# Only the export lines go to stdout; every human message goes to stderr.
# Note: `eval "$(scripts/devdb.sh)"` cannot see a failure of this script (eval
# of an empty string succeeds). Callers that must stop on failure do
#   exports="$(scripts/devdb.sh)" && eval "$exports"
#
# Order in which a server is chosen:
#   (a) TEST_DATABASE_URL, then DATABASE_URL, when set and reachable;
#   (b) the default URL (below), when reachable — normally the machine's own
#       PostgreSQL on 127.0.0.1:5432;
#   (c) a private cluster in .devdb/ under the repository root: initdb once,
#       then `pg_ctl start` on 127.0.0.1:55432 (trust auth, unix socket inside
#       .devdb/, log in .devdb/postgres.log); reused when already running.
#
# Environment knobs (all optional):
#   CONNECTORD_DEVDB_DEFAULT_URL   overrides the URL tried in (b); default
#       postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
#       (point it at an unreachable port to force the private cluster).
#   CONNECTORD_DEVDB_PGBIN_SEARCH  space-separated glob patterns of directories
#       searched for initdb/pg_ctl when they are not on PATH; newest version
#       first; default "/usr/lib/postgresql/*/bin". Set it to "" to search
#       nothing but PATH.
#   CONNECTORD_DEVDB_DIR           where the private cluster lives;
#       default <repo>/.devdb
#   CONNECTORD_DEVDB_PORT          port of the private cluster; default 55432
#   CONNECTORD_DEVDB_USER          when run as root: the OS user that runs the
#       private cluster (created with useradd -r when missing); default below.
#
# initdb refuses to run as root. As root, the private cluster is run as the
# owner of an existing .devdb/data, else as the `postgres` OS user when it
# exists, else as a system user `connectord-pg` that this script creates.
set -euo pipefail

log() { printf 'devdb: %s\n' "$*" >&2; }
die() {
	local line
	for line in "$@"; do printf 'devdb: %s\n' "$line" >&2; done
	exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DEFAULT_URL="${CONNECTORD_DEVDB_DEFAULT_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"
PGBIN_SEARCH="${CONNECTORD_DEVDB_PGBIN_SEARCH-/usr/lib/postgresql/*/bin}"
DEVDB_DIR="${CONNECTORD_DEVDB_DIR:-$ROOT/.devdb}"
DEVDB_PORT="${CONNECTORD_DEVDB_PORT:-55432}"
DATA_DIR="$DEVDB_DIR/data"
LOG_FILE="$DEVDB_DIR/postgres.log"
PRIVATE_URL="postgres://postgres@127.0.0.1:${DEVDB_PORT}/postgres?sslmode=disable"
FALLBACK_USER="connectord-pg"

# ---------------------------------------------------------------------------
# Output

# shell_quote prints $1 single-quoted for safe use in eval.
shell_quote() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

emit_exports() {
	printf 'export DATABASE_URL=%s\n' "$(shell_quote "$1")"
	printf 'export TEST_DATABASE_URL=%s\n' "$(shell_quote "$2")"
}

# ---------------------------------------------------------------------------
# Reachability

# url_host_port prints "host port" for a postgres URL or key=value DSN.
url_host_port() {
	local url=$1 host="" port=""
	if [[ $url =~ ^postgres(ql)?://([^@/?]*@)?(\[[^]]*\]|[^:/?]*)(:([0-9]+))? ]]; then
		host=${BASH_REMATCH[3]}
		port=${BASH_REMATCH[5]}
		host=${host#[}
		host=${host%]}
		if [[ $url =~ [?\&]host=([^\&]*) ]]; then host=${BASH_REMATCH[1]//%2[Ff]//}; fi
		if [[ $url =~ [?\&]port=([0-9]+) ]]; then port=${BASH_REMATCH[1]}; fi
	else
		if [[ $url =~ (^|[[:space:]])host=([^[:space:]]+) ]]; then host=${BASH_REMATCH[2]}; fi
		if [[ $url =~ (^|[[:space:]])port=([0-9]+) ]]; then port=${BASH_REMATCH[2]}; fi
	fi
	printf '%s %s\n' "${host:-${PGHOST:-}}" "${port:-${PGPORT:-5432}}"
}

# reachable URL: 0 when a PostgreSQL server answers at URL.
reachable() {
	local url=$1
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -t 3 -d "$url" >/dev/null 2>&1
		return
	fi
	local host port
	read -r host port < <(url_host_port "$url")
	if [[ -z $host || $host == /* ]]; then
		# Unix socket: look for the socket file.
		local dir=${host:-/var/run/postgresql}
		[[ -S $dir/.s.PGSQL.$port ]]
		return
	fi
	if command -v timeout >/dev/null 2>&1; then
		timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" >/dev/null 2>&1
	else
		bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" >/dev/null 2>&1
	fi
}

# redact hides a password in a URL for messages.
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# ---------------------------------------------------------------------------
# Private cluster helpers

# find_pgbin prints the directory holding both initdb and pg_ctl.
# Prefers the version of an existing data dir, then PATH, then the newest
# directory matching CONNECTORD_DEVDB_PGBIN_SEARCH.
find_pgbin() {
	local dirs=() d pattern want=""
	if [[ -f $DATA_DIR/PG_VERSION ]]; then want=$(<"$DATA_DIR/PG_VERSION") || want=""; fi

	local p
	if p=$(command -v initdb 2>/dev/null) && [[ -n $p ]]; then
		p=$(readlink -f "$p" 2>/dev/null || printf '%s' "$p")
		dirs+=("$(dirname "$p")")
	fi
	local found=()
	for pattern in $PGBIN_SEARCH; do
		for d in $pattern; do
			[[ -d $d ]] && found+=("$d")
		done
	done
	if ((${#found[@]})); then
		while IFS= read -r d; do dirs+=("$d"); done < <(printf '%s\n' "${found[@]}" | sort -r -V -u)
	fi

	if [[ -n $want ]]; then
		for d in "${dirs[@]}"; do
			if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && "$d/pg_ctl" --version 2>/dev/null | grep -Eq "[[:space:]]${want}([.[:space:]]|$)"; then
				printf '%s\n' "$d"
				return 0
			fi
		done
	fi
	for d in "${dirs[@]}"; do
		if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	return 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# run_user prints the OS user that must run initdb/pg_ctl when we are root.
run_user() {
	if [[ -n ${CONNECTORD_DEVDB_USER:-} ]]; then
		printf '%s\n' "$CONNECTORD_DEVDB_USER"
		return
	fi
	if [[ -d $DATA_DIR ]]; then
		local owner
		owner=$(stat -c %U "$DATA_DIR")
		if [[ $owner != root && $owner != UNKNOWN ]]; then
			printf '%s\n' "$owner"
			return
		fi
	fi
	if id -u postgres >/dev/null 2>&1; then
		printf 'postgres\n'
	else
		printf '%s\n' "$FALLBACK_USER"
	fi
}

ensure_user() {
	local user=$1
	id -u "$user" >/dev/null 2>&1 && return 0
	command -v useradd >/dev/null 2>&1 || die "cannot create OS user '$user': useradd not found" \
		"fix: create a non-root user for PostgreSQL, or set DATABASE_URL to a reachable server"
	log "creating system user '$user' to run the private PostgreSQL cluster (initdb refuses root)"
	useradd -r -M -d /nonexistent -s /usr/sbin/nologin -c "connectord dev PostgreSQL" "$user" >&2 ||
		die "useradd $user failed"
}

# as_pg CMD...: run CMD as the cluster's OS user (root) or as ourselves.
as_pg() {
	if [[ -n ${PG_USER:-} ]]; then
		if command -v runuser >/dev/null 2>&1; then
			(cd / && runuser -u "$PG_USER" -- "$@")
		else
			local cmd="" a
			for a in "$@"; do cmd+=" $(shell_quote "$a")"; done
			(cd / && su -s /bin/sh "$PG_USER" -c "exec$cmd")
		fi
	else
		"$@"
	fi
}

cluster_running() {
	[[ -f $DATA_DIR/PG_VERSION ]] || return 1
	as_pg "$PGBIN/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1
}

setup_identity() {
	PG_USER=""
	if is_root; then
		PG_USER=$(run_user)
		ensure_user "$PG_USER"
	fi
}

start_private_cluster() {
	# A fresh machine has only Go: as root with apt-get, install Debian's
	# postgresql package (its initdb/pg_ctl; the cluster is ours, in .devdb/).
	if ! PGBIN=$(find_pgbin) && is_root && command -v apt-get >/dev/null 2>&1; then
		echo "devdb: installing Debian's postgresql package (apt-get update && apt-get install -y postgresql)" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update >&2 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2 || true
	fi
	if ! PGBIN=$(find_pgbin); then
		die "no PostgreSQL server is reachable, and initdb/pg_ctl were not found to start a private one." \
			"  tried: \$TEST_DATABASE_URL / \$DATABASE_URL ($( [[ -n ${TEST_DATABASE_URL:-}${DATABASE_URL:-} ]] && echo 'set but unreachable' || echo 'not set')), $(redact "$DEFAULT_URL")" \
			"  searched for initdb and pg_ctl on PATH and in: ${PGBIN_SEARCH:-<nothing>}" \
			"fix one of:" \
			"  - install PostgreSQL: apt-get install postgresql   (with sudo when not root; this script then starts a private cluster in .devdb/)" \
			"  - set DATABASE_URL to a reachable server, e.g. export DATABASE_URL='postgres://user:pass@host:5432/db?sslmode=disable'"
	fi
	setup_identity

	mkdir -p "$DEVDB_DIR"
	if [[ -n $PG_USER ]]; then
		chown "$PG_USER" "$DEVDB_DIR"
		chmod 0700 "$DEVDB_DIR"
		if ! as_pg test -w "$DEVDB_DIR" -a -x "$DEVDB_DIR"; then
			die "OS user '$PG_USER' cannot reach $DEVDB_DIR (a parent directory is closed to it, e.g. /root)." \
				"fix: set CONNECTORD_DEVDB_DIR to a directory it can reach (e.g. /var/tmp/connectord-devdb), or set DATABASE_URL to a reachable server"
		fi
	fi

	if [[ ! -f $DATA_DIR/PG_VERSION ]]; then
		log "initialising private cluster in $DATA_DIR (as ${PG_USER:-$(id -un)}, with $PGBIN)"
		rm -rf "$DATA_DIR"
		if ! as_pg "$PGBIN/initdb" -D "$DATA_DIR" -U postgres --auth=trust -E UTF8 --no-locale >"$DEVDB_DIR/initdb.log" 2>&1; then
			cat "$DEVDB_DIR/initdb.log" >&2 || true
			die "initdb failed (output above, also in $DEVDB_DIR/initdb.log)"
		fi
	fi
	if [[ -n $PG_USER ]]; then
		# Keep everything owned by the cluster's user (a root-run earlier step may have left files).
		chown -R "$PG_USER" "$DEVDB_DIR"
	fi

	if cluster_running; then
		log "private cluster already running ($DATA_DIR)"
	else
		# Unix socket inside .devdb unless its path is too long (108 bytes
		# max) or unsafe to quote; then TCP only.
		local sockdir=$DEVDB_DIR
		if (( ${#sockdir} + 20 > 100 )) || [[ $sockdir == *"'"* ]]; then sockdir=""; fi
		log "starting private cluster on 127.0.0.1:$DEVDB_PORT (log: $LOG_FILE)"
		if ! as_pg "$PGBIN/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 -s \
			-o "-p $DEVDB_PORT -c listen_addresses=127.0.0.1 -k '$sockdir'" >&2; then
			tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
			die "pg_ctl start failed (log tail above; full log $LOG_FILE)" \
				"hint: is port $DEVDB_PORT taken? set CONNECTORD_DEVDB_PORT to another port"
		fi
	fi

	local i
	for ((i = 0; i < 30; i++)); do
		reachable "$PRIVATE_URL" && return 0
		sleep 1
	done
	die "private cluster in $DATA_DIR runs but $PRIVATE_URL does not answer; see $LOG_FILE" \
		"hint: another server may hold port $DEVDB_PORT; stop it or set CONNECTORD_DEVDB_PORT"
}

# ---------------------------------------------------------------------------
# Subcommands

cmd_stop() {
	if [[ ! -f $DATA_DIR/PG_VERSION ]]; then
		log "no private cluster in $DATA_DIR"
		return 0
	fi
	PGBIN=$(find_pgbin) || die "pg_ctl not found; cannot stop the cluster in $DATA_DIR"
	setup_identity
	if cluster_running; then
		as_pg "$PGBIN/pg_ctl" stop -D "$DATA_DIR" -m fast -w -s >&2
		log "stopped private cluster ($DATA_DIR)"
	else
		log "private cluster is not running ($DATA_DIR)"
	fi
}

cmd_status() {
	if [[ ! -f $DATA_DIR/PG_VERSION ]]; then
		log "no private cluster in $DATA_DIR"
		return 3
	fi
	PGBIN=$(find_pgbin) || die "pg_ctl not found"
	setup_identity
	if cluster_running; then
		log "private cluster running on 127.0.0.1:$DEVDB_PORT ($DATA_DIR)"
	else
		log "private cluster stopped ($DATA_DIR)"
		return 3
	fi
}

cmd_ensure() {
	# (a) explicit URLs.
	local test_ok="" db_ok=""
	if [[ -n ${TEST_DATABASE_URL:-} ]]; then
		if reachable "$TEST_DATABASE_URL"; then test_ok=1; else log "TEST_DATABASE_URL is set but not reachable: $(redact "$TEST_DATABASE_URL")"; fi
	fi
	if [[ -n ${DATABASE_URL:-} ]]; then
		if [[ ${DATABASE_URL} == "${TEST_DATABASE_URL:-}" ]]; then
			db_ok=$test_ok
		elif reachable "$DATABASE_URL"; then db_ok=1; else log "DATABASE_URL is set but not reachable: $(redact "$DATABASE_URL")"; fi
	fi
	if [[ -n $test_ok || -n $db_ok ]]; then
		local first
		if [[ -n $test_ok ]]; then first=$TEST_DATABASE_URL; else first=$DATABASE_URL; fi
		local db=$first test=$first
		[[ -n $db_ok ]] && db=$DATABASE_URL
		[[ -n $test_ok ]] && test=$TEST_DATABASE_URL
		log "using server from environment: $(redact "$first")"
		emit_exports "$db" "$test"
		return 0
	fi

	# (b) the default local server.
	if reachable "$DEFAULT_URL"; then
		log "using local server: $(redact "$DEFAULT_URL")"
		emit_exports "$DEFAULT_URL" "$DEFAULT_URL"
		return 0
	fi

	# (c) private cluster.
	log "no server at $(redact "$DEFAULT_URL"); trying a private cluster in $DEVDB_DIR"
	start_private_cluster
	log "using private cluster: $PRIVATE_URL (stop it with: scripts/devdb.sh stop)"
	emit_exports "$PRIVATE_URL" "$PRIVATE_URL"
}

case "${1:-}" in
"" | start | env) cmd_ensure ;;
stop) cmd_stop ;;
status) cmd_status ;;
-h | --help | help)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	;;
*) die "unknown command '$1' (use: scripts/devdb.sh [stop|status])" ;;
esac
