#!/bin/sh
# Backup job of the conduit chart (POSIX sh; no tool beyond what the public images carry).
#
#   backup.sh dump     in the official postgres image: pg_dump (custom format) inside a
#                      REPEATABLE READ snapshot, per-table row counts and checksums computed in the
#                      same snapshot (table-stats.sql), sha256sum, manifest.json written last.
#   backup.sh upload   in the public rclone/rclone image: uploads dump.pgc, then manifest.json.
#
# Both steps share BACKUP_DIR (an emptyDir). The layout matches `scripts/backup.ts`:
#   <dest>/<id>/dump.pgc, <dest>/<id>/manifest.json (last), id = YYYYMMDDTHHMMSSZ-<6 hex>.
#
# Environment (secrets only ever in the environment, never in arguments):
#   dump:   PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE (libpq), BACKUP_DIR (default /backup),
#           BACKUP_STATS_SQL (default: table-stats.sql next to this script),
#           BACKUP_RELEASE BACKUP_NAMESPACE BACKUP_REVISION (recorded in the manifest, optional),
#           BACKUP_ID_TAG (optional, up to 10 lowercase letters: starts the id's suffix, e.g.
#           `preupgrade` gives 20260301T031500Z-preupgrade3fa2c1), BACKUP_KIND (source.kind in
#           the manifest: cronjob by default, pre-upgrade for the Helm hook)
#   upload: BACKUP_DIR, BACKUP_DEST (s3://bucket/prefix), AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY,
#           AWS_ENDPOINT_URL (S3-compatible servers; empty for AWS), AWS_REGION (default us-east-1)
set -eu

BACKUP_DIR=${BACKUP_DIR:-/backup}
here=$(cd "$(dirname "$0")" && pwd)

log() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A JSON string literal for a value from a program (escapes backslashes and double quotes).
json_string() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\n\r')"; }

dump() {
  stats_sql=${BACKUP_STATS_SQL:-$here/table-stats.sql}
  [ -r "$stats_sql" ] || die "table statistics SQL not found: $stats_sql"
  [ -n "${PGHOST:-}" ] || die "PGHOST must be set"
  [ -n "${PGDATABASE:-}" ] || die "PGDATABASE must be set"
  command -v pg_dump >/dev/null || die "pg_dump must be on PATH"
  command -v psql >/dev/null || die "psql must be on PATH"

  started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  tag=${BACKUP_ID_TAG:-}
  case "$tag" in *[!a-z]*) die "BACKUP_ID_TAG must be lowercase letters only (got '$tag')" ;; esac
  [ ${#tag} -le 10 ] || die "BACKUP_ID_TAG must be at most 10 letters (got '$tag')"
  kind=${BACKUP_KIND:-cronjob}
  case "$kind" in cronjob | pre-upgrade) ;; *) die "BACKUP_KIND must be cronjob or pre-upgrade (got '$kind')" ;; esac
  suffix="$tag$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
  id="$(date -u +%Y%m%dT%H%M%SZ)-$suffix"
  out="$BACKUP_DIR/$id"
  mkdir -p "$out"
  work=$(mktemp -d)
  psql_pid=
  cleanup() {
    if [ -n "$psql_pid" ]; then kill "$psql_pid" 2>/dev/null || true; fi
    rm -rf "$work"
  }
  trap cleanup EXIT INT TERM

  # One psql session holds the snapshot: it exports it for pg_dump and computes the statistics.
  mkfifo "$work/in" "$work/out"
  psql --no-psqlrc --quiet --no-align --tuples-only --set ON_ERROR_STOP=1 <"$work/in" >"$work/out" 2>"$work/psql.err" &
  psql_pid=$!
  exec 3>"$work/in"
  exec 4<"$work/out"
  printf '%s\n' 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;' \
    'SELECT pg_catalog.pg_export_snapshot();' \
    'SELECT pg_catalog.to_json(pg_catalog.current_database());' \
    "SELECT pg_catalog.to_json(pg_catalog.current_setting('server_version'));" >&3
  read -r snapshot <&4 || die "could not open a snapshot: $(cat "$work/psql.err")"
  read -r database_json <&4 || die "could not read the database name: $(cat "$work/psql.err")"
  read -r server_json <&4 || die "could not read the server version: $(cat "$work/psql.err")"
  log "snapshot $snapshot exported; dumping $PGDATABASE on $PGHOST into $out"
  printf '\\i %s\n' "$stats_sql" >&3

  pg_dump --format=custom --no-password --snapshot="$snapshot" --file="$out/dump.pgc" || die "pg_dump failed"
  read -r tables <&4 || die "table statistics failed: $(cat "$work/psql.err")"
  printf 'COMMIT;\n\\q\n' >&3
  exec 3>&- 4<&-
  wait "$psql_pid" || die "psql session failed: $(cat "$work/psql.err")"
  psql_pid=

  size=$(wc -c <"$out/dump.pgc" | tr -d ' ')
  sha=$(sha256sum "$out/dump.pgc" | cut -d ' ' -f 1)
  finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  pgdump_version=$(pg_dump --version | sed 's/^pg_dump (PostgreSQL) //')
  source="\"kind\": \"$kind\""
  [ -n "${BACKUP_RELEASE:-}" ] && source="$source, \"release\": $(json_string "$BACKUP_RELEASE")"
  [ -n "${BACKUP_NAMESPACE:-}" ] && source="$source, \"namespace\": $(json_string "$BACKUP_NAMESPACE")"
  case "${BACKUP_REVISION:-}" in '' | *[!0-9]*) ;; *) source="$source, \"revision\": $BACKUP_REVISION" ;; esac
  cat >"$out/manifest.json.partial" <<EOF
{
  "format": "conduit-backup/v1",
  "id": "$id",
  "database": $database_json,
  "serverVersion": $server_json,
  "pgDumpVersion": $(json_string "$pgdump_version"),
  "startedAt": "$started",
  "finishedAt": "$finished",
  "dump": { "file": "dump.pgc", "format": "custom", "size": $size, "sha256": "$sha" },
  "tables": $tables,
  "source": { $source }
}
EOF
  mv "$out/manifest.json.partial" "$out/manifest.json"
  printf '%s\n' "$id" >"$BACKUP_DIR/backup-id"
  log "dump $id done: $size bytes, sha256 $sha"
}

