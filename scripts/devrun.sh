#!/usr/bin/env bash
# devrun.sh — run connectord locally for development (`make run`).
#
# - finds or starts PostgreSQL (scripts/devdb.sh) and exports DATABASE_URL;
# - keeps a dev encryption key in .dev/encryption.key (made once);
# - builds bin/connectord, runs its migrations;
# - creates a dev organization and user once per database (.dev/org.json,
#   with the DATABASE_URL it belongs to in .dev/org.db) and prints their
#   secrets and a ready-to-paste Authorization header;
# - stores the sandbox's Keap app for the dev organization once the server
#   answers (with curl, in the background), for the hosted connect flow;
# - then execs `bin/connectord serve --sandbox` (extra arguments are passed on).
#
# Defaults you can override in the environment: CONNECTORD_ADDR
# (127.0.0.1:8080), CONNECTORD_PUBLIC_URL (http://localhost:<port of ADDR>),
# CONNECTORD_LOG_FORMAT (console).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"

log() { printf 'devrun: %s\n' "$*" >&2; }

exports="$(scripts/devdb.sh)" || { log "no database available (see above)"; exit 1; }
eval "$exports"

# Keep the dev data in its own database rather than the server's maintenance
# database "postgres" (when psql is there to create it).
if [[ $DATABASE_URL == */postgres || $DATABASE_URL == */postgres\?* ]] && command -v psql >/dev/null 2>&1; then
	base="${DATABASE_URL%%\?*}"
	dev_url="${base%/postgres}/connectord_dev${DATABASE_URL#"$base"}"
	if ! psql "$dev_url" -Atqc 'select 1' >/dev/null 2>&1; then
		psql "$DATABASE_URL" -qc 'CREATE DATABASE connectord_dev' >/dev/null && log "created database connectord_dev"
	fi
	export DATABASE_URL="$dev_url"
fi

mkdir -p .dev
chmod 0700 .dev

# Encryption key: base64 of 32 random bytes, made once.
if [[ ! -s .dev/encryption.key ]]; then
	(umask 077 && head -c 32 /dev/urandom | base64 >.dev/encryption.key.tmp)
	mv .dev/encryption.key.tmp .dev/encryption.key
	log "created .dev/encryption.key"
fi
CONNECTORD_ENCRYPTION_KEY="$(tr -d '\n' <.dev/encryption.key)"
export CONNECTORD_ENCRYPTION_KEY

export CONNECTORD_ADDR="${CONNECTORD_ADDR:-127.0.0.1:8080}"
port="${CONNECTORD_ADDR##*:}"
[[ $port =~ ^[0-9]+$ ]] || port=8080
export CONNECTORD_PUBLIC_URL="${CONNECTORD_PUBLIC_URL:-http://localhost:${port}}"
export CONNECTORD_LOG_FORMAT="${CONNECTORD_LOG_FORMAT:-console}"
# In the sandbox, event callbacks to this machine are what one wants to try.
export CONNECTORD_CALLBACK_ALLOW_PRIVATE="${CONNECTORD_CALLBACK_ALLOW_PRIVATE:-true}"

log "building bin/connectord"
go build -o bin/connectord ./cmd/connectord

log "migrating the database"
bin/connectord migrate

# Dev organization: one per database. org.db records which DATABASE_URL
# org.json was made against; a different database gets a fresh one.
if [[ ! -s .dev/org.json || ! -f .dev/org.db || "$(<.dev/org.db)" != "$DATABASE_URL" ]]; then
	log "creating dev organization"
	(umask 077 && bin/connectord orgs create --name dev --email dev@localhost >.dev/org.json.tmp)
	mv .dev/org.json.tmp .dev/org.json
	(umask 077 && printf '%s' "$DATABASE_URL" >.dev/org.db)
fi

# The JSON is one line: {"organization":{"id":…,"name":…,"secret":…},"user":{"id":…,"email":…,"secret":…}}
json="$(tr -d '\n' <.dev/org.json)"
# field OBJECT KEY: the string (or bare) value of KEY inside {"OBJECT":{...}}.
field() {
	sed -n -E "s/.*\"$1\"[[:space:]]*:[[:space:]]*\{[^}]*\"$2\"[[:space:]]*:[[:space:]]*(\"([^\"]*)\"|([^,}[:space:]]*)).*/\2\3/p" <<<"$json"
}
org_id="$(field organization id)"
org_secret="$(field organization secret)"
user_email="$(field user email)"
user_secret="$(field user secret)"

{
	echo
	echo "== connectord dev ======================================================"
	echo "  API:           $CONNECTORD_PUBLIC_URL   (listening on $CONNECTORD_ADDR)"
	echo "  database:      $DATABASE_URL"
	if [[ -n $org_secret && -n $user_secret ]]; then
		echo "  organization:  $org_id   secret: $org_secret"
		echo "  user:          $user_email   secret: $user_secret"
		echo "  header:"
		echo "    Authorization: User $user_secret, Organization $org_secret"
		echo "  for the README's curl journey, in another terminal:"
		echo "    export USER_SECRET=$user_secret ORG_SECRET=$org_secret"
		echo "  console:       $CONNECTORD_PUBLIC_URL/console   (sign in with the secrets above)"
		echo "  connect:       the organization's Keap app is the sandbox's (stored once the"
		echo "                 server answers); POST /connect/sessions and open its connectUrl:"
		echo "                 the fake Keap shows Allow and Deny (README: Connect (hosted flow))"
	else
		echo "  (could not read the secrets from .dev/org.json; see that file)"
	fi
	echo "  (delete .dev/org.json to make a new dev organization)"
	echo "========================================================================"
	echo
} >&2

# The hosted connect flow needs the organization's Keap app: in the sandbox,
# the fake Keap's made-up one, stored for every element once the server answers.
if [[ -n $org_secret && -n $user_secret ]] && command -v curl >/dev/null 2>&1; then
	(
		for _ in $(seq 1 150); do
			curl -fsS -o /dev/null "$CONNECTORD_PUBLIC_URL/healthz" 2>/dev/null && break
			sleep 0.2
		done
		for el in infusionsoftcrm infusionsoftmarketing infusionsoftecommerce infusionsoftrest; do
			curl -fsS -o /dev/null -X PUT -H "Authorization: User $user_secret, Organization $org_secret" \
				-H 'Content-Type: application/json' -d '{"apiKey": "sandbox-client-id", "apiSecret": "sandbox-client-secret"}' \
				"$CONNECTORD_PUBLIC_URL/organizations/elements/$el/oauth/app" ||
				{ log "could not store the sandbox's Keap app for $el (see the server's log)"; exit 0; }
		done
		log "stored the sandbox's Keap app for the dev organization: connect sessions work"
	) &
fi

exec bin/connectord serve --sandbox "$@"
