#!/usr/bin/env bash
# The project's servers on loopback: Postgres (catalog, Dagster instance), Redis (celery broker) and
# QuestDB (production time-series store); and, installed but not started, Prometheus and Alertmanager for
# the monitoring tests (promtool, amtool).
#
#   scripts/services.sh up [SERVICE...]      install what is missing, start what does not answer, wait
#   scripts/services.sh down [SERVICE...]    stop them
#   scripts/services.sh status [SERVICE...]  one line per service; exit 1 if any is down
#   scripts/services.sh env      the variables the tests read (addresses, QuestDB's jar and Java), to eval
#
# Idempotent: a service that already answers is reused as it is. Postgres and Redis come from Debian,
# QuestDB from Maven Central (the server is one jar, checked against its SHA-1), run on the oldest Java of
# at least 17 under /usr/lib/jvm (9.3.x targets 17). QuestDB keeps its data in $TRADING_DATA_DIR/questdb.
# A service that cannot start makes `up` exit 1 with the tail of its log. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

QUESTDB_VERSION=9.3.4
QUESTDB_SHA1=4576dfb8e7f62a01a8e816d3bdf02ea4d39e3e7a
QUESTDB_JAVA_MIN=17
PG_PORT=5432
REDIS_PORT=6379
# QuestDB's ports: HTTP (REST, ILP/HTTP, /ping), PGWire, ILP/TCP, and the health-only HTTP server.
QUESTDB_HTTP_PORT=${QUESTDB_HTTP_PORT:-9000}
QUESTDB_PG_PORT=${QUESTDB_PG_PORT:-8812}
QUESTDB_ILP_PORT=${QUESTDB_ILP_PORT:-9009}
QUESTDB_MIN_HTTP_PORT=${QUESTDB_MIN_HTTP_PORT:-9003}

DATA_DIR=${TRADING_DATA_DIR:-$PWD/data}
QDB_ROOT=$DATA_DIR/questdb
QDB_JAR_DIR=${TRADING_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trading-assets}
QDB_JAR=$QDB_JAR_DIR/questdb-$QUESTDB_VERSION.jar
QDB_LOG=$QDB_ROOT/questdb.log
QDB_PID=$QDB_ROOT/questdb.pid
REDIS_DIR=$DATA_DIR/redis

