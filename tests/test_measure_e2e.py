"""./measure end to end, run as servo runs it, against drivers written into a temporary
servo root: --version, --describe, a measurement (the request split, the override),
--check, a copy in another servo root, and servo's cancel mid-window. What the commands
tell servo for what their drivers say is test_measure_commands.py's, over fakes; --info
and the refusals before any driver starts (a bad override, no app id) are decided in the
test's own process (test_info.py, test_launch.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from tests.measure_support import MEASURE, measure_driver, requests, run_measure
from tests.support import AGGREGATOR, REPO, adjust_env, write_driver

pytestmark = pytest.mark.e2e


def two_drivers(root: Path, window: float = 0.3) -> None:
    measure_driver(root, "10load", {}, window=window, annotations={"load": "ab -c 4"})
    measure_driver(root, "20prom", {"throughput": {"unit": "rpm"}, "p99": {"unit": "ms"}},
                   window=window, annotations={"load": "prom"})


async def test_version_lists_every_drivers_version_on_one_line(servo_root: Path,
                                                              tag: str) -> None:
    """One line whatever a driver file is called: a line break in a name is shown as a
    space."""
    two_drivers(servo_root)
    write_driver(servo_root, "30bad\nname", "exit 3\n", shebang="#!/bin/sh",
                 folder="measure.d")
    run = await run_measure(servo_root, "--version", tag=tag)
    assert run.lines == [f"{AGGREGATOR} (10load 10load-1.0, 20prom 20prom-1.0, "
                         "30bad name: failing)"]


async def test_describe_merges_every_drivers_metrics(servo_root: Path, tag: str) -> None:
    """(--query, its other name: test_request.py's.)"""
    two_drivers(servo_root)
    write_driver(servo_root, "30old", """
        echo '{"metrics": {"errors": {"unit": "count"}}}'  # no status: ok
        """, shebang="#!/bin/sh", folder="measure.d")
    run = await run_measure(servo_root, "--describe", "app", tag=tag)
    assert run.final == {"status": "ok", "metrics": {
        "throughput": {"unit": "rpm"}, "p99": {"unit": "ms"}, "errors": {"unit": "count"}}}
    assert run.returncode == 0


async def test_a_measure_splits_metrics_merges_results_and_names_the_unowned(
        servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    request = {"metrics": ["throughput", "perf"], "extra": "kept",
               "control": {"duration": 1, "userdata": {
                   "10load": {"control": {"duration": 9}}, "slo": {"p99": 20}}}}
    run = await run_measure(servo_root, "app", tag=tag, stdin=json.dumps(request))
    unowned = "no driver describes perf; asked for anyway (the optimizer may derive them)"
    assert run.final == {"status": "ok", "metrics": {"throughput": {"value": 1}},
                         "annotations": {"load": ["10load: ab -c 4", "20prom: prom"],
                                         "servo-agg": [unowned]}}
    assert run.returncode == 0
    assert requests(servo_root, "10load") == [{
        "metrics": [], "extra": "kept",
        "control": {"duration": 9, "userdata": {"slo": {"p99": 20}}}}]
    assert requests(servo_root, "20prom") == [{
        "metrics": ["throughput"], "extra": "kept",
        "control": {"duration": 1, "userdata": {"slo": {"p99": 20}}}}]
    assert f"servo-agg: {unowned}" in run.stderr
    values = [p["progress"] for p in run.progress]
    assert values == sorted(values) and values[-1] == 100


async def test_check_warns_when_servos_timeout_is_below_what_measure_drivers_need(
        servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    run = await run_measure(servo_root, "--check", "app", tag=tag,
                            env=adjust_env(tag, OPTUNE_IO_TIMEOUT="10"))
    text = run.stdout_text
    assert "measure.d/" in text and "--describe: 2 metrics" in text
    assert "OPTUNE_IO_TIMEOUT=10 is below 30 s" in text
    assert "servo would work with this root" in text and run.returncode == 0


async def test_a_copy_of_measure_and_the_package_works_in_another_root(
        tmp_path: Path, tag: str) -> None:
    root = tmp_path / "servo"
    root.mkdir()
    shutil.copy(MEASURE, root / "measure")
    shutil.copytree(REPO / "aggregator", root / "aggregator",
                    ignore=shutil.ignore_patterns("__pycache__"))
    measure_driver(root, "10m", {"x": {}})
    env = adjust_env(tag)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    run = await run_measure(root, "app", tag=tag, stdin='{"metrics": ["x"]}', env=env,
                            adjust=root / "measure")
    assert run.final == {"status": "ok", "metrics": {"x": {"value": 1}}}


SILENT_READER = """
    import json, signal, sys, time
    if "--describe" in sys.argv:
        print(json.dumps({"status": "ok", "metrics": {"throughput": {}}}))
        sys.exit(0)
    json.load(sys.stdin)

    def cancel(signum, frame):
        print(json.dumps({"status": "canceled", "reason": "canceled", "message": "stopped"}))
        sys.exit(3)

    signal.signal(signal.SIGUSR1, cancel)
    time.sleep(WINDOW)  # a Prometheus reader: silent through its window
    print(json.dumps({"status": "ok", "metrics": {"throughput": {"value": 1}}}))
    """

SILENT_LOADGEN = """
    import json, signal, subprocess, sys, time
    if "--describe" in sys.argv:
        print(json.dumps({"status": "ok", "metrics": {}}))
        sys.exit(0)
    json.load(sys.stdin)
    # The load tool, a child in the driver's group: it stamps the time while it loads.
    subprocess.Popen([sys.executable, "-c", "import time\\nwhile True:\\n"
                      "    open('load.stamps', 'a').write(f'{time.time()}\\\\n')\\n"
                      "    time.sleep(0.05)"], stdout=subprocess.DEVNULL)

    def cancel(signum, frame):  # like ab's driver: it leaves its tool running
        print(json.dumps({"status": "canceled", "reason": "canceled", "message": "stopped"}))
        sys.exit(3)

    signal.signal(signal.SIGUSR1, cancel)
    time.sleep(WINDOW)
    print(json.dumps({"status": "ok", "metrics": {}}))
    """

CHATTY = """
    import json, sys, time
    if "--describe" in sys.argv:
        print(json.dumps({"status": "ok", "metrics": {}}))
        sys.exit(0)
    json.load(sys.stdin)
    started = time.monotonic()
    while time.monotonic() - started < WINDOW:  # no SIGUSR1 handler: dies of it
        print(json.dumps({"progress": 50, "message": "ticking"}), flush=True)
        time.sleep(0.2)
    print(json.dumps({"status": "ok", "metrics": {}}))
    """


async def test_servo_can_cancel_mid_window_when_one_driver_of_three_reports_progress(
        servo_root: Path, tag: str) -> None:
    """Issue 14: two drivers are silent through their window, the third prints progress
    every 0.2 s, so the aggregate reads the same all along. A stand-in servo answers the
    first progress line after 1 s, once the load runs, with a cancel (SIGUSR1), as servo
    does when the optimizer replies cancel to a progress post: it must get that line
    mid-window, and the cancel must end the run and stop the silent load generator's
    tool."""
    window = 6.0
    for name, body in (("10prom", SILENT_READER), ("20ab", SILENT_LOADGEN),
                       ("30chatty", CHATTY)):
        write_driver(servo_root, name, f"WINDOW = {window}\n" + textwrap.dedent(body),
                     folder="measure.d")
    canceled_at: list[float] = []

    def servo(at: float, line: str) -> int | None:
        # mid-window, and once the load runs (its tool stamped): on a loaded machine the
        # tool can take longer than 1 s to start, and a cancel before that proves nothing
        if (canceled_at or at < 1.0 or "progress" not in json.loads(line)
                or not (servo_root / "load.stamps").exists()):
            return None
        canceled_at.append(at)
        return signal.SIGUSR1

    run = await run_measure(servo_root, "app", tag=tag, stdin='{"metrics": ["throughput"]}',
                            answer=servo)
    assert (run.final["status"], run.final["reason"]) == ("canceled", "canceled"), run.final
    assert canceled_at and canceled_at[0] / window < 0.4, (canceled_at, run.lines)
    assert run.elapsed / window < 0.6, run.elapsed  # ended well before its window
    stamps = [float(t) for t in (servo_root / "load.stamps").read_text().split()]
    assert (stamps[-1] - stamps[0]) / window < 0.6  # the load stopped with the cancel
