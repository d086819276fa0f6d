#!/usr/bin/env bash
# Side-by-side benchmark of smart-fetch (Rust) and SMART Fetch 1.0.3 (Python) against the
# bundled synthetic EHR (fake-ehr) on loopback. See README.md, "Benchmarks".
#
#   bench/run.sh [options] [scenario...]
#
# Scenarios: a b c d d20 e f resume batch faults faults-5xx delta, or all. Default: a b resume.
#   a       2,000 patients, 20 ms latency, 5 connections, Epic (latency-bound)
#   b       2,000 patients, no added latency (CPU-bound)
#   c       20,000 patients, no added latency (scale); the Python tool only with --python-c
#   d       a bulk export of about 1 GB (smart-fetch bulk), and the disk's own write speed
#   d20     (d) from a server answering 20 ms late (first bytes of files included)
#   e       (b) with the default hydration (not one of issue 6's four; hydration side by side)
#   f       (a) with the default hydration: requests per patient and efficiency (issue 14)
#   resume  ours killed with SIGKILL at 50 % of the requests, then resumed
#   batch   20,000 patients in 40 groups, 20 ms latency: one `batch` with 20 connections vs
#           40 Python exports run 8 at a time
#   faults  200 patients, 20 ms latency, 5 % of 429/500/502/503/slow answers, SMART tokens of
#           20 s; each tool also runs the same export without faults (the ratio is the cost)
#   faults-5xx  500 patients, 20 ms latency, 5 % of 500/502 answers only, and without faults
#           (the Python tool takes about 15 and 45 minutes in these two)
#   delta   a 20,000-patient group exported in quarter 1 and 2 (Epic, no hydration), then
#           `delta` of the two: wall, CPU, peak RSS, lines kept (ours only)
# Options:
#   --runs N       runs of each tool per scenario, alternating who goes first (default 2)
#   --work DIR     work folder: venv, MRN files, logs, results (default target/bench)
#   --python-c     also run the Python tool in scenario c (about a quarter of an hour per run)
#   --no-python    run only smart-fetch (quick trials: no ratios)
#   --no-build     use the release binaries already in target/release
#   --patients N   override the patient count of every scenario (quick trials)
# Environment: SMART_FETCH_PY=/path/to/smart-fetch uses that Python tool instead of installing
# SMART Fetch 1.0.3 from PyPI into DIR/venv.
#
# Needs: a Rust toolchain, Python 3.9+ with venv, network access to PyPI on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

work="$repo/target/bench"
build=1
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work="$2"; shift 2 ;;
    --work=*) work="${1#--work=}"; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done
mkdir -p "$work"
work="$(cd "$work" && pwd)"

python=python3
command -v "$python" >/dev/null || { echo "bench: python3 is needed" >&2; exit 1; }

if [ "$build" = 1 ]; then
  echo "bench: building release binaries" >&2
  cargo build --release --quiet -p smart-fetch -p fake-ehr
fi
bin="$repo/target/release"
for b in smart-fetch fake-ehr; do
  [ -x "$bin/$b" ] || { echo "bench: $bin/$b is missing (run without --no-build)" >&2; exit 1; }
done

# The Python tool, pinned to 1.0.3, in its own virtualenv (installed once, then reused).
py_tool="${SMART_FETCH_PY:-}"
if [ -z "$py_tool" ]; then
  venv="$work/venv"
  py_tool="$venv/bin/smart-fetch"
  if ! "$py_tool" --version 2>/dev/null | grep -qx 'smart-fetch 1.0.3'; then
    echo "bench: installing SMART Fetch 1.0.3 into $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check smart-fetch==1.0.3
  fi
fi
"$py_tool" --version | grep -qx 'smart-fetch 1.0.3' ||
  echo "bench: warning: $py_tool is not SMART Fetch 1.0.3" >&2

exec "$python" "$repo/bench/bench.py" --bin "$bin" --python-tool "$py_tool" --work "$work" \
  ${pass[@]+"${pass[@]}"}
