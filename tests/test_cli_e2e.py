"""./adjust run as a subprocess, as servo runs it, against drivers written into adjust.d:
the way in (arguments, the request, the drivers really started), a query and an adjust
through it, and a copy of it in another servo root. What each command tells servo for
what its drivers say is test_adjust_commands.py's, over fake drivers; --info through
cli.main is test_info.py's, a missing adjust.d test_launch.py's, both in the test's own
process (--info through the launchers: test_info_imports.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from aggregator import __version__
from tests.fault_support import T
from tests.support import (
    ADJUST,
    CPU,
    POLICY,
    REPLICAS,
    REPO,
    SIZE,
    AdjustRun,
    adjust_env,
    journal_records,
    run_adjust,
    simple_driver,
    write_driver,
)

pytestmark = pytest.mark.e2e


def two_drivers(root: Path) -> None:
    write_driver(root, "01web", simple_driver(
        "web", {"cpu": CPU, "replicas": REPLICAS}, version="1.2", log="web.log"))
    write_driver(root, "02cache", simple_driver(
        "cache", {"size": SIZE, "policy": POLICY}, version="0.9", log="cache.log"))


def request(components: dict[str, dict[str, Any]], **extra: Any) -> str:
    return json.dumps({"application": {"components": {
        name: {"settings": {k: {"value": v} for k, v in settings.items()}}
        for name, settings in components.items()}}, **extra})


def assert_one_error(run: AdjustRun, reason: str) -> dict[str, Any]:
    """The way every command-ending error looks to servo and to a person. (That every
    stdout line is one JSON object: AdjustRun.json_lines, which `final`, `error`,
    `progress` and this read, asserts it of every line.)"""
    assert run.returncode != 0
    error = run.error
    assert error["status"] == "failed"
    assert error["reason"] == reason
    assert error["message"]
    assert f"servo-agg: error ({reason}): " in run.stderr
    return error


# -- --query / --describe -------------------------------------------------------------------

async def test_describe_asks_each_driver_with_the_app_id_and_merges_the_descriptors(
        servo_root: Path, tag: str) -> None:
    """--describe, --query's other name (either name in either front-end: test_request.py);
    each driver is asked --query, as servo asks an adjust driver, with servo's app id."""
    two_drivers(servo_root)
    write_driver(servo_root, "03args", """\
        printf '%s\\n' "$@" > argv.log
        echo '{"application": {"components": {}}}'
        """, shebang="#!/bin/sh")
    run = await run_adjust(servo_root, "--describe", "shop-prod", tag=tag)
    assert run.returncode == 0, run.stderr
    assert len(run.lines) == 1
    assert run.final == {"application": {"components": {
        "web": {"settings": {"cpu": CPU, "replicas": REPLICAS}},
        "cache": {"settings": {"size": SIZE, "policy": POLICY}}}}}
    assert (servo_root / "argv.log").read_text().splitlines() == ["--query", "shop-prod"]


# -- adjust: bad input --------------------------------------------------------------------

async def test_a_bad_request_is_one_error_and_runs_nothing(servo_root: Path,
                                                            tag: str) -> None:
    """stdin at its end at once: not JSON (every other way, JSON of the wrong shape
    included, and what each says: test_request.py's
    test_bad_requests_are_bad_input_and_say_no_driver_ran; the launch parses the request
    the same way for every command that takes one: test_launch.py)."""
    write_driver(servo_root, "01web", 'echo "$@" >> ran.log\necho \'{"status": "ok"}\'',
                 shebang="#!/bin/sh")  # leaves ran.log whenever it is run at all
    run = await run_adjust(servo_root, "app", tag=tag, stdin="")
    error = assert_one_error(run, "bad-input")
    assert "not JSON" in error["message"]
    assert "no driver was run" in error["message"]
    assert not (servo_root / "ran.log").exists()


async def test_a_request_that_never_ends_is_refused_before_servo_gives_up(
        servo_root: Path, tag: str) -> None:
    """servo's stdin left open: the error is on stdout within T, while servo still listens."""
    write_driver(servo_root, "01never", "raise SystemExit(1)\n")
    proc = await trio.lowlevel.open_process(
        [str(ADJUST), "app"], cwd=servo_root,
        env=adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    started = trio.current_time()
    try:
        await proc.stdin.send_all(b'{"application": ')  # and never the rest
        output = b""
        with trio.fail_after(3 * T):
            while chunk := await proc.stdout.receive_some(1 << 16):
                output += chunk
                if output.endswith(b"\n"):
                    break
        answered_after = trio.current_time() - started
        await proc.wait()
    finally:
        proc.kill()
        await proc.wait()
        await proc.stdin.aclose()
    final = json.loads(output)
    assert (final["status"], final["reason"]) == ("failed", "bad-input"), final
    assert answered_after < T, answered_after
    assert proc.returncode == 1


# -- adjust ---------------------------------------------------------------------------------

async def test_adjust_runs_each_driver_with_its_share_and_reports_progress(
        servo_root: Path, tag: str) -> None:
    two_drivers(servo_root)
    control = {"userdata": {"run": 7}, "timeout": 60}
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request(
        {"web": {"cpu": 2, "replicas": 3}, "cache": {"policy": "lfu"}}, control=control))
    assert run.returncode == 0, run.stderr
    assert run.final == {"status": "ok", "reason": "success"}
    web = json.loads((servo_root / "web.log").read_text())
    cache = json.loads((servo_root / "cache.log").read_text())
    assert web == {"application": {"components": {"web": {"settings": {
        "cpu": {"value": 2}, "replicas": {"value": 3}}}}}, "control": control}
    assert cache == {"application": {"components": {"cache": {"settings": {
        "policy": {"value": "lfu"}}}}}, "control": control}
    progress = run.progress
    percents = [p["progress"] for p in progress]
    assert percents == sorted(percents)
    assert all(isinstance(p, int) and 0 <= p <= 100 for p in percents)
    assert percents[-1] == 100
    assert {"progress": 50, "message": "01web: done"} in progress
    assert {"progress": 100, "message": "02cache: done"} in progress
    # simple_driver's first step, at 33 % of each half (a driver's first line always gets
    # through; its later ones may be replaced by a newer state within the interval):
    assert {"progress": 16, "message": "01web: step 0"} in progress
    assert {"progress": 66, "message": "02cache: step 0"} in progress
    assert all(p["message"].startswith(("01web: ", "02cache: ")) for p in progress)


# -- a copy of adjust and aggregator/ in another servo root ---------------------------------

async def test_adjust_and_aggregator_copied_alone_into_a_servo_root_work(
        tmp_path: Path, tag: str) -> None:
    root = tmp_path / "elsewhere"
    root.mkdir()
    shutil.copy2(ADJUST, root / "adjust")
    shutil.copytree(REPO / "aggregator", root / "aggregator",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # Mark the copy, to be sure the copy (not the checkout or an install) is what runs.
    init = root / "aggregator" / "__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{__version__}"',
                                             f'__version__ = "{__version__}+copy"'))
    two_drivers(root)
    env = adjust_env(tag)
    env.pop("PYTHONPATH", None)
    run = await run_adjust(root, "app", tag=tag, env=env, adjust=root / "adjust",
                           stdin=request({"cache": {"size": 128}}))
    assert run.returncode == 0, run.stderr
    assert run.final == {"status": "ok", "reason": "success"}
    assert (root / "cache.log").exists()
    # the copy is what ran: its mark is the version in the run's record
    [record] = journal_records(root)
    assert record["version"] == f"{__version__}+copy"
