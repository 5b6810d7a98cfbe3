#!/usr/bin/env bash
# cluster/local-services.sh start|stop|status
#
# The tracking services of a cluster, on one machine and thrown away afterwards: a PostgreSQL 15
# cluster (initdb into a temporary folder, its own port, password auth on 127.0.0.1 only) and
# `mlflow server` with that database as its backend store and a served artifact store
# (--serve-artifacts: clients upload and download artifacts over HTTP, so Ray workers need no
# access to the artifact folder or bucket). A cluster operator runs the same mlflow command with
# their own database and bucket (README, "Running on a cluster").
#
#   cluster/local-services.sh start     # prints MLFLOW_TRACKING_URI=http://127.0.0.1:15000
#   eval "$(cluster/local-services.sh env)"
#   raysweep train configs/train-tiny.yaml      # logs to the server
#   cluster/local-services.sh stop      # stops both and deletes the database and artifacts
#
# Settings (environment):
#   RAYSWEEP_SERVICES_DIR  state folder: logs, pid files, artifacts, the env file (default /tmp/raysweep-services)
#   RAYSWEEP_PG_PORT       PostgreSQL port (default 15432)
#   RAYSWEEP_MLFLOW_PORT   MLflow server port (default 15000)
#   RAYSWEEP_PG_BIN        PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   RAYSWEEP_PG_USER       the unprivileged user PostgreSQL runs as when this script runs as root
#                          (initdb refuses root; default postgres if it exists, else nobody)
#   MLFLOW                 the mlflow executable (default: mlflow on PATH, else .venv/bin/mlflow)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${RAYSWEEP_SERVICES_DIR:-/tmp/raysweep-services}"
PG_PORT="${RAYSWEEP_PG_PORT:-15432}"
MLFLOW_PORT="${RAYSWEEP_MLFLOW_PORT:-15000}"
PG_BIN="${RAYSWEEP_PG_BIN:-/usr/lib/postgresql/15/bin}"
DB=mlflow
DB_USER=raysweep

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() { echo "local-services.sh: $*" >&2; exit 2; }

mlflow_bin() {
    if [[ -n "${MLFLOW:-}" ]]; then echo "$MLFLOW"
    elif command -v mlflow >/dev/null 2>&1; then command -v mlflow
    elif [[ -x "$REPO/.venv/bin/mlflow" ]]; then echo "$REPO/.venv/bin/mlflow"
    else die "mlflow not found; activate the project's virtualenv or set MLFLOW=/path/to/mlflow"
    fi
}

# Run a PostgreSQL server command as the unprivileged user when we are root.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_data() { cat "$STATE/pgdata.path" 2>/dev/null || true; }

mlflow_up() { [[ -f "$STATE/mlflow.pid" ]] && kill -0 "$(cat "$STATE/mlflow.pid")" 2>/dev/null; }

pg_up() { local d; d="$(pg_data)"; [[ -n "$d" && -d "$d/db" ]] && as_pg "$PG_BIN/pg_ctl" -D "$d/db" status >/dev/null 2>&1; }

