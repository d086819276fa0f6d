#!/usr/bin/env python3
"""Side-by-side benchmark of smart-fetch (Rust) and SMART Fetch 1.0.3 (Python) against fake-ehr.

Called by bench/run.sh, which builds the binaries and installs the Python tool first. Standard
library only. Every run gets a fresh fake-ehr on 127.0.0.1 (so its counters belong to that run
alone) and a fresh output folder; the tools run one after the other, never at the same time.

Measured per run: wall time; CPU time (user + sys) and peak RSS of the tool's process, from
wait4(2), the call /usr/bin/time uses; requests (the server's counter, which counts every request
but its own /__admin ones); resources written (lines of the NDJSON files, error/ and deleted/
left out); a digest of those lines per type, to check that both tools wrote the same output.
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ID_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
MIB = 1024 * 1024


class Scenario:
    def __init__(self, key, title, patients, latency_ms, flavor="epic", connections=5,
                 kind="crawl", pad_bytes=0, slow=False, fault_rate=0.0, fault_kinds=None,
                 token_secs=None):
        self.key = key
        self.title = title
        self.patients = patients
        self.latency_ms = latency_ms
        self.flavor = flavor
        self.connections = connections
        self.kind = kind  # crawl | hydrate | bulk | resume
        self.pad_bytes = pad_bytes
        self.slow = slow
        # Injected faults (fake-ehr --fault-rate/--fault-kinds) and SMART auth with tokens
        # of this lifetime (None: an open server).
        self.fault_rate = fault_rate
        self.fault_kinds = fault_kinds
        self.token_secs = token_secs

    def clean(self):
        """The same scenario without injected faults (the reference of a faults row)."""
        twin = Scenario(self.key + "-clean", self.title, self.patients, self.latency_ms,
                        self.flavor, self.connections, "crawl", self.pad_bytes, self.slow,
                        0.0, None, self.token_secs)
        return twin


SCENARIOS = {
    "a": Scenario("a", "(a) 2,000 patients, 20 ms latency, 5 connections, Epic (latency-bound)",
                  2000, 20),
    "b": Scenario("b", "(b) 2,000 patients, no added latency, Epic (CPU-bound)", 2000, 0),
    "c": Scenario("c", "(c) 20,000 patients, no added latency, Epic (scale)", 20000, 0,
                  slow=True),
    # fake-ehr exports about 50 resources per patient; 2,000 x 50 x 10,400 bytes of padding
    # is just over 1 GB of NDJSON.
    "d": Scenario("d", "(d) bulk export download, about 1 GB of NDJSON", 2000, 0,
                  flavor="generic", kind="bulk", pad_bytes=10400, slow=True),
    # Issue 14: the same download from a server whose every answer (each file's first byte
    # included) comes 20 ms late: every connection must stay in use (most in flight = 5).
    "d20": Scenario("d20", "(d20) bulk export download, about 1 GB, 20 ms to the first byte",
                    2000, 20, flavor="generic", kind="bulk", pad_bytes=10400, slow=True),
    # Not one of issue 6's four: the same export with the default hydration (notes inlined,
    # referenced resources fetched), to measure hydration side by side as well.
    "e": Scenario("e", "(e) 2,000 patients, no added latency, Epic, with hydration", 2000, 0,
                  kind="hydrate"),
    # Issue 14: requests per patient with the default hydration, under latency (where each
    # request costs the EHR's answer time), and the efficiency of the hydration phases.
    "f": Scenario("f", "(f) 2,000 patients, 20 ms latency, 5 connections, Epic, with hydration",
                  2000, 20, kind="hydrate"),
    "resume": Scenario("resume", "Resume waste: killed (SIGKILL) at 50% of requests, resumed",
                       2000, 0, kind="resume"),
    # Issue 12: a quarter's groups in one process. Ours: one `batch` over 40 group files
    # sharing 20 connections; the Python tool: 40 `export` processes, 8 at a time (what a
    # site's Slurm glue does today), each with its own connections.
    "batch": Scenario("batch", "(batch) 20,000 patients in 40 groups, 20 ms latency, Epic",
                      20000, 20, connections=20, kind="batch"),
    # Issue 14: faults must not stall the crawl. Each runs a clean twin too (same server,
    # no faults), so the cost of the faults is the ratio of the two walls.
    "faults": Scenario("faults", "(faults) 200 patients, 20 ms latency, Epic, 5 % of "
                       "429/500/502/503/slow answers (Retry-After: 1; slow = 2 s), "
                       "SMART tokens of 20 s", 200, 20, kind="faults", fault_rate=0.05,
                       fault_kinds="429,500,502,503,slow", token_secs=20),
    "faults-5xx": Scenario("faults-5xx", "(faults-5xx) 500 patients, 20 ms latency, Epic, "
                           "5 % of 500/502 answers only", 500, 20, kind="faults",
                           fault_rate=0.05, fault_kinds="500,502"),
    # Issue 16: the delta of a quarter. Two full exports of one 20,000-patient group (quarter
    # 1, then fake-ehr's quarter 2: 22,000 MRNs, new, changed, merged and deleted patients)
    # into one managed folder, then `delta`; ours only (the Python tool has no delta).
    "delta": Scenario("delta", "(delta) a 20,000-patient quarter against the one before, Epic",
                      20000, 0, kind="delta"),
}

BATCH_GROUPS = 40
PYTHON_AT_ONCE = 8


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# fake-ehr


CLIENT_ID = "bench-client"


def smart_keys(fake_ehr, work):
    """A client key pair for SMART scenarios (made once per work folder)."""
    keys = work / "keys"
    if not (keys / "private.jwks").exists():
        subprocess.run([str(fake_ehr), "keygen", "--out", str(keys)], check=True,
                       stdout=subprocess.DEVNULL)
    return keys


class Server:
    def __init__(self, fake_ehr, scenario, workdir):
        args = [fake_ehr, "--port", "0", "--patients", str(scenario.patients),
                "--flavor", scenario.flavor, "--latency-ms", str(scenario.latency_ms)]
        if scenario.fault_rate:
            args += ["--fault-rate", str(scenario.fault_rate)]
            if scenario.fault_kinds:
                args += ["--fault-kinds", scenario.fault_kinds]
        if scenario.token_secs:
            keys = smart_keys(fake_ehr, workdir.parent)
            args += ["--auth", "smart", "--client-id", CLIENT_ID,
                     "--jwks", str(keys / "public.jwks"),
                     "--token-lifetime-secs", str(scenario.token_secs)]
        if scenario.pad_bytes:
            args += ["--bulk-pad-bytes", str(scenario.pad_bytes),
                     # Files of 50,000 resources: about 500 MB each before compression.
                     "--bulk-resources-per-file", "50000"]
        self.log_path = workdir / "fake-ehr.log"
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"fake-ehr listening on (\S+)", self.log_path.read_text())
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if not self.url:
            self.stop()
            raise RuntimeError(f"fake-ehr did not start: {self.log_path.read_text()}")
        m = re.match(r"(https?://[^/]+)", self.url)
        self.root = m.group(1)

    def counts(self):
        with urllib.request.urlopen(self.root + "/__admin/counts", timeout=30) as r:
            return json.load(r)

    def cpu_seconds(self):
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------------------------
# Running one tool


def command(tool_path, scenario, server, mrn_file, out, extra=()):
    if scenario.kind == "bulk":
        return [tool_path, "bulk", "--fhir-url", server.url, *extra, str(out)]
    hydration = [] if scenario.kind == "hydrate" else ["--hydration-tasks", "none"]
    if scenario.token_secs:
        keys = smart_keys(None, server.log_path.parent.parent)
        extra = ["--smart-client-id", CLIENT_ID, "--smart-key", str(keys / "private.jwks"),
                 *extra]
    return [tool_path, "export", "--fhir-url", server.url, "--id-system", ID_SYSTEM,
            "--id-file", str(mrn_file), *hydration, *extra, str(out)]


GNU_TIME = "/usr/bin/time"


def run_measured(args, log_path, kill_when=None):
    """Runs args to completion; returns wall, CPU and peak RSS of the tool and its exit status.

    CPU and peak RSS come from /usr/bin/time when it is there: a small C program whose own
    child is the tool. Without it they come from wait4(2) on our own child, whose peak RSS can
    be inflated to this script's (Linux keeps the high-water mark of the forked copy across
    exec), so that figure is then an upper bound.

    kill_when: a function polled every 20 ms; when it returns true the tool gets SIGKILL (such
    runs are not measured).
    """
    timed = kill_when is None and os.access(GNU_TIME, os.X_OK)
    time_file = Path(str(log_path) + ".time")
    if timed:
        args = [GNU_TIME, "-f", "%U %S %M", "-o", str(time_file)] + list(args)
    with open(log_path, "w") as log_file:
        start = time.monotonic()
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        killed = False
        if kill_when is not None:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if kill_when():
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = True
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.02)
        else:
            pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "wall": wall,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "rss": usage.ru_maxrss * 1024,  # Linux reports KiB
        "exit": proc.returncode,
        "killed": killed,
        "rss_source": "wait4",
    }
    if timed:
        # The last line: a failing command makes GNU time write "Command exited ..." first.
        user, sys_, rss_kib = time_file.read_text().strip().splitlines()[-1].split()
        result.update(user=float(user), sys=float(sys_), rss=int(rss_kib) * 1024,
                      rss_source="time")
    result["cpu"] = result["user"] + result["sys"]
    return result


DECIMAL = re.compile(rb"[0-9]\.[0-9]")


def normalized(line):
    """The line as Python's json module spells it: the Python tool re-spells numbers (1.50 is
    written 1.5), we keep the server's spelling. Only lines with a decimal point are parsed."""
    if not DECIMAL.search(line):
        return line
    try:
        value = json.loads(line)
    except ValueError:
        return line
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def scan_output(out):
    """Resources per type, a digest of the lines per type (order does not matter), bytes."""
    per_type = {}
    total_bytes = 0
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("error", "deleted")]
        for name in files:
            path = Path(root) / name
            if path.is_symlink() or not (name.endswith(".ndjson") or name.endswith(".ndjson.gz")):
                continue
            if name == "log.ndjson":
                continue
            rtype = name.split(".", 1)[0]
            count, digest, norm = per_type.get(rtype, (0, 0, 0))
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                for line in f:
                    total_bytes += len(line)
                    line = line.rstrip(b"\r\n")
                    if not line.strip():
                        continue
                    count += 1
                    # Sums of line hashes: the same for the same lines in any order.
                    h = hashlib.blake2b(line, digest_size=8).digest()
                    digest = (digest + int.from_bytes(h, "little")) % (1 << 64)
                    h = hashlib.blake2b(normalized(line), digest_size=8).digest()
                    norm = (norm + int.from_bytes(h, "little")) % (1 << 64)
            per_type[rtype] = (count, digest, norm)
    return {
        "resources": sum(c for c, _, _ in per_type.values()),
        "types": {t: {"count": c, "digest": f"{d:016x}", "normalized": f"{n:016x}"}
                  for t, (c, d, n) in sorted(per_type.items())},
        "bytes": total_bytes,
    }


