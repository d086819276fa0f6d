#!/usr/bin/env bash
# A real S3 API server for the archive tests: moto's server mode (PyPI), on loopback.
#
#   scripts/s3-test-server.sh install                 # only make sure the venv is there
#   scripts/s3-test-server.sh start [--port P] [--watch PID] [--log FILE]
#
# `start` prints one line `port=P pid=PID log=FILE` once the server answers, and exits; the
# caller stops the server with `kill PID`. With `--watch PID` the server is also stopped
# when that process (a test binary killed before it could clean up) is gone.
#
# moto accepts any access key unless `INITIAL_NO_AUTH_ACTION_COUNT=N` is in the environment:
# then the first N requests are free and every later one must be signed with an access key
# made through moto's IAM (the wrong-credentials test uses that).
#
# The venv lives under target/ (SMART_FETCH_TEST_VENVS overrides), is made once (uv
# resolves the boto3/botocore pins in seconds where plain pip takes minutes) and is reused;
# concurrent callers wait on one lock. Needs python3 with venv and network access to PyPI
# on the first run.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENVS="${SMART_FETCH_TEST_VENVS:-$ROOT/target/test-venvs}"
VENV="$VENVS/moto"
PYTHON="${PYTHON:-python3}"
MOTO_VERSION="5.2.5"
BOTO3_VERSION="1.44.5"

install() {
    mkdir -p "$VENVS"
    exec 9>"$VENVS/moto.lock"
    flock 9
    if [[ -f "$VENV/.installed-$MOTO_VERSION" ]]; then
        return
    fi
    rm -rf "$VENV"
    echo "Installing moto $MOTO_VERSION into $VENV (once)..." >&2
    "$PYTHON" -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check uv >&2
    "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" \
        "moto[server]==$MOTO_VERSION" "boto3==$BOTO3_VERSION" >&2
    touch "$VENV/.installed-$MOTO_VERSION"
    exec 9>&-
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local port="" watch="" log=""
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --watch) watch="$2"; shift 2 ;;
            --log) log="$2"; shift 2 ;;
            *) echo "unknown option: $1" >&2; exit 2 ;;
        esac
    done
    install
    [[ -n "$port" ]] || port="$(free_port)"
    [[ -n "$log" ]] || log="$VENVS/moto-$port.log"
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 </dev/null &
    local pid=$!
    # Wait until it answers (a few seconds at most on a loaded machine).
    local ok=""
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "moto_server exited at start; its log ($log):" >&2
            cat "$log" >&2
            exit 1
        fi
        if "$VENV/bin/python" -c "import urllib.request, sys
try:
    urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)
except Exception as e:
    sys.exit(0 if hasattr(e, 'code') else 1)" 2>/dev/null; then
            ok=1
            break
        fi
        sleep 0.1
    done
    if [[ -z "$ok" ]]; then
        kill "$pid" 2>/dev/null || true
        echo "moto_server did not answer on port $port within 30 s; its log ($log):" >&2
        cat "$log" >&2
        exit 1
    fi
    if [[ -n "$watch" ]]; then
        (
            while kill -0 "$watch" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
            kill "$pid" 2>/dev/null || true
        ) >/dev/null 2>&1 </dev/null &
    fi
    echo "port=$port pid=$pid log=$log"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    *) echo "usage: $0 install | start [--port P] [--watch PID] [--log FILE]" >&2; exit 2 ;;
esac