start() {
    [[ -x "$PG_BIN/initdb" ]] || die "no PostgreSQL binaries in $PG_BIN; install PostgreSQL 15 (apt-get install postgresql-15) or set RAYSWEEP_PG_BIN"
    if mlflow_up || pg_up; then die "already running (state in $STATE); run: $0 stop"; fi
    port_free "$PG_PORT" || die "port $PG_PORT is taken; set RAYSWEEP_PG_PORT to a free port"
    port_free "$MLFLOW_PORT" || die "port $MLFLOW_PORT is taken; set RAYSWEEP_MLFLOW_PORT to a free port"
    local mlflow; mlflow="$(mlflow_bin)"
    rm -rf "$STATE"
    trap halt EXIT  # a start that fails half-way leaves nothing running (and its logs in $STATE)
    mkdir -p "$STATE/artifacts"
    # The data folder lives apart from $STATE: under root the unprivileged user must reach it, and
    # $STATE may sit below a folder only root can enter (pytest's, for one).
    local data; data="$(mktemp -d /tmp/raysweep-pg.XXXXXX)"
    echo "$data" > "$STATE/pgdata.path"
    local password; password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$password" > "$data/.pwfile"
    if [[ $(id -u) -eq 0 ]]; then chown -R "$PG_USER" "$data"; fi
    chmod 700 "$data"
    as_pg "$PG_BIN/initdb" -D "$data/db" -U "$DB_USER" --pwfile="$data/.pwfile" --auth-local=scram-sha-256 \
        --auth-host=scram-sha-256 --encoding=UTF8 --no-instructions >"$STATE/initdb.log" 2>&1 \
        || die "initdb failed; see $STATE/initdb.log"
    rm -f "$data/.pwfile"
    as_pg "$PG_BIN/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 60 \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $data" start >/dev/null \
        || die "PostgreSQL did not start; see $data/postgres.log"
    PGPASSWORD="$password" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$DB_USER" "$DB"
    local backend="postgresql://$DB_USER:$password@127.0.0.1:$PG_PORT/$DB"
    echo "$backend" > "$STATE/backend-store-uri"
    chmod 600 "$STATE/backend-store-uri"
    # setsid: mlflow and its server workers share one process group, stopped together.
    # MLflow 3's background job workers (GenAI jobs; raysweep uses none) would add 8 processes of
    # about 290 MB each: off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true is set.
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}" setsid "$mlflow" server --backend-store-uri "$backend" --artifacts-destination "$STATE/artifacts" \
        --serve-artifacts --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 2 \
        >"$STATE/mlflow.log" 2>&1 < /dev/null &
    echo $! > "$STATE/mlflow.pid"
    local uri="http://127.0.0.1:$MLFLOW_PORT"
    for _ in $(seq 1 240); do
        if curl -fsS "$uri/health" >/dev/null 2>&1; then
            echo "MLFLOW_TRACKING_URI=$uri" > "$STATE/env"
            echo "PostgreSQL 15 on 127.0.0.1:$PG_PORT (data $data/db), MLflow server $uri (artifacts $STATE/artifacts)"
            echo "MLFLOW_TRACKING_URI=$uri"
            trap - EXIT
            return 0
        fi
        mlflow_up || { tail -n 20 "$STATE/mlflow.log" >&2; die "mlflow server exited; see $STATE/mlflow.log"; }
        sleep 0.5
    done
    die "mlflow server did not answer $uri/health within 120 s; see $STATE/mlflow.log"
}

# Stop both services and delete the database; the logs in $STATE stay.
halt() {
    if mlflow_up; then
        local pid; pid="$(cat "$STATE/mlflow.pid")"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    local data; data="$(pg_data)"
    if [[ -n "$data" && -d "$data/db" ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n "$data" && "$data" == /tmp/raysweep-pg.* ]]; then rm -rf "$data"; fi
}

stop() {
    halt
    rm -rf "$STATE"
    echo "stopped; database and artifacts deleted"
}

status() {
    local ok=0
    if pg_up; then echo "postgresql: running on 127.0.0.1:$PG_PORT"; else echo "postgresql: stopped"; ok=3; fi
    if mlflow_up && curl -fsS "http://127.0.0.1:$MLFLOW_PORT/health" >/dev/null 2>&1; then
        echo "mlflow: running at http://127.0.0.1:$MLFLOW_PORT"
    else
        echo "mlflow: stopped"; ok=3
    fi
    return $ok
}

if [[ -z "${RAYSWEEP_PG_USER:-}" ]]; then
    if id postgres >/dev/null 2>&1; then PG_USER=postgres; else PG_USER=nobody; fi
else
    PG_USER="$RAYSWEEP_PG_USER"
fi

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) [[ -f "$STATE/env" ]] && sed 's/^/export /' "$STATE/env" || die "not running; run: $0 start" ;;
    -h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
