#!/usr/bin/env bash
# Run scripts/etl-check.py (Cumulus ETL's own loader over leaf folders, local or in S3) in a
# venv with cumulus-etl, made on first use under target/ (SMART_FETCH_TEST_VENVS overrides):
# about 1.3 GB and half a minute with uv (plain pip backtracks on boto3 for many minutes).
#
#   scripts/etl-check.sh install
#   scripts/etl-check.sh LOCAL_LEAF_FOLDER s3://bucket/prefix/GROUP/LEAF/    # exit 0 if equal
#   scripts/etl-check.sh --rows LEAF_FOLDER ...    # also every row the ETL read, by id
#
# S3 credentials, region and endpoint come from the environment (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL), as for cumulus-etl itself.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENVS="${SMART_FETCH_TEST_VENVS:-$ROOT/target/test-venvs}"
VENV="$VENVS/etl"
PYTHON="${PYTHON:-python3}"
ETL_VERSION="4.3.6"

install() {
    mkdir -p "$VENVS"
    exec 9>"$VENVS/etl.lock"
    flock 9
    if [[ -f "$VENV/.installed-$ETL_VERSION" ]]; then
        return
    fi
    rm -rf "$VENV"
    echo "Installing cumulus-etl $ETL_VERSION into $VENV (once, about 1.3 GB)..." >&2
    "$PYTHON" -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check uv >&2
    "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" "cumulus-etl==$ETL_VERSION" >&2
    touch "$VENV/.installed-$ETL_VERSION"
    exec 9>&-
}

case "${1:-}" in
    install) install ;;
    "") echo "usage: $0 install | [--rows] FOLDER_OR_URL [FOLDER_OR_URL ...]" >&2; exit 2 ;;
    *)
        install
        exec "$VENV/bin/python" "$ROOT/scripts/etl-check.py" "$@"
        ;;
esac