log() { echo "services: $*" >&2; }  # stderr: `env` and `$(qdb_java)` print values on stdout
die() { echo "services: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $* from Debian"
  as_root apt-get update -q >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

fail_with_log() {  # fail_with_log NAME LOGFILE
  echo "services: $1 did not start; last lines of $2:" >&2
  tail -n 30 "$2" >&2 2>/dev/null || echo "(no log at $2)" >&2
  exit 1
}

wait_for() {  # wait_for SECONDS COMMAND...: true once COMMAND succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

# --- Postgres: Debian's cluster, trust for local TCP connections as postgres (the tests' server) ---
pg_ok() { pg_isready -h 127.0.0.1 -p $PG_PORT -q; }

pg_up() {
  if pg_ok; then log "postgres already answers on 127.0.0.1:$PG_PORT"; else
    command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
    local version hba conf
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    conf=/etc/postgresql/$version/main/postgresql.conf
    grep -q "^host all all 127.0.0.1/32 trust" "$hba" || as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    grep -q "^listen_addresses = '127.0.0.1'" "$conf" || echo "listen_addresses = '127.0.0.1'" | as_root tee -a "$conf" >/dev/null
    log "starting postgres $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for 60 pg_ok || fail_with_log postgres "/var/log/postgresql/postgresql-$version-main.log"
  fi
  psql -h 127.0.0.1 -p $PG_PORT -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
    | grep -q 1 || psql -h 127.0.0.1 -p $PG_PORT -U postgres -d postgres -qc "CREATE DATABASE test"
}

pg_down() {
  pg_ok || return 0
  local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main stop
}

# --- Redis: a non-persistent server on loopback (a broker's queue, nothing to keep) ---
redis_ok() { [ "$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping 2>/dev/null)" = PONG ]; }

redis_up() {
  command -v redis-server >/dev/null || apt_install redis-server
  if redis_ok; then log "redis already answers on 127.0.0.1:$REDIS_PORT"; return; fi
  mkdir -p "$REDIS_DIR"
  log "starting redis"
  redis-server --bind 127.0.0.1 --port $REDIS_PORT --daemonize yes --save '' --appendonly no \
    --dir "$REDIS_DIR" --logfile "$REDIS_DIR/redis.log" --pidfile "$REDIS_DIR/redis.pid" \
    || fail_with_log redis "$REDIS_DIR/redis.log"
  wait_for 30 redis_ok || fail_with_log redis "$REDIS_DIR/redis.log"
}

redis_down() { redis_ok && redis-cli -h 127.0.0.1 -p $REDIS_PORT shutdown nosave >/dev/null 2>&1 || true; }

# --- QuestDB: the server jar from Maven Central on a Java it supports ---
qdb_ok() { curl -sf -m 2 -o /dev/null "http://127.0.0.1:$QUESTDB_HTTP_PORT/ping"; }

java_version() { "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1; }

qdb_java() {  # the oldest java of at least QUESTDB_JAVA_MIN (the one the release targets), else Debian's
  local best="" best_v=1000 candidate v
  for candidate in ${JAVA_HOME:+$JAVA_HOME/bin/java} /usr/lib/jvm/*/bin/java "$(command -v java || true)"; do
    [ -x "$candidate" ] || continue
    v=$(java_version "$candidate"); [ -n "$v" ] || continue
    if [ "$v" -ge $QUESTDB_JAVA_MIN ] && [ "$v" -lt $best_v ]; then best=$candidate; best_v=$v; fi
  done
  if [ -z "$best" ]; then
    apt_install openjdk-17-jre-headless
    best=$(command -v java)
  fi
  echo "$best"
}

qdb_jar() {
  if [ -f "$QDB_JAR" ] && [ "$(sha1sum "$QDB_JAR" | cut -d' ' -f1)" = $QUESTDB_SHA1 ]; then return; fi
  mkdir -p "$QDB_JAR_DIR"
  local url=https://repo1.maven.org/maven2/org/questdb/questdb/$QUESTDB_VERSION/questdb-$QUESTDB_VERSION.jar
  log "downloading QuestDB $QUESTDB_VERSION from Maven Central"
  curl -sSfL -m 600 -o "$QDB_JAR.part" "$url" || die "cannot download $url"
  [ "$(sha1sum "$QDB_JAR.part" | cut -d' ' -f1)" = $QUESTDB_SHA1 ] || die "$url: SHA-1 mismatch"
  mv "$QDB_JAR.part" "$QDB_JAR"
}

qdb_up() {
  if qdb_ok; then log "questdb already answers on 127.0.0.1:$QUESTDB_HTTP_PORT"; return; fi
  qdb_jar
  local java; java=$(qdb_java)
  mkdir -p "$QDB_ROOT"
  log "starting questdb $QUESTDB_VERSION on $("$java" -version 2>&1 | head -n 1), data in $QDB_ROOT"
  # Light settings for a small machine: loopback only, few workers, 512 MB heap, no telemetry.
  # Any server.conf key can be given as QDB_<KEY>.
  env QDB_TELEMETRY_ENABLED=false \
    QDB_HTTP_BIND_TO=127.0.0.1:$QUESTDB_HTTP_PORT \
    QDB_HTTP_MIN_NET_BIND_TO=127.0.0.1:$QUESTDB_MIN_HTTP_PORT \
    QDB_PG_NET_BIND_TO=127.0.0.1:$QUESTDB_PG_PORT \
    QDB_LINE_TCP_NET_BIND_TO=127.0.0.1:$QUESTDB_ILP_PORT \
    QDB_LINE_UDP_ENABLED=false \
    QDB_SHARED_WORKER_COUNT=2 \
    QDB_HTTP_WORKER_COUNT=2 \
    QDB_WAL_APPLY_WORKER_COUNT=1 \
    QDB_HTTP_EXPORT_CONNECTION_LIMIT=16 \
    nohup "$java" -Xmx512m -XX:+UseParallelGC -p "$QDB_JAR" -m io.questdb/io.questdb.ServerMain \
    -d "$QDB_ROOT" >"$QDB_LOG" 2>&1 </dev/null &
  local pid=$! deadline=$((SECONDS + 90))
  echo $pid >"$QDB_PID"
  until qdb_ok; do
    if ! kill -0 $pid 2>/dev/null || [ $SECONDS -ge $deadline ]; then
      kill $pid 2>/dev/null || true
      rm -f "$QDB_PID"
      fail_with_log questdb "$QDB_LOG"
    fi
    sleep 0.5
  done
}

qdb_down() {
  local pid
  if [ -f "$QDB_PID" ]; then pid=$(cat "$QDB_PID"); else pid=$(pgrep -f "io.questdb.ServerMain -d $QDB_ROOT" || true); fi
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || { rm -f "$QDB_PID"; return 0; }
  kill -TERM "$pid"
  wait_for 60 bash -c "! kill -0 $pid" || kill -KILL "$pid"
  rm -f "$QDB_PID"
}

# --- Prometheus and Alertmanager: the monitoring tests' binaries (promtool, amtool), never started ---
prom_tools() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v amtool >/dev/null && return 0
  local packages=(--no-install-recommends prometheus prometheus-alertmanager)
  # Debian starts a package's service on install unless policy-rc.d refuses: the tests start their own.
  local policy=/usr/sbin/policy-rc.d
  if [ -e $policy ]; then apt_install "${packages[@]}"; return; fi
  printf '#!/bin/sh\nexit 101\n' | as_root tee $policy >/dev/null
  as_root chmod 755 $policy
  apt_install "${packages[@]}" || { as_root rm -f $policy; return 1; }
  as_root rm -f $policy
}

status_line() {  # status_line NAME CHECK ADDRESS
  if "$2"; then echo "$1: up ($3)"; else echo "$1: down"; return 1; fi
}

command=${1:-}
shift || true
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(postgres redis questdb)
for service in "${services[@]}"; do
  case $service in postgres|redis|questdb) ;; *) echo "services: unknown service $service" >&2; exit 2 ;; esac
done
wanted() { [[ " ${services[*]} " == *" $1 "* ]]; }

case "$command" in
  up)
    command -v curl >/dev/null || apt_install curl
    prom_tools
    ! wanted postgres || pg_up
    ! wanted redis || redis_up
    ! wanted questdb || qdb_up
    log "up: ${services[*]}"
    ;;
  down)
    ! wanted questdb || qdb_down
    ! wanted redis || redis_down
    ! wanted postgres || pg_down
    ;;
  status)
    rc=0
    ! wanted postgres || status_line postgres pg_ok "127.0.0.1:$PG_PORT" || rc=1
    ! wanted redis || status_line redis redis_ok "127.0.0.1:$REDIS_PORT" || rc=1
    ! wanted questdb || status_line questdb qdb_ok "http://127.0.0.1:$QUESTDB_HTTP_PORT" || rc=1
    exit $rc
    ;;
  env)
    # The live suites need these; TRADING_TEST_SERVICES=required turns a missing server into a failure.
    echo "QUESTDB_ADDR=127.0.0.1:$QUESTDB_HTTP_PORT"
    echo "QUESTDB_JAR=$QDB_JAR"
    echo "QUESTDB_JAVA=$(qdb_java)"
    echo "TRADING_TEST_SERVICES=required"
    ;;
  *) echo "usage: $0 up|down|status [postgres|redis|questdb ...] | env" >&2; exit 2 ;;
esac