def download_phase(log_path):
    """Seconds from the first download request to the last completed download, from the
    log.ndjson both tools write (docs/log.md), so kickoff and the server's export time are
    left out of the download rate."""
    first = last = None
    try:
        with open(log_path) as f:
            for line in f:
                event = json.loads(line)
                when = datetime.fromisoformat(event["timestamp"])
                if event["eventId"] == "download_request" and first is None:
                    first = when
                if event["eventId"] == "download_complete":
                    last = when
    except (OSError, ValueError, KeyError):
        return None
    if first is None or last is None:
        return None
    return (last - first).total_seconds()


def one_run(tool, tool_path, scenario, bins, work, run_index, mrn_file, keep_urls=False,
            extra=(), allow_failure=False):
    run_dir = work / f"{scenario.key}-{tool}-{run_index}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "out"
    with Server(bins / "fake-ehr", scenario, run_dir) as server:
        before = server.counts()
        cpu_before = server.cpu_seconds()
        args = command(tool_path, scenario, server, mrn_file, out, extra)
        log(f"  {tool} run {run_index + 1}: {' '.join(args)}")
        result = run_measured(args, run_dir / "tool.log")
        after = server.counts()
        cpu_after = server.cpu_seconds()
        if keep_urls:
            with urllib.request.urlopen(server.root + "/__admin/stats", timeout=60) as r:
                result["search_urls"] = json.load(r)["search_urls"]
    result["requests"] = after["requests"] - before["requests"]
    result["searches"] = after["searches"] - before["searches"]
    result["reads"] = after["reads"] - before["reads"]
    result["max_in_flight"] = after["max_in_flight"]
    if scenario.kind == "bulk":
        result["max_downloads"] = after.get("max_downloads_in_flight")
    result["faults"] = after.get("faults", 0) - before.get("faults", 0)
    if cpu_before is not None and cpu_after is not None:
        result["server_cpu"] = cpu_after - cpu_before
    if result["exit"] != 0 and not allow_failure:
        tail = (run_dir / "tool.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{tool} exited with {result['exit']}; see {run_dir}/tool.log:\n{tail}")
    result.update(scan_output(out))
    if scenario.kind == "bulk":
        result["download_wall"] = download_phase(out / "log.ndjson")
    log(f"    {result['wall']:.1f} s wall, {result['cpu']:.2f} s CPU, "
        f"{result['rss'] / MIB:.1f} MiB, {result['requests']} requests, "
        f"{result['resources']} resources")
    shutil.rmtree(out, ignore_errors=True)  # keep the logs, not the (large) data
    return result


