#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for tests/slurm_batch.rs and for trying
# scripts/batch-array.sbatch: installs Debian's slurm-wlm and munge if they are missing,
# writes a munge key and /etc/slurm/slurm.conf if there are none (one node named after this
# host, no accounting, no cgroups; a slurm.conf it wrote is rewritten if the host changed),
# starts munged, slurmctld and slurmd unless they already run, and waits until the node
# accepts jobs. Safe to run again at any time: what is already there is left alone. Needs
# root (Debian/Ubuntu, apt-get). Stop it with scripts/slurm-down.sh.
#
#   SLURM_UP_TIMEOUT   seconds to wait for the node to come up (default 60)
set -euo pipefail

timeout="${SLURM_UP_TIMEOUT:-60}"
conf=/etc/slurm/slurm.conf
key=/etc/munge/munge.key
# PIDs of the daemons this script started, so that slurm-down.sh stops only those.
state=/run/smart-fetch-slurm
marker="# Written by smart-fetch scripts/slurm-up.sh"

say() { echo "slurm-up: $*"; }
die() {
  echo "slurm-up: error: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (it installs packages and starts system daemons); run it with sudo"

# Two runs at once (two test runs, two people) would start every daemon twice.
mkdir -p /run/lock
exec 9>/run/lock/smart-fetch-slurm-up.lock
flock -w 900 9 || die "another slurm-up.sh has held /run/lock/smart-fetch-slurm-up.lock for 15 minutes"
cd /

# --- packages ---------------------------------------------------------------------------
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for cmd in sbatch squeue sinfo scontrol slurmctld slurmd munged munge; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "${missing[*]} not installed and no apt-get; install Slurm and munge by hand"
  apt_log=/var/log/smart-fetch-slurm-up.apt.log
  say "installing slurm-wlm and munge with apt-get (missing: ${missing[*]}; a minute or two; log: $apt_log)"
  export DEBIAN_FRONTEND=noninteractive
  # The packages must not start the daemons themselves (without a slurm.conf yet): this
  # script starts them below. A policy-rc.d of our own, only while installing.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  if ! { apt-get -q -o DPkg::Lock::Timeout=300 update &&
    apt-get -q -y -o DPkg::Lock::Timeout=300 --no-install-recommends install slurm-wlm munge; } >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    die "apt-get could not install slurm-wlm and munge (see $apt_log)"
  fi
  if [ -n "$(trap -p EXIT)" ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi
  say "installed $(dpkg-query -W -f='slurm-wlm ${Version}, ' slurm-wlm)$(dpkg-query -W -f='munge ${Version}' munge)"
fi

# --- munge ------------------------------------------------------------------------------
id munge >/dev/null 2>&1 || die "the munge package did not create the 'munge' user"
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s "$key" ]; then
  dd if=/dev/urandom bs=1 count=1024 of="$key" status=none
  say "wrote a new munge key $key"
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge
chmod 400 "$key"

# --- slurm.conf -------------------------------------------------------------------------
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
real_mb=$((mem_mb < 1024 ? mem_mb : 1024))
write_conf() {
  mkdir -p /etc/slurm
  cat >"$conf.tmp" <<CONF
$marker for a single-node test cluster.
# Rewritten by it when the host name or CPU count change; delete this line to keep your edits.
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  mv "$conf.tmp" "$conf"
}
if [ ! -e "$conf" ]; then
  write_conf
  say "wrote $conf (node $host, $cpus CPUs, ${real_mb} MB)"
elif head -n 1 "$conf" | grep -qF "$marker" &&
  ! grep -qx "NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb State=UNKNOWN" "$conf"; then
  write_conf
  say "rewrote $conf for this host (node $host, $cpus CPUs, ${real_mb} MB)"
else
  say "using the existing $conf"
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$state"

# --- daemons ----------------------------------------------------------------------------
# A daemon must not keep this script's descriptors: the lock above, or a caller's pipe that
# the caller reads to the end (a test would wait forever).
close_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd="${fd##*/}"
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
}

# The PIDs of the processes named NAME that still run (not a killed daemon's remains).
live_pids() {
  local pid
  for pid in $(pgrep -x "$1" || true); do
    case "$(ps -o stat= -p "$pid" 2>/dev/null || true)" in
    "" | Z* | X*) ;;
    *) echo "$pid" ;;
    esac
  done
}

# start NAME PIDFILE COMMAND...: start a daemon that forks into the background unless one
# runs already, and remember its PID for slurm-down.sh.
start() {
  local name="$1" pidfile="$2" log="/var/log/smart-fetch-slurm-up.$1.log"
  shift 2
  local running
  running="$(live_pids "$name" | tr '\n' ' ')"
  if [ -n "$running" ]; then
    say "$name already running (pid ${running% })"
    return
  fi
  rm -f "$pidfile"
  if ! (close_inherited_fds && exec "$@") </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    die "$name did not start (see $log and its own log)"
  fi
  local pid=""
  for _ in $(seq 50); do
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [ -n "$pid" ] && break
    sleep 0.1
  done
  pid="${pid:-$(live_pids "$name" | head -n 1)}"
  [ -n "$pid" ] || die "$name exited right after starting (see $log and its own log)"
  echo "$pid" >"$state/$name.pid"
  say "started $name (pid $pid)"
}

start munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
for _ in $(seq 50); do
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
  sleep 0.1
done
munge -n | unmunge >/dev/null || die "munged runs but does not answer (see /var/log/munge/munged.log)"
start slurmctld /run/slurmctld.pid /usr/sbin/slurmctld
start slurmd /run/slurmd.pid /usr/sbin/slurmd

# --- wait for the node ------------------------------------------------------------------
deadline=$((SECONDS + timeout))
resumed=""
while :; do
  states="$(sinfo -h -o %T 2>/dev/null || true)"
  # slurmctld may still show the node from its saved state: slurmd must answer too.
  if grep -qxE 'idle|mixed|allocated|completing' <<<"$states" &&
    scontrol show slurmd >/dev/null 2>&1; then
    say "ready: $(sinfo -h -o '%P %D node(s) %T %N' | head -n 1)"
    exit 0
  fi
  # A node left down or drained by an earlier run (a daemon killed, a reboot) is put back.
  if [ -z "$resumed" ] && grep -qE '^(down|drain)' <<<"$states"; then
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
    resumed=1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    {
      echo "slurm-up: error: no Slurm node is up after ${timeout}s (sinfo: ${states:-no answer})"
      for log in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; do
        echo "--- last lines of $log"
        tail -n 15 "$log" 2>/dev/null || true
      done
    } >&2
    exit 1
  fi
  sleep 0.5
done
