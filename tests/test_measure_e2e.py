"""./measure end to end, run as servo runs it, against drivers written into a temporary
servo root: every command, the request split, the override, and its errors. What the
commands tell servo for what their drivers say is test_measure_commands.py's, over
fakes."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.fault_support import calls_of
from tests.measure_support import MEASURE, measure_driver, requests, run_measure
from tests.support import AGGREGATOR, REPO, adjust_env, write_driver

pytestmark = pytest.mark.e2e


def two_drivers(root: Path, window: float = 0.3) -> None:
    measure_driver(root, "10load", {}, window=window, annotations={"load": "ab -c 4"})
    measure_driver(root, "20prom", {"throughput": {"unit": "rpm"}, "p99": {"unit": "ms"}},
                   window=window, annotations={"load": "prom"})


async def test_info_is_instant_and_names_the_measure_drivers(servo_root: Path,
                                                             tag: str) -> None:
    two_drivers(servo_root)
    run = await run_measure(servo_root, "--info", "app", tag=tag)
    assert run.returncode == 0
    assert run.json_lines == [{"version": f"{AGGREGATOR} [10load, 20prom]",
                               "has_cancel": True}]
    assert calls_of(servo_root, "10load") == []  # no driver started


async def test_version_lists_every_drivers_version(servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    run = await run_measure(servo_root, "--version", tag=tag)
    assert run.lines == [f"{AGGREGATOR} (10load-1.0, 20prom-1.0)"]


async def test_describe_merges_every_drivers_metrics(servo_root: Path, tag: str) -> None:
    """(--query, its other name: test_request.py's.)"""
    two_drivers(servo_root)
    write_driver(servo_root, "30old", """
        import json
        print(json.dumps({"metrics": {"errors": {"unit": "count"}}}))  # no status: ok
        """, folder="measure.d")
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
    assert run.final == {"status": "ok", "metrics": {"throughput": {"value": 1}},
                         "annotations": {"load": ["10load: ab -c 4", "20prom: prom"]}}
    assert run.returncode == 0
    assert requests(servo_root, "10load") == [{
        "metrics": [], "extra": "kept",
        "control": {"duration": 9, "userdata": {"slo": {"p99": 20}}}}]
    assert requests(servo_root, "20prom") == [{
        "metrics": ["throughput"], "extra": "kept",
        "control": {"duration": 1, "userdata": {"slo": {"p99": 20}}}}]
    assert "no driver describes perf" in run.stderr
    values = [p["progress"] for p in run.progress]
    assert values == sorted(values) and values[-1] == 100



@pytest.mark.parametrize(("stdin", "says"), [
    ("not json", "stdin is not JSON"),
    ("[]", "expected a JSON object"),
    ('{"metrics": "throughput"}', "'metrics' must be a list of names or an object"),
    ('{"metrics": ["x"], "metrics": ["y"]}', "appears twice"),
    ('{"metrics": [], "control": {"userdata": {"20prom": {"control": [1]}}}}',
     "20prom's override) must be an object"),
])
async def test_a_bad_request_is_refused_before_any_driver_runs(
        stdin: str, says: str, servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    run = await run_measure(servo_root, "app", tag=tag, stdin=stdin)
    assert (run.final["status"], run.final["reason"]) == ("failed", "bad-input")
    assert says in run.final["message"]
    assert run.returncode == 1
    assert calls_of(servo_root, "10load") == calls_of(servo_root, "20prom") == []
    assert len(run.lines) == 1 and "error (bad-input)" in run.stderr


async def test_no_application_id_is_bad_usage(servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    run = await run_measure(servo_root, tag=tag, stdin="{}")
    assert run.final["reason"] == "bad-usage" and "'measure <app>'" in run.final["message"]





async def test_check_warns_when_servos_timeout_is_below_what_measure_drivers_need(
        servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    run = await run_measure(servo_root, "--check", "app", tag=tag,
                            env=adjust_env(tag, OPTUNE_IO_TIMEOUT="10"))
    text = run.stdout_text
    assert "measure.d/" in text and "--describe: 2 metrics" in text
    assert "OPTUNE_IO_TIMEOUT=10 is below 30 s" in text
    assert "servo would work with this root" in text and run.returncode == 0


async def test_check_fails_on_a_metric_two_drivers_describe(servo_root: Path,
                                                            tag: str) -> None:
    measure_driver(servo_root, "10a", {"x": {}})
    measure_driver(servo_root, "20b", {"x": {}})
    run = await run_measure(servo_root, "--check", "app", tag=tag)
    assert "x is reported by 10a and 20b" in run.stdout_text and run.returncode == 1


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


async def test_version_stays_one_line_whatever_a_driver_file_is_called(
        servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "10bad\nname", "import sys; sys.exit(3)\n", folder="measure.d")
    run = await run_measure(servo_root, "--version", tag=tag)
    assert len(run.lines) == 1 and run.lines[0].endswith("(10bad name: failing)"), run.lines