def disk_reference(scenario, bins, work, mrn_file, tool_path):
    """Is the download streaming at disk speed? Ours once more with --no-compression (the
    NDJSON goes to disk as it arrives), against writing as many bytes of zeros to the same
    disk in 1 MiB blocks with one fsync at the end (what `dd conv=fdatasync` measures)."""
    plain = one_run("rust-plain", tool_path, scenario, bins, work, 0, mrn_file,
                    extra=("--no-compression",))
    path = work / f"{scenario.key}-disk.bin"
    block = b"\0" * MIB
    start = time.monotonic()
    with open(path, "wb") as f:
        for _ in range(max(1, plain["bytes"] // MIB)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    disk_wall = time.monotonic() - start
    written = max(1, plain["bytes"] // MIB) * MIB
    path.unlink()
    log(f"    disk: {written / MIB:,.0f} MiB written and fsynced in {disk_wall:.1f} s")
    return {"plain_wall": plain["download_wall"] or plain["wall"], "plain_bytes": plain["bytes"],
            "plain_cpu": plain["cpu"],
            "disk_wall": disk_wall, "disk_bytes": written}


def curl_replay(scenario, bins, work, urls):
    """The same searches, sent by curl with as many parallel transfers as we have
    connections: what a minimal client gets from this server (its latency is a little over
    the nominal one, and it spends some time on each request)."""
    curl = shutil.which("curl")
    if not curl or not urls:
        return None
    help_text = subprocess.run([curl, "--help", "all"], capture_output=True, text=True).stdout
    if "--parallel-max" not in help_text:
        return None
    run_dir = work / f"{scenario.key}-curl"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    with Server(bins / "fake-ehr", scenario, run_dir) as server:
        config = run_dir / "urls.cfg"
        with open(config, "w") as f:
            for url in urls:
                f.write(f'url = "{server.root}{url}"\noutput = /dev/null\n')
        log(f"  curl replay of {len(urls)} searches, {scenario.connections} in parallel")
        result = run_measured([curl, "-s", "-Z", "--parallel-max", str(scenario.connections),
                               "-H", "Accept: application/fhir+json", "-K", str(config)],
                              run_dir / "curl.log")
        result["requests"] = server.counts()["requests"]
    log(f"    {result['wall']:.1f} s wall")
    return result


def resume_runs(scenario, bins, work, mrn_file):
    ours = str(bins / "smart-fetch")
    log("  uninterrupted run")
    full = one_run("rust", ours, scenario, bins, work, 0, mrn_file)
    run_dir = work / f"{scenario.key}-rust-killed"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "out"
    target = full["requests"] // 2
    with Server(bins / "fake-ehr", scenario, run_dir) as server:
        args = command(ours, scenario, server, mrn_file, out)
        log(f"  run killed when the server has seen {target} requests")
        first = run_measured(args, run_dir / "tool-1.log",
                             kill_when=lambda: server.counts()["requests"] >= target)
        at_kill = server.counts()["requests"]
        log(f"    killed: {first['killed']}, at {at_kill} requests")
        log("  resumed run")
        second = run_measured(args, run_dir / "tool-2.log")
        total = server.counts()["requests"]
    if second["exit"] != 0:
        raise RuntimeError(f"the resumed run exited with {second['exit']}; see {run_dir}")
    scan = scan_output(out)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "uninterrupted": full,
        "killed_at": at_kill,
        "killed": first["killed"],
        "resumed_requests": total - at_kill,
        "total_requests": total,
        "extra": total / full["requests"] - 1,
        "same_output": scan["types"] == full["types"],
        "resources": scan["resources"],
    }


# ---------------------------------------------------------------------------------------------
# Figures and the table


def write_group_files(bins, scenario, groups_dir):
    groups_dir.mkdir(parents=True, exist_ok=True)
    per_group = -(-scenario.patients // BATCH_GROUPS)
    for g in range(BATCH_GROUPS):
        start = g * per_group
        count = min(per_group, scenario.patients - start)
        if count <= 0:
            break
        with open(groups_dir / f"MRN-{g:03d}", "w") as f:
            subprocess.run([str(bins / "fake-ehr"), "mrns", "--from", str(start),
                            "--patients", str(count)], stdout=f, check=True)


def batch_runs(scenario, bins, work, python_tool, with_python):
    """Ours: one batch process. Python: one export per group, PYTHON_AT_ONCE at a time."""
    groups_dir = work / f"{scenario.key}-groups"
    shutil.rmtree(groups_dir, ignore_errors=True)
    write_group_files(bins, scenario, groups_dir)
    groups = sorted(p for p in groups_dir.iterdir())
    summary = {}

    run_dir = work / f"{scenario.key}-rust"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "out"
    with Server(bins / "fake-ehr", scenario, run_dir) as server:
        before = server.counts()
        args = [str(bins / "smart-fetch"), "batch", "--fhir-url", server.url, "--id-system",
                ID_SYSTEM, "--groups", str(groups_dir), "--nickname", "bench",
                "--hydration-tasks", "none", "--max-connections", str(scenario.connections),
                "--log-format", "plain", str(out)]
        log(f"  rust: {' '.join(args)}")
        result = run_measured(args, run_dir / "tool.log")
        after = server.counts()
    if result["exit"] != 0:
        tail = (run_dir / "tool.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"batch exited with {result['exit']}:\n{tail}")
    result["requests"] = after["requests"] - before["requests"]
    result["max_in_flight"] = after["max_in_flight"]
    result.update(scan_output(out))
    result["bound"] = result["requests"] * scenario.latency_ms / 1000 / scenario.connections
    result["efficiency"] = result["bound"] / result["wall"]
    log(f"    {result['wall']:.1f} s wall, {result['cpu']:.2f} s CPU, "
        f"{result['rss'] / MIB:.1f} MiB, {result['requests']} requests, "
        f"efficiency {result['efficiency']:.2f}")
    shutil.rmtree(out, ignore_errors=True)
    summary["rust"] = result

    if not with_python:
        return summary
    run_dir = work / f"{scenario.key}-python"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out = run_dir / "out"
    with Server(bins / "fake-ehr", scenario, run_dir) as server:
        before = server.counts()
        start = time.monotonic()
        pending = list(groups)
        running = {}
        cpu = 0.0
        rss = 0
        failures = 0
        while pending or running:
            while pending and len(running) < PYTHON_AT_ONCE:
                group = pending.pop(0)
                args = [python_tool, "export", "--fhir-url", server.url, "--id-system", ID_SYSTEM,
                        "--id-file", str(group), "--nickname", "bench", "--hydration-tasks",
                        "none", str(out / group.name)]
                log_file = open(run_dir / f"{group.name}.log", "w")
                proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
                running[proc.pid] = (proc, log_file)
            pid, status, usage = os.wait4(-1, 0)
            if pid not in running:
                continue
            proc, log_file = running.pop(pid)
            log_file.close()
            cpu += usage.ru_utime + usage.ru_stime
            rss = max(rss, usage.ru_maxrss * 1024)
            failures += os.waitstatus_to_exitcode(status) != 0
        wall = time.monotonic() - start
        after = server.counts()
    python = {"wall": wall, "cpu": cpu, "rss": rss, "failures": failures,
              "requests": after["requests"] - before["requests"],
              "max_in_flight": after["max_in_flight"], "rss_source": "wait4"}
    python.update(scan_output(out))
    log(f"    python: {wall:.1f} s wall, {cpu:.2f} s CPU, {rss / MIB:.1f} MiB peak per process, "
        f"{python['requests']} requests, {failures} failed exports")
    shutil.rmtree(out, ignore_errors=True)
    summary["python"] = python
    return summary


def tree_bytes(root):
    """Bytes of the files under root (links not followed)."""
    total = 0
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = Path(base) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def zcat_run(leaves, log_path):
    """Wall and CPU time to decompress every NDJSON file of these leaf folders once (to
    /dev/null): what merely reading both exports costs, the floor of any comparison."""
    files = [str(p) for leaf in leaves for p in sorted(Path(leaf).glob("*.ndjson.gz"))]
    script = 'zcat "$@" > /dev/null'
    return run_measured(["sh", "-c", script, "zcat", *files], log_path)


def delta_runs(scenario, bins, work, runs):
    """Quarter 1 and quarter 2 exported into one managed folder, then `delta`, measured."""
    run_dir = work / f"{scenario.key}-rust"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    managed = run_dir / "out" / "MRN-000"
    mrns = run_dir / "MRN-000"
    # Every MRN of both quarters: the new patients' MRNs find nobody in quarter 1.
    new = -(-scenario.patients // 10)
    with open(mrns, "w") as f:
        subprocess.run([str(bins / "fake-ehr"), "mrns", "--patients",
                        str(scenario.patients + new)], stdout=f, check=True)
    result = {}
    with Server(bins / "fake-ehr", scenario, run_dir) as server:
        for quarter in (1, 2):
            if quarter == 2:
                req = urllib.request.Request(server.root + "/__admin/quarter?n=2", method="POST")
                urllib.request.urlopen(req, timeout=30).read()
            args = [str(bins / "smart-fetch"), "export", "--fhir-url", server.url,
                    "--id-system", ID_SYSTEM, "--id-file", str(mrns), "--hydration-tasks",
                    "none", "--nickname", f"q{quarter}", "--log-format", "plain", str(managed)]
            log(f"  export of quarter {quarter}: {' '.join(args)}")
            export = run_measured(args, run_dir / f"export-q{quarter}.log")
            if export["exit"] != 0:
                raise RuntimeError(f"export exited with {export['exit']}")
            result[f"export_q{quarter}_wall"] = export["wall"]
        with urllib.request.urlopen(server.root + "/__admin/changes", timeout=600) as r:
            result["server_changed"] = json.load(r)["changedCount"]
    leaves = [managed / "001.q1", managed / "002.q2"]
    result["gz_bytes"] = sum(tree_bytes(leaf) for leaf in leaves)
    zcats = [zcat_run(leaves, run_dir / f"zcat-{i}.log") for i in range(2)]
    result["zcat"] = min(z["wall"] for z in zcats)
    result["zcat_cpu"] = min(z["cpu"] for z in zcats)
    measured = []
    for i in range(runs):
        deltas = run_dir / "deltas"
        shutil.rmtree(deltas, ignore_errors=True)
        args = [str(bins / "smart-fetch"), "delta", str(managed), "--nickname", "q2", "--to",
                str(deltas / "MRN-000")]
        log(f"  delta run {i + 1}: {' '.join(args)}")
        one = run_measured(args, run_dir / f"delta-{i}.log")
        if one["exit"] != 0:
            tail = (run_dir / f"delta-{i}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"delta exited with {one['exit']}:\n{tail}")
        measured.append(one)
    manifest = json.loads((deltas / "MRN-000" / "002.q2" / "delta.json").read_text())
    result["kept"] = sum(manifest["kept"].values())
    result["lines"] = sum(manifest["resources"].values())
    result["deleted"] = sum(manifest["deleted"].values())
    result["delta_gz_bytes"] = tree_bytes(deltas / "MRN-000" / "002.q2")
    result["q1_lines"] = sum(1 for p in leaves[0].glob("*.ndjson.gz") for _ in gzip.open(p, "rb"))
    for key in ("wall", "cpu", "rss"):
        result[key] = sum(r[key] for r in measured) / len(measured)
    result["runs"] = measured
    log(f"    {result['wall']:.2f} s wall, {result['cpu']:.2f} s CPU, "
        f"{result['rss'] / MIB:.1f} MiB, kept {result['kept']:,} of {result['lines']:,} lines; "
        f"zcat of both exports {result['zcat']:.2f} s wall, {result['zcat_cpu']:.2f} s CPU")
    shutil.rmtree(run_dir / "out", ignore_errors=True)
    shutil.rmtree(run_dir / "deltas", ignore_errors=True)
    return result


def delta_table(scenario, r):
    share = r["kept"] / r["lines"] if r["lines"] else 0
    rows = [
        ("Wall time", fmt_value("wall", r["wall"])),
        ("CPU time (user+sys)", fmt_value("cpu", r["cpu"])),
        ("Peak RSS", fmt_value("rss", r["rss"])),
        ("Lines read: quarter 1 + quarter 2", f"{r['q1_lines']:,} + {r['lines']:,}"),
        ("Both exports, gzip on disk", f"{r['gz_bytes'] / MIB:,.0f} MiB"),
        ("Reading both exports once (zcat to /dev/null): wall, CPU",
         f"{fmt_value('wall', r['zcat'])}, {fmt_value('cpu', r['zcat_cpu'])}"),
        ("Delta ÷ zcat: wall, CPU",
         f"{r['wall'] / r['zcat']:.1f} ×, {r['cpu'] / r['zcat_cpu']:.1f} ×"),
        ("Lines kept (new or changed)", f"{r['kept']:,} of {r['lines']:,} ({share * 100:.1f} %)"),
        ("fake-ehr's change list (searchable resources, before Epic's filters)",
         f"{r['server_changed']:,}"),
        ("deleted/ entries (copied)", f"{r['deleted']:,}"),
        ("Delta folder, gzip on disk", f"{r['delta_gz_bytes'] / MIB:,.1f} MiB"),
        ("The two exports it compares (wall, for scale)",
         f"{r['export_q1_wall']:.0f} s + {r['export_q2_wall']:.0f} s"),
    ]
    lines = []
    for i, (label, value) in enumerate(rows):
        lines.append(f"| {scenario.title if i == 0 else ''} | {label} | {value} | no delta | |")
    return lines


def faults_runs(scenario, bins, work, mrn_file, python_tool, with_python, runs):
    """Each tool against the faulty server and against its clean twin, `runs` times,
    alternating who goes first. A tool that exits non-zero under faults is recorded, not
    fatal (its output is then compared like any other)."""
    clean = scenario.clean()
    tools = [("rust", str(bins / "smart-fetch")), ("python", python_tool)]
    raw = {tool: {"clean": [], "faulty": []} for tool, _ in tools}
    for i in range(runs):
        order = tools if i % 2 == 0 else list(reversed(tools))
        for tool, path in order:
            if tool == "python" and not with_python:
                continue
            raw[tool]["clean"].append(one_run(tool, path, clean, bins, work, i, mrn_file))
            raw[tool]["faulty"].append(one_run(tool, path, scenario, bins, work, i, mrn_file,
                                               allow_failure=True))
    summary = {}
    reference = raw["rust"]["clean"][0]["types"] if raw["rust"]["clean"] else None
    for tool, _ in tools:
        if not raw[tool]["faulty"]:
            summary[tool] = None
            continue
        c, f = raw[tool]["clean"], raw[tool]["faulty"]
        figures = {
            "clean_wall": mean(c, "wall"),
            "wall": mean(f, "wall"),
            "cpu": mean(f, "cpu"),
            "rss": mean(f, "rss"),
            "clean_requests": mean(c, "requests"),
            "requests": mean(f, "requests"),
            "faults": mean(f, "faults"),
            "resources": mean(f, "resources"),
            "exits": sorted({r["exit"] for r in f}),
            # Same lines as our clean run, numbers compared as Python spells them.
            "same_as_clean": all({t: v["normalized"] for t, v in r["types"].items()} ==
                                 {t: v["normalized"] for t, v in reference.items()}
                                 for r in f + c) if reference else None,
        }
        figures["ratio"] = figures["wall"] / figures["clean_wall"]
        summary[tool] = figures
    return summary, raw


def faults_table(scenario, summary):
    rust, python = summary.get("rust"), summary.get("python")
    lines = []

    def row(label, ours, theirs, ratio=True):
        title = scenario.title if not lines else ""
        r = f"{ours / theirs:.2f}" if ratio and isinstance(ours, float) and theirs else ""
        lines.append(f"| {title} | {label} | {fmt(ours)} | {fmt(theirs)} | {r} |")

    def fmt(value):
        if value is None:
            return "not run"
        if isinstance(value, str):
            return value
        return f"{value:.2f} s"

    def get(f, key):
        return f.get(key) if f else None

    row("Wall time, the same export without faults", get(rust, "clean_wall"),
        get(python, "clean_wall"))
    row("Wall time with the faults", get(rust, "wall"), get(python, "wall"))
    ratio = lambda f: f"{f['ratio']:.2f}" if f else None  # noqa: E731
    row("With faults ÷ without", ratio(rust), ratio(python), ratio=False)
    count = lambda f, k: f"{f[k]:,.0f}" if f else None  # noqa: E731
    row("Requests without / with faults", f"{count(rust, 'clean_requests')} / "
        f"{count(rust, 'requests')}", f"{count(python, 'clean_requests')} / "
        f"{count(python, 'requests')}" if python else None, ratio=False)
    row("Faults injected (server)", count(rust, "faults"), count(python, "faults"),
        ratio=False)
    row("CPU time (user+sys) with faults", get(rust, "cpu"), get(python, "cpu"))
    exits = lambda f: ", ".join(map(str, f["exits"])) if f else None  # noqa: E731
    row("Exit status with faults", exits(rust), exits(python), ratio=False)
    same = lambda f: ("yes" if f["same_as_clean"] else "NO") if f else None  # noqa: E731
    row("Same resources as the clean run (numbers as Python spells them)", same(rust),
        same(python), ratio=False)
    return lines


def batch_table(scenario, summary):
    rust, python = summary["rust"], summary.get("python")
    lines = [f"| {scenario.title} | Wall time | {fmt_value('wall', rust['wall'])} | "
             f"{fmt_value('wall', python['wall']) if python else 'not run'} | "
             f"{rust['wall'] / python['wall']:.2f} |" if python else
             f"| {scenario.title} | Wall time | {fmt_value('wall', rust['wall'])} | not run | |"]

    def row(label, key, note_python=""):
        ours = fmt_value(key, rust.get(key))
        theirs = fmt_value(key, python.get(key)) + note_python if python else ""
        ratio = (f"{rust[key] / python[key]:.2f}"
                 if python and python.get(key) and rust.get(key) is not None else "")
        lines.append(f"| | {label} | {ours} | {theirs} | {ratio} |")

    row("CPU time (user+sys, all processes)", "cpu")
    row("Peak RSS (ours: the one process; Python: the largest of its processes)", "rss")
    row("Requests", "requests")
    row("Resources written", "resources")
    row("Most requests in flight (server)", "max_in_flight")
    lines.append(f"| | Connections | {scenario.connections}, shared by all groups | "
                 f"5 per process × {PYTHON_AT_ONCE} processes | |")
    lines.append(f"| | Efficiency (requests × latency ÷ connections ÷ wall) | "
                 f"{rust['efficiency']:.2f} | | |")
    if python:
        def field(result, key):
            return {t: v[key] for t, v in result["types"].items()}
        same = ("yes, byte for byte" if field(rust, "digest") == field(python, "digest") else
                "yes, but for the spelling of numbers (1.50 vs 1.5)"
                if field(rust, "normalized") == field(python, "normalized") else
                "same resource counts, different lines"
                if field(rust, "count") == field(python, "count") else "NO: counts differ")
        lines.append(f"| | Same resources | {same} | | |")
    return lines


def mean(results, key):
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.mean(values) if values else None


def summarize(scenario, rust, python):
    def figures(results):
        if not results:
            return None
        f = {k: mean(results, k) for k in ("wall", "cpu", "rss", "requests", "resources",
                                            "bytes", "max_in_flight", "max_downloads", "server_cpu",
                                            "download_wall", "searches", "reads")}
        f["per_patient"] = f["requests"] / scenario.patients
        if scenario.kind == "hydrate" and f["searches"] is not None:
            f["searches_pp"] = f["searches"] / scenario.patients
            f["reads_pp"] = f["reads"] / scenario.patients
        f["runs"] = len(results)
        if scenario.latency_ms:
            f["bound"] = f["requests"] * scenario.latency_ms / 1000 / scenario.connections
            f["efficiency"] = f["bound"] / f["wall"]
        if scenario.kind == "bulk":
            f["throughput"] = f["bytes"] / (f["download_wall"] or f["wall"])
        return f

    summary = {"rust": figures(rust), "python": figures(python)}
    runs = rust + python
    if runs:
        def same(field):
            first = {t: v[field] for t, v in runs[0]["types"].items()}
            return all({t: v[field] for t, v in r["types"].items()} == first for r in runs)
        summary["same_output"] = same("digest")
        summary["same_normalized"] = same("normalized")
        summary["same_counts"] = same("count")
        summary["rss_source"] = sorted({r["rss_source"] for r in runs})
    return summary


def fmt_value(key, value):
    if value is None:
        return "—"
    if key in ("wall", "cpu", "bound", "server_cpu", "download_wall"):
        return f"{value:.2f} s"
    if key == "rss":
        return f"{value / MIB:.1f} MiB"
    if key in ("requests", "resources", "max_in_flight", "max_downloads"):
        return f"{value:,.0f}"
    if key in ("per_patient", "searches_pp", "reads_pp"):
        return f"{value:.2f}"
    if key == "efficiency":
        return f"{value:.2f}"
    if key == "throughput":
        return f"{value / MIB:.0f} MiB/s"
    if key == "bytes":
        return f"{value / MIB:,.0f} MiB"
    return str(value)


ROWS = [
    ("wall", "Wall time"),
    ("cpu", "CPU time (user+sys)"),
    ("rss", "Peak RSS"),
    ("requests", "Requests"),
    ("per_patient", "Requests per patient"),
    ("searches_pp", "of which searches (`_id` lists and lookups included)"),
    ("reads_pp", "of which reads (Binary included)"),
    ("resources", "Resources written"),
    ("bytes", "NDJSON written (uncompressed)"),
    ("download_wall", "Downloading (first file request to last file complete)"),
    ("throughput", "Download rate (uncompressed NDJSON ÷ downloading time)"),
    ("max_in_flight", "Most requests in flight (server)"),
    ("max_downloads", "Most file downloads at once (server)"),
    ("server_cpu", "fake-ehr's CPU time in the run"),
    ("bound", "Connection-budget bound (requests × latency ÷ connections)"),
    ("efficiency", "Efficiency (bound ÷ wall)"),
]


def table(results, python_notes):
    lines = ["| Scenario | Figure | smart-fetch (Rust) | SMART Fetch 1.0.3 (Python) | Rust ÷ Python |",
             "|---|---|---:|---:|---:|"]
    for key, summary in results.items():
        scenario = SCENARIOS[key]
        if scenario.kind == "batch":
            lines.extend(batch_table(scenario, summary))
            continue
        if scenario.kind == "delta":
            lines.extend(delta_table(scenario, summary))
            continue
        if scenario.kind == "faults":
            lines.extend(faults_table(scenario, summary))
            continue
        if scenario.kind == "resume":
            r = summary
            lines.append(f"| {scenario.title} | Requests: uninterrupted / killed + resumed | "
                         f"{r['uninterrupted']['requests']:,} / {r['killed_at']:,} + "
                         f"{r['resumed_requests']:,} = {r['total_requests']:,} | not run | |")
            lines.append(f"| | Extra requests | {r['extra'] * 100:+.2f} % | | |")
            lines.append(f"| | Output identical to the uninterrupted run | "
                         f"{'yes' if r['same_output'] else 'NO'} | | |")
            continue
        rust, python = summary["rust"], summary["python"]
        first = True
        for field, label in ROWS:
            values = [f.get(field) if f else None for f in (rust, python)]
            if all(v is None for v in values):
                continue
            if field == "bytes" and scenario.kind != "bulk":
                continue
            # fake-ehr counts only searches and reads in flight; one export has no cohort.
            if field in ("per_patient", "max_in_flight") and scenario.kind == "bulk":
                continue
            ours, theirs = values
            if python is None:
                theirs_text = python_notes.get(key, "not run") if first else ""
            else:
                theirs_text = fmt_value(field, theirs)
            ratio = ""
            if ours is not None and theirs and field not in ("bound", "max_in_flight",
                                                             "max_downloads"):
                ratio = f"{ours / theirs:.2f}"
            if field == "bound":
                ratio = ""
            title = scenario.title if first else ""
            lines.append(f"| {title} | {label} | {fmt_value(field, ours)} | {theirs_text} | {ratio} |")
            first = False
        replay = summary.get("replay")
        if replay:
            lines.append(f"| | Same searches by curl, {scenario.connections} in parallel "
                         f"(what a minimal client gets from this server) | "
                         f"{fmt_value('wall', replay['wall'])} | | |")
            lines.append(f"| | Efficiency against curl (curl's wall ÷ ours) | "
                         f"{replay['wall'] / rust['wall']:.2f} | "
                         f"{replay['wall'] / python['wall']:.2f} | |" if python else
                         f"| | Efficiency against curl (curl's wall ÷ ours) | "
                         f"{replay['wall'] / rust['wall']:.2f} | | |")
        disk = summary.get("disk")
        if disk:
            lines.append(f"| | With --no-compression: NDJSON to disk as it arrives (downloading time) | "
                         f"{disk['plain_bytes'] / MIB:,.0f} MiB in {disk['plain_wall']:.2f} s = "
                         f"{disk['plain_bytes'] / MIB / disk['plain_wall']:.0f} MiB/s | | |")
            lines.append(f"| | The disk: as many bytes written in 1 MiB blocks, then fsync "
                         f"| {disk['disk_bytes'] / MIB:,.0f} MiB in {disk['disk_wall']:.2f} s = "
                         f"{disk['disk_bytes'] / MIB / disk['disk_wall']:.0f} MiB/s | | |")
        if python is not None:
            same = ("yes, byte for byte" if summary["same_output"] else
                    "yes, but for the spelling of numbers (1.50 vs 1.5)"
                    if summary["same_normalized"] else
                    "same resource counts, different lines"
                    if summary["same_counts"] else "NO: resource counts differ")
            lines.append(f"| | Same resources in every run | {same} | | |")
        if "wait4" in summary.get("rss_source", []):
            lines.append("| | (peak RSS from wait4: an upper bound, /usr/bin/time missing) | | | |")
    return "\n".join(lines)


def targets(results):
    """One line per target of issue 6 that the figures can check."""
    out = []

    def check(ok, text):
        out.append(f"- [{'x' if ok else ' '}] {text}")

    def get(key, tool):
        s = results.get(key)
        return s and s.get(tool)

    if get("a", "rust"):
        e = results["a"]["rust"]["efficiency"]
        replay = results["a"].get("replay")
        against = ""
        if replay:
            curl_eff = results["a"]["rust"]["bound"] / replay["wall"]
            ours_vs_curl = replay["wall"] / results["a"]["rust"]["wall"]
            against = (f" (curl sending the same searches gets {curl_eff:.2f}; "
                       f"we run at {ours_vs_curl:.2f} of curl's speed)")
        check(e >= 0.9, f"(a) efficiency ≥ 0.9 of the connection-budget bound: {e:.2f}{against}")
    if get("b", "rust") and get("b", "python"):
        r = results["b"]["rust"]["cpu"] / results["b"]["python"]["cpu"]
        check(r <= 0.1, f"(b) CPU time ≤ 1/10 of the Python tool's: {r:.3f}")
    for key in ("a", "b", "c", "d"):
        if get(key, "rust") and get(key, "python"):
            r = results[key]["rust"]["rss"] / results[key]["python"]["rss"]
            check(r <= 0.25, f"({key}) peak RSS ≤ 1/4 of the Python tool's: {r:.2f}")
    if get("b", "rust") and get("c", "rust"):
        r = results["c"]["rust"]["rss"] / results["b"]["rust"]["rss"]
        check(r <= 1.5, f"(c) peak RSS ≤ 1.5 × (b)'s: {r:.2f}")
    for key in ("a", "b", "c"):
        if get(key, "rust") and get(key, "python"):
            ours = results[key]["rust"]["per_patient"]
            theirs = results[key]["python"]["per_patient"]
            same = results[key].get("same_normalized")
            check(ours <= theirs and same,
                  f"({key}) requests per patient ≤ the Python tool's, same output: "
                  f"{ours:.2f} vs {theirs:.2f}, {'same' if same else 'DIFFERENT'} resources")
    if "batch" in results:
        rust = results["batch"]["rust"]
        check(rust["efficiency"] >= 0.9,
              f"(batch) efficiency ≥ 0.9: {rust['efficiency']:.2f}")
        check(rust["rss"] <= 64 * MIB,
              f"(batch) peak RSS ≤ 64 MB for the whole batch: {rust['rss'] / MIB:.1f} MiB")
    if "delta" in results:
        r = results["delta"]
        check(r["rss"] <= 64 * MIB,
              f"(delta) peak RSS ≤ 64 MB for a 20,000-patient group: {r['rss'] / MIB:.1f} MiB")
        check(r["cpu"] <= 3 * r["zcat_cpu"],
              f"(delta) CPU time comparable to reading both exports once (≤ 3 × zcat's): "
              f"{r['cpu'] / r['zcat_cpu']:.1f} ×")
    if "resume" in results:
        r = results["resume"]
        check(r["extra"] <= 0.05 and r["same_output"],
              f"resume waste ≤ 5 % more requests: {r['extra'] * 100:+.2f} %, output "
              f"{'identical' if r['same_output'] else 'DIFFERENT'}")
    if get("d", "rust") and get("d", "python"):
        r = results["d"]["rust"]["cpu"] / results["d"]["python"]["cpu"]
        check(r <= 0.2, f"(d) bulk download CPU time ≤ 1/5 of the Python tool's: {r:.3f}")
    if get("faults-5xx", "rust"):
        f = results["faults-5xx"]["rust"]
        check(f["ratio"] <= 1.3 and f["same_as_clean"],
              f"(faults-5xx, issue 14) wall with 5 % of 500/502 ≤ 1.3 × the clean run's: "
              f"{f['ratio']:.2f}, output {'identical' if f['same_as_clean'] else 'DIFFERENT'}")
    if get("faults", "rust"):
        f = results["faults"]["rust"]
        p = get("faults", "python")
        versus = f", the Python tool {p['wall']:.1f} s ({p['ratio']:.2f} ×)" if p else ""
        check(f["same_as_clean"] and f["exits"] == [0],
              f"(faults) same output as the clean run, exit 0: {f['wall']:.1f} s "
              f"({f['ratio']:.2f} × clean){versus}")
    # Issue 14: batched reads and lookups.
    for key in ("e", "f"):
        if get(key, "rust") and get(key, "python"):
            ours = results[key]["rust"]["per_patient"]
            theirs = results[key]["python"]["per_patient"]
            same = results[key].get("same_normalized")
            check(ours <= 0.6 * theirs and same,
                  f"({key}) requests per patient with the default hydration ≤ 0.6 × the Python "
                  f"tool's, same output: {ours:.2f} vs {theirs:.2f} ({ours / theirs:.2f} ×), "
                  f"{'same' if same else 'DIFFERENT'} resources")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*",
                        help="a b c d e f resume batch faults faults-5xx delta, or all (default: a b resume)")
    parser.add_argument("--bin", required=True, type=Path, help="folder with smart-fetch and fake-ehr")
    parser.add_argument("--python-tool", required=True, help="the Python smart-fetch executable")
    parser.add_argument("--work", required=True, type=Path, help="work folder")
    parser.add_argument("--runs", type=int, default=2, help="runs of each tool (default 2)")
    parser.add_argument("--python-c", action="store_true",
                        help="also run the Python tool in (c) (about a quarter of an hour per run)")
    parser.add_argument("--no-python", action="store_true",
                        help="run only smart-fetch (quick trials; no ratios)")
    parser.add_argument("--patients", type=int,
                        help="override every scenario's patient count (quick trials)")
    args = parser.parse_args()
    if args.patients:
        for scenario in SCENARIOS.values():
            scenario.patients = args.patients

    wanted = args.scenarios or ["a", "b", "resume"]
    if "all" in wanted:
        wanted = list(SCENARIOS)
    for key in wanted:
        if key not in SCENARIOS:
            parser.error(f"unknown scenario {key!r} (choose from {', '.join(SCENARIOS)}, all)")
    wanted = [k for k in SCENARIOS if k in wanted]

    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    bins = args.bin.resolve()
    ours = str(bins / "smart-fetch")
    results = {}
    raw = {}
    python_notes = {}
    for key in wanted:
        scenario = SCENARIOS[key]
        log(f"{scenario.title}")
        work = args.work / "runs"
        work.mkdir(parents=True, exist_ok=True)
        mrn_file = args.work / f"mrns-{scenario.patients}.txt"
        with open(mrn_file, "w") as f:
            subprocess.run([str(bins / "fake-ehr"), "mrns", "--patients", str(scenario.patients)],
                           stdout=f, check=True)
        if scenario.kind == "resume":
            results[key] = resume_runs(scenario, bins, work, mrn_file)
            raw[key] = results[key]
            continue
        if scenario.kind == "batch":
            results[key] = batch_runs(scenario, bins, work, args.python_tool, not args.no_python)
            raw[key] = results[key]
            continue
        if scenario.kind == "delta":
            results[key] = delta_runs(scenario, bins, work, args.runs)
            raw[key] = results[key]
            continue
        if scenario.kind == "faults":
            results[key], raw[key] = faults_runs(scenario, bins, work, mrn_file,
                                                 args.python_tool, not args.no_python, args.runs)
            continue
        with_python = not args.no_python and not (key == "c" and not args.python_c)
        if args.no_python:
            python_notes[key] = "not run (--no-python)"
        elif not with_python:
            python_notes[key] = "not run (too slow: about 15 min per run; add --python-c)"
        rust_runs, python_runs = [], []
        for i in range(args.runs):
            # Alternate who goes first: Rust, Python, then Python, Rust, ...
            order = [("rust", ours, rust_runs), ("python", args.python_tool, python_runs)]
            if i % 2:
                order.reverse()
            for tool, path, into in order:
                if tool == "python" and not with_python:
                    continue
                keep = (tool == "rust" and i == 0 and scenario.latency_ms > 0
                        and scenario.kind == "crawl")
                into.append(one_run(tool, path, scenario, bins, work, i, mrn_file, keep))
        disk = None
        if scenario.kind == "bulk":
            disk = disk_reference(scenario, bins, work, mrn_file, ours)
        replay = None
        if scenario.latency_ms > 0 and scenario.kind == "crawl":
            replay = curl_replay(scenario, bins, work, rust_runs[0].pop("search_urls", None))
        results[key] = summarize(scenario, rust_runs, python_runs)
        if replay:
            results[key]["replay"] = replay
        if disk:
            results[key]["disk"] = disk
        raw[key] = {"rust": rust_runs, "python": python_runs, "curl": replay, "disk": disk}

    text = table(results, python_notes)
    checks = targets(results)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    report = (f"Benchmark of {stamp}, {os.cpu_count()} CPUs, mean of {args.runs} runs per tool "
              f"(load average at the start: {load_before:.2f})\n\n{text}\n\nTargets (issues 6 and 14):\n{checks}\n")
    print(report)
    results_dir = args.work / "results"
    results_dir.mkdir(exist_ok=True)
    name = time.strftime("%Y%m%d-%H%M%S")
    (results_dir / f"{name}.md").write_text(report)
    (results_dir / f"{name}.json").write_text(json.dumps({"summary": results, "runs": raw}, indent=1))
    log(f"Saved to {results_dir}/{name}.md and .json")


if __name__ == "__main__":
    main()
