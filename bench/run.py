#!/usr/bin/env python3
"""What the aggregator costs servo, measured: start-up, the DESCRIBE, ADJUST and MEASURE
cycles against the floor of the same driver calls made directly, progress relay, peak memory
while a driver floods it, and what the journal adds to the ADJUST and MEASURE cycles.

    python bench/run.py [--adjust PATH ...] [--runs N] [--smoke] [--only GROUP ...]
                        [--json FILE] [--roots DIR]

Every figure is a median over interleaved rounds: each round runs every row once for each
aggregator and for the direct floor, in a rotated order, so machine noise falls on all
alike; overheads are medians of the per-round differences. Stdlib only, so the bench
itself costs nothing it measures. Roots, drivers and requests are generated in a
temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import functools
import json
import math
import os
import platform
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ADJUST = REPO / "adjust"
MIB = 1 << 20

#: Wall time of one call of a generated driver, start to exit, when it has a core to itself.
DRIVER_START_SECONDS = 0.070
RELAY_DRIVERS = 4
#: servo-agg's default progress_interval: the relay's newest state may wait that long.
PROGRESS_INTERVAL = 0.25
#: Nothing in the bench should take this long; past it the run is killed and reported.
CALL_TIMEOUT = 120.0
#: How often the aggregator's VmHWM is read while it runs.
RSS_SAMPLE_SECONDS = 0.002
FLOOR = "direct"


class BenchFailure(Exception):
    """A measured program misbehaved (wrong exit code or output): the row shows 'error'."""


@dataclass(frozen=True)
class Params:
    runs: int
    startup_reps: int  # (a) samples per round: start-up is short, so it gets a few
    journal_reps: int  # (f) on/off pairs per round: the difference is small, so a few
    cycle_drivers: int  # (b), (c): drivers in the DESCRIBE and ADJUST cycles
    measure_drivers: int  # (b), (c), (f): in the MEASURE cycles, the last a load generator
    calibration_runs: int  # driver starts timed to calibrate the drivers' sleep
    group_drivers: int  # the ADJUST group rows (#18): this many drivers in one group,
    group_adjust_seconds: float  # each adjust this long
    relay_lines: int  # per relay driver
    stderr_bytes: int
    line_bytes: int
    series_points: int  # in the measure result of the (e) time-series row
    real_drivers: bool  # drivers start like real Python ones (REAL_START), or bare
    warm_parallel: bool  # the warm-up asks the parallel_queries root too, not only seq
    groups: tuple[str, ...]  # which of GROUPS run


#: The groups of rows, in the order a round runs them (row keys start with the name).
GROUPS = ("startup", "describe", "adjust", "measure", "relay", "rss", "journal")

FULL = Params(runs=7, startup_reps=3, journal_reps=3, cycle_drivers=8, measure_drivers=4,
              calibration_runs=5, group_drivers=4, group_adjust_seconds=0.5,
              relay_lines=10_000, stderr_bytes=200 * MIB, line_bytes=50 * MIB,
              series_points=1_000_000, real_drivers=True, warm_parallel=True,
              groups=GROUPS)
#: Every row once, as cheaply as it still runs (the test suite runs it, and pays for each
#: process it starts): two cycle drivers, a metric reader and a load generator, a group of
#: two short adjusts, floods that are still over every bound they test (stderr 16 times
#: the 64 KiB kept, the line over the 1 MiB cap), a time series of 20,000 points (~3 MiB
#: once parsed), and bare drivers (`python3 -S`, importing only what they use: half the
#: CPU of a real one's start); the warm-up skips the parallel_queries root, whose one
#: round asks it all the same (nothing is compared in a smoke run).
SMOKE = Params(runs=1, startup_reps=1, journal_reps=1, cycle_drivers=2, measure_drivers=2,
               calibration_runs=1, group_drivers=2, group_adjust_seconds=0.05,
               relay_lines=200, stderr_bytes=1 * MIB, line_bytes=2 * MIB,
               series_points=20_000, real_drivers=False, warm_parallel=False,
               groups=GROUPS)

#: (f) Records written in process per sample of the journal's own cost.
JOURNAL_WRITES = 50


# -- the rows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str  # ms, lines/s, lines, MiB
    baseline: bool = False  # measured without an aggregator: one value, in the direct column
    target: float | None = None  # an upper bound


def rows(params: Params) -> list[Row]:
    n = params.relay_lines
    cycle = params.cycle_drivers
    total = RELAY_DRIVERS * n
    stderr_mib = params.stderr_bytes // MIB
    line_mib = params.line_bytes // MIB
    over = "    overhead (cycle − floor)"
    table = [
        Row("startup.python", "(a) python3 -c pass (a plain python3)", "ms", baseline=True),
        Row("startup.info", "(a) adjust --info app", "ms"),
        Row("startup.info.over", "    overhead (− python3 -c pass)", "ms", target=5),
        Row("startup.info_cfg", "(a) adjust --info app, with aggregator: section", "ms"),
        Row("startup.info_cfg.over", "    overhead (− python3 -c pass)", "ms", target=5),
        Row("startup.minfo", "(a) measure --info app", "ms"),
        Row("startup.minfo.over", "    overhead (− python3 -c pass)", "ms", target=5),
        Row("startup.iinfo", "(a) servo-agg --info app, installed (bin/servo-agg)", "ms"),
        Row("startup.iinfo.over", "    overhead (− python3 -c pass)", "ms", target=5),
    ]
    for mode, how, queries in (("seq", "sequential", "one after another"),
                               ("par", "parallel_queries", "concurrently")):
        table += [
            Row(f"describe.{mode}.floor",
                f"(c) {cycle} driver queries, {queries}", "ms", baseline=True),
            Row(f"describe.{mode}.cycle", f"(b) DESCRIBE ({how}): --info, --query", "ms"),
            Row(f"describe.{mode}.over", over, "ms", target=150),
            Row(f"adjust.{mode}.floor",
                f"(c) {cycle} driver queries {queries}, then {cycle} adjusts",
                "ms", baseline=True),
            Row(f"adjust.{mode}.cycle", f"(b) ADJUST ({how}): --info, adjust", "ms"),
            Row(f"adjust.{mode}.over", over, "ms", target=150),
        ]
    g, secs = params.group_drivers, params.group_adjust_seconds
    table += [
        Row("adjust.group.floor", f"(c) {g} driver queries one after another, then {g} "
            f"adjusts of {secs:g} s at once", "ms", baseline=True),
        Row("adjust.group.cycle", f"(b) ADJUST, {g} drivers in one group (groups: prefix): "
            "--info, adjust", "ms"),
        Row("adjust.group.over", over, "ms", target=150),
        Row("adjust.alone.floor", f"(c) the same {g} queries, then the {g} adjusts one after "
            "another", "ms", baseline=True),
        Row("adjust.alone.cycle", f"(b) ADJUST, the same {g} drivers one at a time: --info, "
            "adjust", "ms"),
        Row("adjust.alone.over", over, "ms", target=150),
    ]
    m = params.measure_drivers
    table += [
        Row("measure.describe.floor", f"(c) {m} measure drivers' --describe, concurrently",
            "ms", baseline=True),
        Row("measure.describe.cycle", "(b) MEASURE DESCRIBE: --info, --describe", "ms"),
        Row("measure.describe.over", over, "ms", target=150),
        Row("measure.measure.floor",
            f"(c) {m} --describe concurrently, then {m} measures concurrently", "ms",
            baseline=True),
        Row("measure.measure.cycle", "(b) MEASURE: --info, measure", "ms"),
        Row("measure.measure.over", over, "ms", target=150),
    ]
    newest = "    delay, a driver's write → servo sees that state or a newer one"
    table += [
        Row("relay.floor.wall", f"(d) drivers straight to the bench: {RELAY_DRIVERS}×{n} lines",
            "ms", baseline=True),
        Row("relay.floor.p99", "    delay write → read, p99 (measuring floor)", "ms",
            baseline=True),
        Row("relay.read", f"(d) {RELAY_DRIVERS}×{n} progress lines relayed: reading "
            "(each driver's first write → last)", "ms", target=300 * n / 10_000),
        Row("relay.rate", "    lines read per second", "lines/s"),
        Row("relay.wall", "    each driver's first write → servo sees its last state", "ms"),
        Row("relay.cpu", "    aggregator CPU time, user + sys, whole command", "ms"),
        Row("relay.p50", f"{newest}, p50", "ms"),
        Row("relay.p99", f"{newest}, p99", "ms", target=(PROGRESS_INTERVAL + 0.005) * 1000),
        Row("relay.out", f"    progress lines out (of {total})", "lines"),
        Row("rss.stderr", f"(e) peak RSS, a driver writes {stderr_mib} MiB to stderr", "MiB",
            target=60),
        Row("rss.line", f"(e) peak RSS, a driver writes a {line_mib} MiB line", "MiB",
            target=60),
        Row("rss.series", f"(e) peak RSS, ./measure relays a result of a "
            f"{params.series_points:,}-point time series ({series_mib(params):.1f} MiB)",
            "MiB", target=series_bound(params)),
        Row("rss.series.ratio", "    peak RSS ÷ result size", "x"),
    ]
    for kind, label in (("adjust", "ADJUST (sequential)"), ("measure", "MEASURE")):
        table += [
            Row(f"journal.{kind}.off", f"(f) {label}, journal: {{enabled: false}}", "ms"),
            Row(f"journal.{kind}.on", f"(f) {label}, journal on", "ms"),
            Row(f"journal.{kind}.cost", "    the journal's cost (on − off)", "ms", target=2),
            Row(f"journal.{kind}.ratio", "    on / off", "ratio"),
        ]
    table += [
        Row("journal.imports", "(f) importing the journal's modules, trio loaded (once a run)",
            "ms"),
        Row("journal.write", f"(f) one record of the ADJUST cycle ({2 * cycle} calls) "
            "built and appended", "ms", target=2),
    ]
    return [row for row in table if row.key.split(".")[0] in params.groups]


# -- generated drivers ---------------------------------------------------------------------

# A driver that starts like a real Python one: the interpreter starts and imports what
# drivers usually import (real CPU work), then it sleeps for the rest of its start-up time.
# Sleeping rather than burning CPU keeps the floor a property of the drivers, not of the
# core count: eight CPU-bound drivers started together on two cores would measure the
# machine, and would hide the aggregator's own CPU time behind theirs.
REAL_IMPORTS = "argparse, json, logging, os, subprocess, sys, time"
REAL_START = r'''import @IMPORTS@

SLEEP = @SLEEP@


def ready():
    if SLEEP > 0:
        time.sleep(SLEEP)


args = sys.argv[1:]
'''

CYCLE_DRIVER = r'''#!/usr/bin/env @PYTHON@
"""Benchmark driver @INDEX@: starts like a real Python driver, then answers at once."""
''' + REAL_START + r'''DESCRIPTOR = @DESCRIPTOR@
if "--info" in args:
    ready()
    print(json.dumps({"version": "1.0", "has_cancel": False}))
    sys.exit(0)
if "--query" in args or "--describe" in args:
    ready()
    print(json.dumps(DESCRIPTOR))
    sys.exit(0)
request = json.load(sys.stdin)
ready()
time.sleep(@ADJUST_SLEEP@)  # the adjust's own work (a rollout waiting for its pods)
for component, body in request["application"]["components"].items():
    for setting, value in body["settings"].items():
        message = "set " + component + "." + setting + " to " + str(value["value"])
        print(json.dumps({"progress": 50, "message": message}), flush=True)
print(json.dumps({"progress": 100, "message": "done"}), flush=True)
print(json.dumps({"status": "ok", "reason": "success"}))
'''

# A measure driver that starts like a real Python one (REAL_START, as CYCLE_DRIVER), then
# describes METRICS and measures them at once. One with no METRICS is a load generator:
# it describes nothing and returns no metrics, as hey does.
MEASURE_DRIVER = r'''#!/usr/bin/env @PYTHON@
"""Benchmark measure driver @INDEX@: starts like a real Python driver, then answers."""
''' + REAL_START + r'''METRICS = @METRICS@
if "--info" in args:
    ready()
    print(json.dumps({"version": "1.0", "has_cancel": True}))
    sys.exit(0)
if "--describe" in args or "--query" in args:
    ready()
    print(json.dumps({"status": "ok", "metrics": {m: {"unit": "rpm"} for m in METRICS}}))
    sys.exit(0)
request = json.load(sys.stdin)
ready()
print(json.dumps({"progress": 50, "message": "measuring"}), flush=True)
wanted = [m for m in request["metrics"] if m in METRICS]
print(json.dumps({"status": "ok", "metrics": {m: {"value": 1.0, "unit": "rpm"} for m in wanted},
                  "annotations": {"driver": "@INDEX@"}}))
'''

# How the flood drivers below answer --info and --query, and read the request: quickly,
# since only their adjust is measured.
QUICK_ANSWERS = r'''if "--info" in sys.argv:
    print(json.dumps({"version": "1.0", "has_cancel": False}))
    sys.exit(0)
if "--query" in sys.argv or "--describe" in sys.argv:
    print(json.dumps(@DESCRIPTOR@))
    sys.exit(0)
json.load(sys.stdin)
'''

# Writes LINES progress lines as fast as it can, each stamped with CLOCK_MONOTONIC (system
# wide on Linux) just before its own write, and each different. The stamps also go to
# stamps.ID in its working directory (the servo root) once its result is written: the
# bench needs every write's time, also of lines a rate-limiting aggregator never passes on.
RELAY_DRIVER = r'''#!/usr/bin/env @PYTHON@
"""Benchmark driver: a progress flood, every line stamped with the time it was written."""
import json, os, sys, time

ID = @INDEX@
LINES = @LINES@
''' + QUICK_ANSWERS + r'''now, write, stamps = time.monotonic, os.write, []
for i in range(LINES):
    stamp = now()
    stamps.append(stamp)
    line = '{"progress": %d, "message": "%.6f d%d %d"}\n' % (i * 100 // LINES, stamp, ID, i)
    write(1, line.encode())
write(1, b'{"status": "ok", "reason": "success"}\n')
with open("stamps.%d" % ID, "w") as out:
    out.write("\n".join("%.6f" % stamp for stamp in stamps))
'''

# Floods a pipe from a small, reused buffer, so the driver itself stays small.
FLOOD_DRIVER = r'''#!/usr/bin/env @PYTHON@
"""Benchmark driver: writes @BYTES@ bytes to fd @FD@ (@WHAT@), then reports success."""
import json, os, sys

''' + QUICK_ANSWERS + r'''chunk = memoryview(@CHUNK@ * (1 << 14))
left = @BYTES@
try:
    while left > 0:
        left -= os.write(@FD@, chunk[:left])
    os.write(@FD@, b"\n")
except BrokenPipeError:
    os._exit(1)
print(json.dumps({"status": "ok", "reason": "success"}))
'''


# A measure driver whose result is one large time series, as a Prometheus reader's: it
# copies series.json (written by the bench) to stdout.
SERIES_DRIVER = r'''#!/usr/bin/env @PYTHON@
"""Benchmark measure driver: one metric, a time series of many points."""
import json, shutil, sys

if "--describe" in sys.argv:
    print(json.dumps({"status": "ok", "metrics": {"p99": {"unit": "ms"}}}))
    sys.exit(0)
json.load(sys.stdin)
with open("series.json", "rb") as series:
    shutil.copyfileobj(series, sys.stdout.buffer)
'''


@functools.cache
def series_result(points: int) -> bytes:
    """A measure result holding one metric, a time series of `points` [timestamp, value]
    pairs (about 20 bytes of JSON each), and its newline."""
    data = [[1_700_000_000 + i, i % 1000 / 10 + 0.5] for i in range(points)]
    result = {"status": "ok",
              "metrics": {"p99": {"unit": "ms", "values": [{"id": "pod-1", "data": data}]}}}
    return json.dumps(result).encode() + b"\n"


def series_mib(params: Params) -> float:
    return len(series_result(params.series_points)) / MIB


def series_bound(params: Params) -> float:
    """docs/supervision.md's bound: about 30 MiB of its own, plus 12 times the result (the
    parsed series, ~160 bytes of Python objects per ~20-byte point, and two copies of the
    final line as it is written)."""
    return 30 + 12 * series_mib(params)


def descriptor(component: str) -> dict[str, Any]:
    return {"application": {"components": {component: {"settings": {
        "x": {"type": "range", "value": 1, "min": 0, "max": 100, "step": 1}}}}}}


def measured_metrics(params: Params, k: int) -> list[str]:
    """What measure driver k describes: the last one is a load generator, describing none."""
    return [] if k == params.measure_drivers else [f"m{k}"]


def measure_metrics(params: Params) -> list[str]:
    """Every metric the MEASURE rows ask for, and so expect back."""
    return [m for k in range(1, params.measure_drivers + 1) for m in measured_metrics(params, k)]


def measure_request(metrics: Sequence[str]) -> bytes:
    body = {"metrics": list(metrics),
            "control": {"duration": 0, "warmup": 0, "userdata": {"bench": True}}}
    return json.dumps(body).encode()


def request(components: Sequence[str], value: int) -> bytes:
    body = {"application": {"components": {
        c: {"settings": {"x": {"value": value}}} for c in components}},
        "control": {"userdata": {"bench": True}}}
    return json.dumps(body).encode()


def fill(template: str, **values: object) -> str:
    for name, value in values.items():
        template = template.replace(f"@{name}@", str(value))
    assert "@" not in template.replace("@@", ""), template
    return template


def write_executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# -- running things ------------------------------------------------------------------------

@dataclass
class Done:
    seconds: float
    returncode: int
    stdout: bytes
    stderr: bytes
    cpu: float = math.nan  # the process's own user + sys seconds, where measured

    def check(self, what: str, code: int = 0) -> Done:
        if self.returncode != code:
            tail = self.stderr.decode("utf-8", "replace").strip()[-600:]
            raise BenchFailure(f"{what}: exit code {self.returncode}; stderr: {tail!r}; "
                               f"stdout: {self.stdout[-300:]!r}")
        return self

    def final(self, what: str) -> dict[str, Any]:
        lines = self.stdout.decode("utf-8", "replace").strip().splitlines()
        try:
            parsed = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise BenchFailure(f"{what}: last stdout line is not JSON: "
                               f"{self.stdout[-300:]!r}") from None
        if not isinstance(parsed, dict):
            raise BenchFailure(f"{what}: last stdout line is not a JSON object")
        return parsed


def run(argv: Sequence[str], cwd: Path, env: dict[str, str], stdin: bytes = b"") -> Done:
    """Start, feed, wait; the time is from just before the start to just after the exit."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, input=stdin,
                              capture_output=True, timeout=CALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise BenchFailure(f"{' '.join(argv)}: still running after {CALL_TIMEOUT:g} s") from None
    return Done(time.perf_counter() - started, proc.returncode, proc.stdout, proc.stderr)