upload() {
  command -v rclone >/dev/null || die "rclone must be on PATH"
  [ -r "$BACKUP_DIR/backup-id" ] || die "no finished dump in $BACKUP_DIR (the dump step failed?)"
  id=$(cat "$BACKUP_DIR/backup-id")
  src="$BACKUP_DIR/$id"
  [ -f "$src/manifest.json" ] || die "dump $id has no manifest in $BACKUP_DIR (the dump step failed?)"
  [ -f "$src/dump.pgc" ] || die "dump $id has no dump.pgc in $BACKUP_DIR"
  case "${BACKUP_DEST:-}" in
    s3://?*) dest=${BACKUP_DEST#s3://} ;;
    *) die "BACKUP_DEST must be s3://bucket/prefix (got '${BACKUP_DEST:-}')" ;;
  esac
  dest=${dest%/}
  # An rclone remote defined by environment only; credentials come from AWS_* (env_auth).
  export RCLONE_CONFIG_BACKUPDEST_TYPE=s3
  export RCLONE_CONFIG_BACKUPDEST_PROVIDER="${BACKUP_S3_PROVIDER:-Other}"
  export RCLONE_CONFIG_BACKUPDEST_ENV_AUTH=true
  export RCLONE_CONFIG_BACKUPDEST_REGION="${AWS_REGION:-us-east-1}"
  if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
    export RCLONE_CONFIG_BACKUPDEST_ENDPOINT="$AWS_ENDPOINT_URL"
    export RCLONE_CONFIG_BACKUPDEST_FORCE_PATH_STYLE=true
  fi
  export RCLONE_CONFIG="${RCLONE_CONFIG:-/dev/null}"
  # The dump first, the manifest last: a reader sees a backup as valid only once both are there.
  log "uploading $id to s3://$dest/$id/"
  rclone copyto --s3-no-check-bucket --retries 3 "$src/dump.pgc" "backupdest:$dest/$id/dump.pgc" || die "upload of dump.pgc failed"
  rclone copyto --s3-no-check-bucket --retries 3 "$src/manifest.json" "backupdest:$dest/$id/manifest.json" || die "upload of manifest.json failed"
  log "uploaded $id"
}

case "${1:-}" in
  dump) dump ;;
  upload) upload ;;
  *) die "usage: backup.sh dump|upload" ;;
esac
