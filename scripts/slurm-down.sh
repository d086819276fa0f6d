#!/usr/bin/env bash
# Stops the Slurm daemons that scripts/slurm-up.sh started (slurmd, slurmctld, munged), by
# the PIDs it recorded in /run/smart-fetch-slurm. Daemons it found already running, or that
# were started some other way, are left alone. Packages, keys and slurm.conf stay, so the
# next slurm-up.sh starts in seconds. Jobs still running on the node are killed with it.
set -euo pipefail

state=/run/smart-fetch-slurm

say() { echo "slurm-down: $*"; }

[ "$(id -u)" -eq 0 ] || {
  echo "slurm-down: error: needs root (it stops system daemons)" >&2
  exit 1
}

mkdir -p /run/lock
exec 9>/run/lock/smart-fetch-slurm-up.lock
flock -w 900 9 || {
  echo "slurm-down: error: slurm-up.sh has held /run/lock/smart-fetch-slurm-up.lock for 15 minutes" >&2
  exit 1
}

# Whether PID still runs: gone, or exited and not yet reaped (a zombie), is not running.
runs() {
  case "$(ps -o stat= -p "$1" 2>/dev/null || true)" in
  "" | Z* | X*) return 1 ;;
  *) return 0 ;;
  esac
}

stopped=0
for name in slurmd slurmctld munged; do
  record="$state/$name.pid"
  [ -f "$record" ] || continue
  pid="$(cat "$record")"
  # Only that process, and only if it still is that daemon (PIDs are reused).
  if [ -n "$pid" ] && runs "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$name" ]; then
    kill -TERM "$pid"
    for _ in $(seq 100); do
      runs "$pid" || break
      sleep 0.1
    done
    if runs "$pid"; then
      echo "slurm-down: error: $name (pid $pid) still runs 10 s after SIGTERM" >&2
      exit 1
    fi
    say "stopped $name (pid $pid)"
    stopped=$((stopped + 1))
  fi
  rm -f "$record"
done
[ "$stopped" -gt 0 ] || say "nothing to stop: no daemon started by slurm-up.sh is running"