def run_concurrently(argvs: Sequence[Sequence[str]], cwd: Path, env: dict[str, str],
                     stdin: Path | Sequence[Path] | None = None) -> tuple[float, list[Done]]:
    """All started at once, all waited for; the time is until the last exit. Each reads
    the file `stdin`, or its own of a list of them (its own open file, so none waits for
    another to be fed)."""
    feeds = list(stdin) if isinstance(stdin, Sequence) else [stdin] * len(argvs)
    started = time.perf_counter()
    procs = []
    for argv, path in zip(argvs, feeds, strict=True):
        with open(path or os.devnull, "rb") as feed:
            procs.append(subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=feed,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
                p.wait()
            raise BenchFailure("a concurrently started driver did not finish") from None
        outs.append((proc.returncode, out, err))
    seconds = time.perf_counter() - started
    return seconds, [Done(seconds, code, out, err) for code, out, err in outs]


def own_cpu_seconds(pid: int) -> float:
    """User + system time of the exited but not yet reaped process itself (not of its
    children): /proc/PID/stat's utime and stime, in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_stamped(argv: Sequence[str], cwd: Path, env: dict[str, str],
                stdin: bytes) -> tuple[list[tuple[float, bytes]], Done]:
    """Like run(), but every stdout line is stamped (CLOCK_MONOTONIC) when it is read, and
    the process's own CPU time is taken between its exit and its reaping."""
    lines: list[tuple[float, bytes]] = []
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(stdin)  # a small request: fits in the pipe, never blocks
        proc.stdin.close()
        fd = proc.stdout.fileno()
        buffer = b""
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], CALL_TIMEOUT)
                if not ready:
                    raise BenchFailure(f"{' '.join(argv)}: silent for {CALL_TIMEOUT:g} s")
                chunk = os.read(fd, MIB)
                arrived = time.monotonic()
                if not chunk:
                    break
                buffer += chunk
                if b"\n" in buffer:
                    *complete, buffer = buffer.split(b"\n")
                    lines.extend((arrived, line) for line in complete)
            pidfd = os.pidfd_open(proc.pid)
            try:
                exited, _, _ = select.select([pidfd], [], [], CALL_TIMEOUT)
            finally:
                os.close(pidfd)
            if not exited:
                raise BenchFailure(f"{' '.join(argv)}: closed stdout but did not exit")
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
            cpu = own_cpu_seconds(proc.pid)
        except BaseException:
            proc.kill()
            raise
        finally:
            code = proc.wait(timeout=CALL_TIMEOUT)
            proc.stdout.close()
        seconds = time.perf_counter() - started
        err.seek(0)
        done = Done(seconds, code, b"\n".join(line for _, line in lines[-3:]), err.read(), cpu)
    return lines, done


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set so far (0 once it has exited and released it)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_sampling_rss(argv: Sequence[str], cwd: Path, env: dict[str, str],
                     stdin: bytes) -> tuple[float, Done]:
    """Peak RSS (MiB) of the process itself: its VmHWM, read every few ms until it exits (a
    pidfd says when). Not ru_maxrss from wait4 or RUSAGE_CHILDREN: that is the largest of the
    process and everything it reaped (its drivers), and on Linux it also counts the memory
    the child inherited from the forking parent before exec, i.e. this bench's own."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.PIPE,
                                stdout=out, stderr=err)
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
        pidfd = os.pidfd_open(proc.pid)
        peak = 0
        try:
            deadline = time.monotonic() + CALL_TIMEOUT
            while True:
                peak = max(peak, vm_hwm_kib(proc.pid))
                exited, _, _ = select.select([pidfd], [], [], RSS_SAMPLE_SECONDS)
                if exited:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    raise BenchFailure(f"{' '.join(argv)}: still running after "
                                       f"{CALL_TIMEOUT:g} s")
        finally:
            os.close(pidfd)
            code = proc.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        done = Done(seconds, code, out.read(), err.read())
    return peak / 1024, done


# -- delays ----------------------------------------------------------------------------------

STAMP = re.compile(r"(\d+\.\d{6}) d(\d+) (\d+)")
#: A relay driver's end as servo-agg reports it: the driver's file name is NNflood.
DRIVER_END = re.compile(r"^0*(\d+)flood: (?:done|failed)$")

State = tuple[int, float]  # (driver, its line number); math.inf once it ended


@dataclass
class Relay:
    wall: float  # seconds: per driver, its first write until servo saw its last state; summed
    read: float  # seconds: per driver, its first write to its last (its pipe is small); summed
    delays: list[float]  # per line written: until servo saw that state or a newer one
    out: int  # progress lines that came out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def line_state(message: dict[str, Any]) -> State | None:
    """Which state of which relay driver a progress line shows (None: not a driver's)."""
    text = str(message.get("message", ""))
    found = STAMP.search(text)
    if found is not None:
        return int(found.group(2)), float(found.group(3))
    ended = DRIVER_END.match(text)
    return None if ended is None else (int(ended.group(1)), math.inf)


def analyse_relay(lines: Sequence[tuple[float, bytes]],
                  written: dict[int, list[float]]) -> Relay:
    """For every line a driver wrote (`written`: each driver's write times), when servo
    first saw it or a newer state (a rate-limited relay passes on only the newest; the
    drivers run one after another, so newer is later in (driver, line) order); per
    driver, its first write to its last, and to servo seeing its last state."""
    arrivals: list[float] = []
    states: list[State] = []  # the newest state shown so far, at each progress line
    newest: State = (-1, -math.inf)
    out = 0
    for arrived, raw in lines:
        try:
            message = json.loads(raw)
        except ValueError:
            raise BenchFailure(f"a stdout line is not JSON: {raw[:200]!r}") from None
        if not isinstance(message, dict) or "progress" not in message:
            continue
        out += 1
        state = line_state(message)
        if state is not None:
            newest = max(newest, state)
            arrivals.append(arrived)
            states.append(newest)

    def seen(driver: int, line: int) -> float:
        at = bisect.bisect_left(states, (driver, float(line)))
        if at == len(states):
            raise BenchFailure(f"servo never saw line {line} of driver {driver} nor a newer "
                               "state")
        return arrivals[at]

    delays: list[float] = []
    wall = read = 0.0
    for driver, stamps in sorted(written.items()):
        delays += [seen(driver, i) - stamp for i, stamp in enumerate(stamps)]
        wall += seen(driver, len(stamps) - 1) - stamps[0]
        read += stamps[-1] - stamps[0]
    return Relay(wall, read, delays, out)


def take_stamps(root: Path, drivers: Sequence[int]) -> dict[int, list[float]]:
    """The write times the relay drivers left in the servo root (removed once read)."""
    written = {}
    for driver in drivers:
        path = root / f"stamps.{driver}"
        try:
            written[driver] = [float(v) for v in path.read_text().split()]
        except (OSError, ValueError) as exc:
            raise BenchFailure(f"relay driver {driver} left no write times: {exc}") from None
        path.unlink()
    return written


# -- the bench ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Aggregator:
    letter: str
    path: Path


@dataclass
class Roots:
    seq: Path
    par: Path
    measure: Path
    relay: Path
    stderr: Path
    line: Path
    series: Path
    journal_on: Path  # (f): as seq and measure, with journal: {enabled: true} ...
    journal_off: Path  # ... and {enabled: false} (both parse the aggregator section)
    group: Path  # Params.group_drivers drivers in one adjust group ...
    alone: Path  # ... and the same drivers one at a time


@dataclass
class Results:
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, column: str, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.samples.setdefault((key, column), []).append(value)

    def median(self, key: str, column: str) -> float | None:
        values = self.samples.get((key, column))
        return statistics.median(values) if values else None


def bench_env() -> dict[str, str]:
    """The environment servo would give the aggregator: this Python's bin first on PATH, and
    no PYTHON* or OPTUNE_* settings (PYTHONDONTWRITEBYTECODE, say, would make every start
    compile the aggregator from source; PYTHONUNBUFFERED would change how drivers write)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "OPTUNE_"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


class Bench:
    def __init__(self, params: Params, aggregators: list[Aggregator], work: Path) -> None:
        self.params = params
        self.aggregators = aggregators
        self.work = work
        self.env = bench_env()
        self.plain_env = self.env  # start-up rows: a python3 with nothing installed (below)
        self.installed: dict[str, Path] = {}  # each aggregator's bin/servo-agg, installed
        self.results = Results()
        self.driver_sleep = 0.0
        self.driver_start = 0.0
        self.roots = Roots(*(work / name for name in (
            "seq", "par", "measure", "relay", "stderr", "line", "series", "journal-on",
            "journal-off", "group", "alone")))

    # -- set-up -------------------------------------------------------------------------
    def make_plain_python(self) -> None:
        """The start-up rows run under a venv with nothing installed: the python3 of a
        servo host where servo-agg is copied in, not the dev venv, whose editable install
        pre-imports modules (pathlib, re) at every start and so hides what --info imports."""
        where = self.work / "plain-python"
        venv.create(where, with_pip=False, symlinks=True)
        self.plain_env = dict(self.env)
        self.plain_env["PATH"] = str(where / "bin") + os.pathsep + self.env["PATH"]
        for agg in self.aggregators:
            self.install(agg)

    def install(self, agg: Aggregator) -> None:
        """`agg` as pip installs it (its package in site-packages, its bin/servo-agg with
        the venv's python in its `#!` line), into a venv of its own with nothing else."""
        script = agg.path.parent / "bin" / "servo-agg"
        if not script.is_file():
            return  # a version without the installed command: its row shows "-"
        where = self.work / f"installed-{agg.letter}"
        venv.create(where, with_pip=False, symlinks=True)
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        shutil.copytree(agg.path.parent / "aggregator",
                        where / "lib" / version / "site-packages" / "aggregator",
                        ignore=shutil.ignore_patterns("__pycache__"))
        _, rest = script.read_text().split("\n", 1)
        self.installed[agg.letter] = write_executable(
            where / "bin" / "servo-agg", f"#!{where / 'bin' / 'python3'}\n{rest}")

    def write_driver(self, path: Path, template: str, **values: object) -> Path:
        """A generated driver: `template` filled in, started as Params.real_drivers says."""
        real = self.params.real_drivers
        return write_executable(path, fill(
            template, PYTHON="python3" if real else "-S python3 -S",
            IMPORTS=REAL_IMPORTS if real else "json, sys, time", **values))

    def calibrate(self) -> None:
        """How long a driver takes to start without its sleep; the sleep makes up the rest."""
        probe = self.write_driver(self.work / "probe",
            CYCLE_DRIVER, INDEX=0, SLEEP=0.0, ADJUST_SLEEP=0, DESCRIPTOR=descriptor("c0"))
        times = [run([str(probe), "--query", "app"], self.work, self.env)
                 .check("calibration driver").seconds
                 for _ in range(self.params.calibration_runs)]
        self.driver_start = statistics.median(times)
        self.driver_sleep = max(0.0, DRIVER_START_SECONDS - self.driver_start)

    def build(self) -> None:
        def sections(drivers: int) -> str:
            return "".join(f"c{k}:\n  endpoint: http://localhost:{8000 + k}\n  retries: 3\n"
                           for k in range(1, drivers + 1))

        for root, extra in ((self.roots.seq, ""),
                            (self.roots.par, "aggregator:\n  parallel_queries: true\n"),
                            (self.roots.journal_on, "aggregator:\n  journal: {enabled: true}\n"),
                            (self.roots.journal_off,
                             "aggregator:\n  journal: {enabled: false}\n")):
            (root / "adjust.d").mkdir(parents=True)
            (root / "config.yaml").write_text(sections(self.params.cycle_drivers) + extra)
            for k in range(1, self.params.cycle_drivers + 1):
                for folder in ("adjust.d", "measure.d"):  # measure.d: for measure --info
                    self.write_driver(root / folder / f"{k:02d}drv",
                        CYCLE_DRIVER, INDEX=k, SLEEP=round(self.driver_sleep, 4),
                        ADJUST_SLEEP=0, DESCRIPTOR=descriptor(f"c{k}"))
        # The group rows: group_drivers drivers sharing their leading digits, so that
        # `groups: prefix` makes them one group; without it they run one at a time.
        for root, extra in ((self.roots.group, "aggregator:\n  groups: prefix\n"),
                            (self.roots.alone, "")):
            (root / "adjust.d").mkdir(parents=True)
            (root / "config.yaml").write_text(sections(self.params.group_drivers) + extra)
            for k in range(1, self.params.group_drivers + 1):
                self.write_driver(root / "adjust.d" / f"10drv{k}",
                    CYCLE_DRIVER, INDEX=k, SLEEP=round(self.driver_sleep, 4),
                    ADJUST_SLEEP=self.params.group_adjust_seconds,
                    DESCRIPTOR=descriptor(f"c{k}"))
        # The journal's roots measure with these measure drivers (their measure.d's cycle
        # drivers above are replaced), in a directory of their own.
        for root in (self.roots.measure, self.roots.journal_on, self.roots.journal_off):
            shutil.rmtree(root / "measure.d", ignore_errors=True)
            for k in range(1, self.params.measure_drivers + 1):
                self.write_driver(root / "measure.d" / f"{k:02d}drv",
                    MEASURE_DRIVER, INDEX=k, SLEEP=round(self.driver_sleep, 4),
                    METRICS=measured_metrics(self.params, k))
            (root / "request.json").write_bytes(measure_request(measure_metrics(self.params)))
        for k in range(1, RELAY_DRIVERS + 1):
            self.write_driver(self.roots.relay / "adjust.d" / f"{k:02d}flood",
                RELAY_DRIVER, INDEX=k, LINES=self.params.relay_lines,
                DESCRIPTOR=descriptor(f"r{k}"))
        for root, fd, size, chunk, what in (
                (self.roots.stderr, 2, self.params.stderr_bytes, r'(b"x" * 63 + b"\n")',
                 "lines of text on stderr"),
                (self.roots.line, 1, self.params.line_bytes, 'b"a" * 64',
                 "one line on stdout")):
            self.write_driver(root / "adjust.d" / "01flood",
                FLOOD_DRIVER, BYTES=size, FD=fd, CHUNK=chunk, WHAT=what,
                DESCRIPTOR=descriptor("f"))

        self.write_driver(self.roots.series / "measure.d" / "01series", SERIES_DRIVER)
        (self.roots.series / "series.json").write_bytes(
            series_result(self.params.series_points))
        (self.roots.series / "request.json").write_bytes(measure_request(["p99"]))

    def warm_up(self) -> None:
        """One unmeasured call of each kind per aggregator: compiles its bytecode, fills the
        page cache, and stops the run early if an aggregator does not work at all."""
        roots = (self.roots.seq, self.roots.par) if self.params.warm_parallel else (
            self.roots.seq,)
        for agg in self.aggregators:
            for root in roots:
                info = run([str(agg.path), "--info", "app"], root, self.plain_env)
                info.check(f"{agg.path} --info app (plain python3)")
                if agg.letter in self.installed:
                    self.info(agg, root, self.plain_env, "installed")
                info = run([str(agg.path), "--info", "app"], root, self.env)
                info.check(f"{agg.path} --info app")
                query = run([str(agg.path), "--query", "app"], root, self.env)
                self.check_descriptor(query, f"{agg.path} --query app in {root.name}")
            measure = agg.path.parent / "measure"
            if "measure" in self.params.groups and os.access(measure, os.X_OK):
                self.measure_cycle(agg, "describe")  # one without: its rows show the error

    # -- single measurements ------------------------------------------------------------
    def drivers(self, root: Path, folder: str = "adjust.d") -> list[Path]:
        return sorted((root / folder).iterdir())

    def check_descriptor(self, done: Done, what: str) -> None:
        done.check(what)
        components = done.final(what).get("application", {}).get("components", {})
        wanted = {f"c{k}" for k in range(1, self.params.cycle_drivers + 1)}
        if set(components) != wanted:
            raise BenchFailure(f"{what}: components {sorted(components)}, not "
                               f"{sorted(wanted)}")

    @staticmethod
    def check_ok(done: Done, what: str) -> dict[str, Any]:
        done.check(what)
        final = done.final(what)
        if final.get("status") != "ok":
            raise BenchFailure(f"{what}: final line {final}")
        return final

    def info(self, agg: Aggregator, root: Path, env: dict[str, str] | None = None,
             front: str = "adjust") -> float:
        """`--info app` of the adjust (or measure) front-end beside `agg`, or of its
        installed servo-agg (an adjust, by its name)."""
        program = {"adjust": agg.path, "measure": agg.path.parent / "measure",
                   "installed": self.installed.get(agg.letter)}[front]
        if program is None:
            raise BenchFailure(f"{agg.path}: no bin/servo-agg beside it to install")
        done = run([str(program), "--info", "app"], root, env or self.env)
        info = done.check(f"{front} --info app").final(f"{front} --info app")
        if "drv" not in str(info.get("version")):
            raise BenchFailure(f"{front} --info app: no version naming the drivers: {info}")
        return done.seconds

    def python_pass(self) -> float:
        return run(["python3", "-c", "pass"], self.work, self.plain_env).check(
            "python3 -c pass").seconds

    def cycle(self, agg: Aggregator, root: Path, kind: str, value: int) -> float:
        """servo's cycle: --info, then the command, as two processes one after the other."""
        seconds = self.info(agg, root)
        if kind == "describe":
            done = run([str(agg.path), "--query", "app"], root, self.env)
            self.check_descriptor(done, "--query app")
        else:
            components = [f"c{k}" for k in range(1, len(self.drivers(root)) + 1)]
            done = run([str(agg.path), "app"], root, self.env, request(components, value))
            self.check_ok(done, "adjust app")
        return seconds + done.seconds

    def floor(self, root: Path, kind: str, parallel: bool, value: int,
              adjusts_at_once: bool = False) -> float:
        """The driver calls the cycle needs, made directly (the adjusts all at once, as a
        group runs them, with `adjusts_at_once`)."""
        queries = [[str(d), "--query", "app"] for d in self.drivers(root)]
        if parallel:
            seconds, dones = run_concurrently(queries, root, self.env)
            for done in dones:
                done.check("driver --query")
        else:
            seconds = sum(run(q, root, self.env).check("driver --query").seconds
                          for q in queries)
        if kind == "adjust" and adjusts_at_once:
            feeds = []
            for k in range(1, len(self.drivers(root)) + 1):
                feeds.append(root / f"request-c{k}.json")
                feeds[-1].write_bytes(request([f"c{k}"], value))
            took, dones = run_concurrently([[str(d), "app"] for d in self.drivers(root)], root,
                                           self.env, feeds)
            for done in dones:
                self.check_ok(done, "driver adjust")
            seconds += took
        elif kind == "adjust":
            for k, driver in enumerate(self.drivers(root), start=1):
                done = run([str(driver), "app"], root, self.env, request([f"c{k}"], value))
                self.check_ok(done, "driver adjust")
                seconds += done.seconds
        return seconds

    def check_metrics(self, done: Done, what: str, key: str = "metrics") -> None:
        final = Bench.check_ok(done, what)
        wanted = sorted(measure_metrics(self.params))
        if sorted(final.get(key) or {}) != wanted:
            raise BenchFailure(f"{what}: metrics {sorted(final.get(key) or {})}, not {wanted}")

    def measure_cycle(self, agg: Aggregator, kind: str, root: Path | None = None) -> float:
        """servo's measure cycle: --info, then --describe or a measurement, of the measure
        front-end beside `agg`."""
        root = root or self.roots.measure
        program = str(agg.path.parent / "measure")
        seconds = self.info(agg, root, front="measure")
        if kind == "describe":
            done = run([program, "--describe", "app"], root, self.env)
            self.check_metrics(done, "measure --describe app")
        else:
            done = run([program, "app"], root, self.env,
                       (root / "request.json").read_bytes())
            self.check_metrics(done, "measure app")
        return seconds + done.seconds

    def measure_floor(self, kind: str) -> float:
        """What ./measure calls, made directly: every driver's --describe at once, then (for
        a measurement) every driver's measure at once."""
        root = self.roots.measure
        drivers = self.drivers(root, "measure.d")
        seconds, dones = run_concurrently([[str(d), "--describe", "app"] for d in drivers],
                                          root, self.env)
        for done in dones:
            done.check("measure driver --describe")
        if kind == "measure":
            more, dones = run_concurrently([[str(d), "app"] for d in drivers], root,
                                           self.env, root / "request.json")
            for done in dones:
                self.check_ok(done, "measure driver")
            seconds += more
        return seconds

    def relay(self, agg: Aggregator | None) -> tuple[Relay, float]:
        """The flood through the aggregator, or (agg None) each driver straight to us; and
        the aggregator's CPU seconds."""
        root = self.roots.relay
        ids = range(1, RELAY_DRIVERS + 1)
        components = [f"r{k}" for k in ids]
        if agg is not None:
            lines, done = run_stamped([str(agg.path), "app"], root, self.env,
                                      request(components, 2))
            self.check_ok(done, "adjust app (progress flood)")
            return analyse_relay(lines, take_stamps(root, ids)), done.cpu
        total = Relay(0.0, 0.0, [], 0)
        for k, driver, component in zip(ids, self.drivers(root), components, strict=True):
            lines, done = run_stamped([str(driver), "app"], root, self.env,
                                      request([component], 2))
            self.check_ok(done, "flood driver")
            part = analyse_relay(lines, take_stamps(root, [k]))
            total.wall += part.wall
            total.read += part.read
            total.delays += part.delays
            total.out += part.out
        return total, math.nan

    def rss(self, agg: Aggregator, root: Path, expect_ok: bool) -> dict[str, float]:
        """Peak RSS of the aggregator process alone while its driver floods it."""
        peak, done = run_sampling_rss([str(agg.path), "app"], root, self.env,
                                      request(["f"], 2))
        what = f"adjust app ({root.name} flood)"
        if expect_ok:
            self.check_ok(done, what)
        else:  # the driver broke the protocol: whatever the aggregator made of it is noted
            final = done.final(what)
            note = (f"{agg.letter}: the {root.name} flood ends "
                    f"{final.get('status')}/{final.get('reason')}")
            if note not in self.results.notes:
                self.results.notes.append(note)
        return {f"rss.{root.name}": peak}

    def rss_series(self, agg: Aggregator) -> dict[str, float]:
        """Peak RSS of ./measure (beside `agg`) relaying one large time series."""
        root = self.roots.series
        peak, done = run_sampling_rss([str(agg.path.parent / "measure"), "app"], root,
                                      self.env, (root / "request.json").read_bytes())
        final = self.check_ok(done, "measure app (a large time series)")
        points = len(final["metrics"]["p99"]["values"][0]["data"])
        if points != self.params.series_points:
            raise BenchFailure(f"measure app: {points} points of "
                               f"{self.params.series_points} came back")
        return {"rss.series": peak, "rss.series.ratio": peak / series_mib(self.params)}

    # -- rounds ---------------------------------------------------------------------------
    def rotated(self, items: list[Any], round_no: int) -> list[Any]:
        shift = round_no % len(items)
        return items[shift:] + items[:shift]

    def measure_group(self, round_no: int, keys: Sequence[str],
                      floor: Callable[[], dict[str, float]] | None,
                      per_agg: Callable[[Aggregator], dict[str, float]]
                      ) -> dict[str, dict[str, float]]:
        """One round of one group of rows: the floor and every aggregator, in an order that
        rotates from round to round. Returns this round's values by column."""
        jobs: list[tuple[str, Callable[[], dict[str, float]]]] = []
        if floor is not None:
            jobs.append((FLOOR, floor))
        jobs += [(agg.letter, functools.partial(per_agg, agg)) for agg in self.aggregators]
        got: dict[str, dict[str, float]] = {}
        for column, job in self.rotated(jobs, round_no):
            if column != FLOOR and any((k, column) in self.results.errors for k in keys):
                continue  # failed before: not worth the time again
            try:
                got[column] = job()
            except BenchFailure as exc:
                if column == FLOOR:
                    raise  # the bench itself is broken: nothing else can be trusted
                for key in keys:
                    self.results.errors.setdefault((key, column), str(exc))
                continue
            self.results.add(column, got[column])
        return got

    def add_overhead(self, got: dict[str, dict[str, float]], key: str) -> None:
        """cycle − floor of the same round, for each aggregator that ran."""
        floor = got[FLOOR][f"{key}.floor"]
        for agg in self.aggregators:
            if agg.letter in got:
                self.results.add(agg.letter,
                                 {f"{key}.over": got[agg.letter][f"{key}.cycle"] - floor})

    def one_round(self, r: int) -> None:
        """Every selected group once, for the floor and each aggregator."""
        for group in GROUPS:
            if group in self.params.groups:
                getattr(self, f"round_{group}")(r)

    def round_startup(self, r: int) -> None:
        def python_pass() -> dict[str, float]:
            return {"startup.python": self.python_pass() * 1000}

        def startup(agg: Aggregator) -> dict[str, float]:
            plain = self.plain_env
            got = {"startup.info": self.info(agg, self.roots.seq, plain) * 1000,
                   "startup.info_cfg": self.info(agg, self.roots.par, plain) * 1000,
                   "startup.minfo": self.info(agg, self.roots.seq, plain, "measure") * 1000}
            if agg.letter in self.installed:
                got["startup.iinfo"] = self.info(agg, self.roots.seq, plain,
                                                 "installed") * 1000
            return got

        keys = ["startup.info", "startup.info_cfg", "startup.minfo", "startup.iinfo"]
        for rep in range(self.params.startup_reps):
            got = self.measure_group(r + rep, keys + [f"{k}.over" for k in keys],
                                     python_pass, startup)
            base = got[FLOOR]["startup.python"]
            for column, values in got.items():
                if column != FLOOR:
                    self.results.add(column, {f"{k}.over": values[k] - base for k in keys
                                              if k in values})

    def cycle_rows(self, r: int, key: str, floor: Callable[[], float],
                   cycle: Callable[[Aggregator], float]) -> None:
        """One round of a cycle against its floor (seconds each): `key`.floor, .cycle and
        the per-round .over."""
        got = self.measure_group(
            r, [f"{key}.cycle", f"{key}.over"], lambda: {f"{key}.floor": floor() * 1000},
            lambda agg: {f"{key}.cycle": cycle(agg) * 1000})
        self.add_overhead(got, key)

    def round_cycles(self, r: int, kind: str) -> None:
        value = 2 + r % 2  # every round asks for a different value than the last
        for mode, root, parallel in (("seq", self.roots.seq, False),
                                     ("par", self.roots.par, True)):
            self.cycle_rows(r, f"{kind}.{mode}",
                            functools.partial(self.floor, root, kind, parallel, value),
                            functools.partial(self.cycle, root=root, kind=kind, value=value))

    def round_describe(self, r: int) -> None:
        self.round_cycles(r, "describe")

    def round_adjust(self, r: int) -> None:
        self.round_cycles(r, "adjust")
        value = 2 + r % 2
        for mode, root, at_once in (("group", self.roots.group, True),
                                    ("alone", self.roots.alone, False)):
            self.cycle_rows(r, f"adjust.{mode}",
                            functools.partial(self.floor, root, "adjust", False, value,
                                              at_once),
                            functools.partial(self.cycle, root=root, kind="adjust",
                                              value=value))

    def round_measure(self, r: int) -> None:
        for kind in ("describe", "measure"):
            self.cycle_rows(r, f"measure.{kind}", functools.partial(self.measure_floor, kind),
                            functools.partial(self.measure_cycle, kind=kind))

    def round_relay(self, r: int) -> None:
        def relay_floor() -> dict[str, float]:
            got, _ = self.relay(None)
            return {"relay.floor.wall": got.wall * 1000,
                    "relay.floor.p99": percentile(got.delays, 99) * 1000}

        def relay(agg: Aggregator) -> dict[str, float]:
            got, cpu = self.relay(agg)
            lines = RELAY_DRIVERS * self.params.relay_lines
            return {"relay.read": got.read * 1000, "relay.rate": lines / got.read,
                    "relay.wall": got.wall * 1000, "relay.cpu": cpu * 1000,
                    "relay.p50": percentile(got.delays, 50) * 1000,
                    "relay.p99": percentile(got.delays, 99) * 1000, "relay.out": got.out}

        self.measure_group(r, ["relay.read", "relay.rate", "relay.wall", "relay.cpu",
                               "relay.p50", "relay.p99", "relay.out"], relay_floor, relay)

    def round_journal(self, r: int) -> None:
        """The ADJUST and MEASURE cycles with the journal on and off, one after the other
        (in turn first), a few pairs per round; and the journal's own work, in process."""
        value = 2 + r % 2
        roots = {"on": self.roots.journal_on, "off": self.roots.journal_off}
        keys = [f"journal.{kind}.{row}" for kind in ("adjust", "measure")
                for row in ("on", "off", "cost", "ratio")]
        for rep in range(self.params.journal_reps):
            states = self.rotated(["on", "off"], r + rep)

            def pair(agg: Aggregator, states: list[str] = states) -> dict[str, float]:
                got: dict[str, float] = {}
                for state in states:
                    got[f"journal.adjust.{state}"] = self.cycle(
                        agg, roots[state], "adjust", value) * 1000
                for state in states:
                    got[f"journal.measure.{state}"] = self.measure_cycle(
                        agg, "measure", roots[state]) * 1000
                for kind in ("adjust", "measure"):
                    on, off = got[f"journal.{kind}.on"], got[f"journal.{kind}.off"]
                    got[f"journal.{kind}.cost"] = on - off
                    got[f"journal.{kind}.ratio"] = on / off
                return got

            self.measure_group(r + rep, keys, None, pair)
        self.measure_group(r, ["journal.imports", "journal.write"], None, self.journal_write)

    def journal_write(self, agg: Aggregator) -> dict[str, float]:
        """The journal's work alone, in a process of `agg`'s own (trio loaded, as in a run):
        importing its modules once, then building and appending records like the ADJUST
        cycle's to a fresh journal; the median of JOURNAL_WRITES (milliseconds)."""
        done = run([sys.executable, "-c", JOURNAL_PROBE, str(agg.path.parent),
                    str(self.work / f"journal-probe-{agg.letter}"),
                    str(self.params.cycle_drivers), str(JOURNAL_WRITES)],
                   self.work, self.env).check("the journal's probe")
        imports, write = map(float, done.stdout.split())
        return {"journal.imports": imports, "journal.write": write}

    def round_rss(self, r: int) -> None:
        self.measure_group(r, ["rss.stderr"], None,
                           lambda agg: self.rss(agg, self.roots.stderr, True))
        self.measure_group(r, ["rss.line"], None,
                           lambda agg: self.rss(agg, self.roots.line, False))
        self.measure_group(r, ["rss.series", "rss.series.ratio"], None, self.rss_series)


# What the journal does at the end of a run, timed alone: its imports (trio and the rest
# of what an adjust has loaded by then are imported first, untimed), then a record of an
# ADJUST cycle (a query and an adjust per driver, each with a result, progress and a line
# of stderr) built, encoded and appended, many times over. Prints both, in milliseconds.
JOURNAL_PROBE = r"""
import shutil, statistics, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
root, drivers, writes = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
root.mkdir()
import trio  # noqa: F401 - loaded in every run that records, with what a run loads:
import aggregator.adjust.commands, aggregator.entry.launch, aggregator.supervision.channel
from aggregator.process.resources import ResourceUse
from aggregator.root.config import JournalConfig
from aggregator.supervision.facts import CallFacts, RunFacts
from aggregator.supervision.spec import CallEnd
started = time.perf_counter()
from aggregator.journal import store
from aggregator.journal.record import encode
imports = time.perf_counter() - started
facts = RunFacts(front="adjust", args=("app",), command="adjust", app="app",
                 request=b'{"application": {"components": {}}}' * 20)
for k in range(1, drivers + 1):
    for call in ("query", "adjust"):
        facts.calls.append(CallFacts(
            driver=f"{k:02d}drv", call=call, argv=(f"/servo/adjust.d/{k:02d}drv", "app"),
            start=0.1 * k, duration=0.07, end=CallEnd.EXITED, exit_code=0, status="ok",
            reason="success", detail="", progress_count=2,
            first_progress='{"progress": 50, "message": "set c1.x to 2"}',
            last_progress='{"progress": 100, "message": "done"}',
            result='{"status": "ok", "reason": "success"}' * 3, result_bytes=111,
            stderr_tail="driver log line\n", stderr_bytes=16,
            resource_use=ResourceUse(0.03, 0.01, 20 << 20)))
facts.exit_code, facts.duration = 0, 1.2
facts.final, facts.result = '{"status": "ok", "reason": "success"}', {"status": "ok"}
config = JournalConfig()
times = []
for _ in range(writes):
    began = time.perf_counter()
    store.append(root, config, encode(facts, store.file_bound(config)))
    times.append(time.perf_counter() - began)
shutil.rmtree(root)
print(imports * 1000, statistics.median(times) * 1000)
"""


# -- reporting ---------------------------------------------------------------------------------

def machine(env: dict[str, str]) -> tuple[str, list[str]]:
    """One line on the machine and the python3 servo would run, and notes on anything that
    makes these figures unlike a deployment's."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    probe = subprocess.run(
        ["python3", "-c", "import platform, sys; print(platform.python_version(), "
         "sys.executable, any(m.startswith('__editable__') for m in sys.modules))"],
        env=env, capture_output=True, text=True, check=False)
    version, executable, editable = [*probe.stdout.split(), "?", "?", "?"][:3]
    notes = []
    if editable == "True":
        notes.append("python3 imports an editable-install finder (pip install -e) at every "
                     "start: the drivers and the aggregator in rows (b)-(e) all pay for it, "
                     "and it pre-imports modules (pathlib, re); row (a) runs under a plain "
                     "python3 (a venv with nothing installed), where --info pays for all it "
                     "imports")
    text = (f"{model}, {os.cpu_count()} cores ({usable} usable), Python {version} "
            f"({executable}), {platform.system()} {platform.release()}")
    return text, notes


def fmt(value: float | None, unit: str, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit in ("ms", "MiB"):
        return f"{value:.{digits}f} {unit}"
    if unit == "lines/s":
        return f"{value:,.0f}/s"
    if unit == "x":
        return f"{value:.{digits}f}x"
    if unit == "ratio":
        return f"{value:.3f}"
    return f"{value:,.0f}"


def table(params: Params, aggs: list[Aggregator], results: Results) -> list[str]:
    head = ["row", FLOOR, *[a.letter for a in aggs],
            *[f"{a.letter}/{aggs[0].letter}" for a in aggs[1:]], "target",
            *[f"{a.letter} ok" for a in aggs]]
    body: list[list[str]] = []
    for row in rows(params):
        cells = [row.label]
        if row.baseline:
            cells.append(fmt(results.median(row.key, FLOOR), row.unit))
            cells += [""] * (2 * len(aggs) - 1 + 1 + len(aggs))
            body.append(cells)
            continue
        cells.append("")
        medians = []
        for agg in aggs:
            failed = (row.key, agg.letter) in results.errors
            median = results.median(row.key, agg.letter)
            medians.append(median)
            cells.append("error" if failed else fmt(median, row.unit))
        for median in medians[1:]:
            first = medians[0]
            cells.append(f"{median / first:.2f}" if median is not None and first else "")
        if row.target is None:
            cells.append("")
            cells += [""] * len(aggs)
        else:
            cells.append(f"< {fmt(row.target, row.unit, 0)}")
            cells += ["-" if m is None else ("pass" if m < row.target else "FAIL")
                      for m in medians]
        body.append(cells)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    out = []
    for cells in [head, *body]:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
                   .rstrip())
    return out


def as_json(params: Params, aggs: list[Aggregator], bench: Bench, header: dict[str, str]
            ) -> dict[str, Any]:
    results = bench.results
    out: dict[str, Any] = {"header": header, "runs": params.runs,
                           "aggregators": {a.letter: str(a.path) for a in aggs}, "rows": []}
    for row in rows(params):
        columns = [FLOOR] if row.baseline else [a.letter for a in aggs]
        out["rows"].append({
            "key": row.key, "label": row.label, "unit": row.unit, "target": row.target,
            "median": {c: results.median(row.key, c) for c in columns},
            "samples": {c: results.samples.get((row.key, c), []) for c in columns},
            "error": {c: results.errors[(row.key, c)] for c in columns
                      if (row.key, c) in results.errors},
        })
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Measures what an adjust aggregator costs servo (see the README).")
    parser.add_argument("--adjust", action="append", type=Path, default=[], metavar="PATH",
                        help="another aggregator to run side by side with ./adjust "
                             "(repeatable; the MEASURE rows use the measure beside it); "
                             "ratios are against ./adjust")
    parser.add_argument("--runs", type=int, help=f"rounds (default {FULL.runs}; at least 5, "
                        "unless --smoke)")
    parser.add_argument("--smoke", action="store_true",
                        help="one round, two cycle drivers, smaller floods: checks that every row "
                             "runs")
    parser.add_argument("--only", action="append", choices=GROUPS, default=[],
                        help="run only this group of rows (repeatable)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results here")
    parser.add_argument("--roots", type=Path, metavar="DIR",
                        help="only write the generated servo roots into DIR (kept), with "
                             "a request for each, to profile one row by hand")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < (1 if args.smoke else 5):
        parser.error("--runs must be at least 5 (medians of fewer mean little)")
    return args


def write_roots(params: Params, aggs: list[Aggregator], where: Path) -> int:
    """The roots the bench would use, kept, each with the request its adjust row sends."""
    if where.exists() and any(where.iterdir()):
        print(f"bench: {where} is not empty", file=sys.stderr)
        return 2
    where.mkdir(parents=True, exist_ok=True)
    bench = Bench(params, aggs, where)
    bench.calibrate()
    (where / "probe").unlink()
    bench.build()
    cycle = [f"c{k}" for k in range(1, params.cycle_drivers + 1)]
    group = [f"c{k}" for k in range(1, params.group_drivers + 1)]
    # (the measure root's request.json is written by build())
    for root, components in ((bench.roots.seq, cycle), (bench.roots.par, cycle),
                             (bench.roots.relay, [f"r{k}" for k in range(1, RELAY_DRIVERS + 1)]),
                             (bench.roots.stderr, ["f"]), (bench.roots.line, ["f"]),
                             (bench.roots.group, group), (bench.roots.alone, group)):
        (root / "request.json").write_bytes(request(components, 2))
    print(f"servo roots in {where}: {', '.join(sorted(p.name for p in where.iterdir()))}\n"
          f"e.g. cd {where}/relay && {DEFAULT_ADJUST} app < request.json")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = SMOKE if args.smoke else FULL
    params = dataclasses.replace(base, runs=args.runs or base.runs,
                                 groups=tuple(g for g in GROUPS if g in args.only) or GROUPS)
    paths = [DEFAULT_ADJUST, *(p.resolve() for p in args.adjust)]
    for path in paths:
        if not os.access(path, os.X_OK):
            print(f"bench: {path} is not an executable", file=sys.stderr)
            return 2
    aggs = [Aggregator(chr(ord("A") + i), p) for i, p in enumerate(paths)]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    if args.roots is not None:
        return write_roots(params, aggs, args.roots.resolve())
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="servo-agg-bench-"))
    try:
        bench = Bench(params, aggs, work)
        host, notes = machine(bench.env)
        load_before = os.getloadavg()[0]
        bench.calibrate()
        bench.make_plain_python()
        bench.build()
        try:
            bench.warm_up()
        except BenchFailure as exc:
            log(f"bench: an aggregator does not work here: {exc}\n(run the bench with the "
                "Python that has the aggregator's dependencies, e.g. .venv/bin/python)")
            return 2
        for r in range(params.runs):
            log(f"bench: round {r + 1} of {params.runs} ({time.monotonic() - started:.0f} s)")
            try:
                bench.one_round(r)
            except BenchFailure as exc:
                log(f"bench: the direct floor failed, so nothing can be compared: {exc}")
                return 2
        load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = os.cpu_count() or 1
    if max(load_before, load_after) > cores / 2:
        notes.append(f"load average {load_before:.2f} before and {load_after:.2f} after, on "
                     f"{cores} cores: other work shared the machine, so the figures are noisy")
    notes += bench.results.notes
    header = {
        "title": f"servo-agg benchmark: medians of {params.runs} interleaved round"
                 f"{'s' if params.runs != 1 else ''}" + (" (smoke mode)" if args.smoke else ""),
        "machine": host,
        "run": f"took {time.monotonic() - started:.0f} s; load average {load_before:.2f} "
               f"before, {load_after:.2f} after",
        "drivers": f"each {DRIVER_START_SECONDS * 1000:.0f} ms: "
                   f"{bench.driver_start * 1000:.0f} ms python start and imports, then "
                   f"{bench.driver_sleep * 1000:.0f} ms asleep",
    }
    lines = [
        header["title"],
        f"machine: {header['machine']}",
        f"run: {header['run']}",
        f"drivers: {header['drivers']}",
        *[f"{a.letter} = {a.path}" for a in aggs],
        "",
        *table(params, aggs, bench.results),
    ]
    errors: dict[tuple[str, str], list[str]] = {}  # (column, what went wrong): row keys
    for (key, column), text in sorted(bench.results.errors.items()):
        errors.setdefault((column, text), []).append(key)
    if errors:
        lines.append("")
        lines += [f"error: {column}: {', '.join(keys)}: {text}"
                  for (column, text), keys in errors.items()]
    if notes:
        lines.append("")
        lines += [f"note: {n}" for n in notes]
    print("\n".join(lines), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(as_json(params, aggs, bench, header), indent=1))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
