"""Defects found in a second read of the whole product, each pinned by a test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from aggregator.process.fork import child_environment
from aggregator.process.headstart import Headstart
from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.supervision.control import RunControl
from aggregator.supervision.spec import CallSpec
from tests.fault_support import run_watched
from tests.support import ADJUST, TAG_VAR, adjust_env, real_supervisor, run_adjust, write_driver

T = 3.0  # OPTUNE_IO_TIMEOUT: the aggregator waits T-1 = 2 s for a driver's line

SLOW_BUT_IN_TIME = """
    import json, sys, time
    if "--info" in sys.argv:
        print(json.dumps({"version": "1", "has_cancel": False}))
        sys.exit(0)
    if "--query" in sys.argv:
        time.sleep(1.6)  # under the 2 s per line
        print(json.dumps({"application": {"components": {"web": {"settings": {
            "cpu": {"value": 1, "min": 0, "max": 4}}}}}}))
        sys.exit(0)
    json.load(sys.stdin)
    time.sleep(1.6)  # under the 2 s per line
    print(json.dumps({"progress": 50, "message": "half"}), flush=True)
    print(json.dumps({"status": "ok", "reason": "success"}))
    """


async def test_no_silence_of_t_between_the_queries_and_the_first_adjust(
        servo_root: Path, tag: str) -> None:
    """Each call answers within the line limit, but the last query and the first adjust
    together outlast servo's patience: a keep-alive line must come between them."""
    write_driver(servo_root, "01slow", SLOW_BUT_IN_TIME)
    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}}}
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(request),
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}"))
    assert run.final == {"status": "ok", "reason": "success"}, run.stderr
    assert run.max_gap() < T, (run.max_gap(), run.stdout_lines)
    percents = [p["progress"] for p in run.progress]
    assert percents == sorted(percents), percents


HANGS_IN_QUERY = """
    import json, pathlib, sys, time
    if "--query" in sys.argv:
        pathlib.Path("querying").touch()
        time.sleep(60)
    print(json.dumps({"version": "1", "has_cancel": False}))
    """


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGUSR1, "canceled"),
                                             (signal.SIGTERM, "aborted")])
async def test_a_stop_during_a_query_names_the_driver_that_was_running(
        sig: int, status: str, servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "01hang", HANGS_IN_QUERY)
    (servo_root / "config.yaml").write_text("aggregator:\n  cancel_grace: 0.5\n")
    run, _ = await run_watched(servo_root, "--query", "app", tag=tag, env=adjust_env(tag),
                               signals_after_start=(sig,),
                               signal_when=(servo_root / "querying").exists)
    assert run.final["status"] == status, run.final
    assert "while 01hang was running" in run.final["message"], run.final


ROLLBACK_HANGS = """
    import json, pathlib, sys, time
    if "--info" in sys.argv:
        print(json.dumps({"version": "1", "has_cancel": False}))
        sys.exit(0)
    if "--query" in sys.argv:
        print(json.dumps({"application": {"components": {"web": {"settings": {
            "cpu": {"value": 1, "min": 0, "max": 4}}}}}}))
        sys.exit(0)
    request = json.load(sys.stdin)
    if request["application"]["components"]["web"]["settings"]["cpu"]["value"] == 1:
        pathlib.Path("rolling-back").touch()  # the rollback to the queried value
        time.sleep(60)
    print(json.dumps({"status": "ok", "reason": "success"}))
    """

FAILS = """
    import json, sys
    if "--query" in sys.argv:
        print(json.dumps({"application": {"components": {"db": {"settings": {
            "size": {"value": 1, "min": 0, "max": 4}}}}}}))
        sys.exit(0)
    sys.exit(1)
    """


async def test_a_stop_during_a_rollback_names_the_driver_being_rolled_back(
        servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "01web", ROLLBACK_HANGS)
    write_driver(servo_root, "02db", FAILS)
    (servo_root / "config.yaml").write_text("aggregator:\n  on_failure: rollback\n")
    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}},
                                              "db": {"settings": {"size": {"value": 2}}}}}}
    run, _ = await run_watched(servo_root, "app", tag=tag, env=adjust_env(tag),
                               stdin=json.dumps(request), signals_after_start=(signal.SIGTERM,),
                               signal_when=(servo_root / "rolling-back").exists)
    assert (run.final["status"], run.final["reason"]) == ("aborted", "terminated"), run.final
    assert "while 01web was running" in run.final["message"], run.final
    assert run.returncode == 128 + signal.SIGTERM


@pytest.mark.parametrize("stop", ["cancel", "terminate"])
async def test_a_stop_before_trio_reaches_the_head_started_driver_as_a_running_one(
        stop: str, servo_root: Path, tag: str) -> None:
    """servo's signal came while trio was being imported: the driver the head start runs
    is stopped under supervision (SIGUSR1 and its grace, or the kill cascade) and named."""
    path = write_driver(servo_root, "01sleep", "import time\ntime.sleep(60)\n")
    env = {**os.environ, TAG_VAR: tag}
    spec = CallSpec(Driver("01sleep", path), Call.QUERY, ("--query", "app"))
    headstart: Headstart[CallSpec] = Headstart()
    headstart.start(spec, spec.argv, servo_root, child_environment(env, servo_root))
    control = RunControl()
    if stop == "cancel":
        control.cancel()
    else:
        control.terminate(signal.SIGTERM)
    sup = real_supervisor(servo_root, env, cancel_grace=0.5, control=control,
                          headstart=headstart)
    try:
        outcome = await sup.call(spec)
        taken = headstart.waiting_pids == frozenset()
    finally:
        headstart.discard_all()
    assert taken
    assert outcome.exit_code is not None  # it ran, and was stopped and reaped by its call
    expected = {"cancel": "canceled", "terminate": "terminated"}[stop]
    assert outcome.problem is not None and outcome.problem.reason == expected, outcome
    assert control.interrupted == ["01sleep"]


async def test_a_query_without_an_app_id_asks_the_drivers_without_one(
        servo_root: Path, tag: str) -> None:
    """`adjust --query` by hand: drivers get `--query`, not an invented empty app id."""
    write_driver(servo_root, "01args", """
        import json, sys
        with open("argv.log", "a") as log:
            log.write(json.dumps(sys.argv[1:]) + "\\n")
        print(json.dumps({"components": {"c": {"settings": {"x": {"value": 1}}}}}))
        """)
    run = await run_adjust(servo_root, "--query", tag=tag)
    assert run.returncode == 0, run.stderr
    logged = [json.loads(line) for line in (servo_root / "argv.log").read_text().splitlines()]
    assert logged == [["--query"]]


async def test_a_parallel_query_ending_does_not_cut_a_siblings_kill_grace(
        servo_root: Path, tag: str) -> None:
    """Two stuck drivers time out together: the one that dies at once on SIGTERM must not
    sweep the other away (as an orphan) while it uses its grace to clean up."""
    write_driver(servo_root, "01cleans", """
        import pathlib, signal, sys, time
        def on_term(*_):
            time.sleep(0.05)
            pathlib.Path("cleaned").touch()
            sys.exit(1)
        signal.signal(signal.SIGTERM, on_term)
        time.sleep(60)
        """)
    write_driver(servo_root, "02dies", "import time\ntime.sleep(60)\n")
    (servo_root / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag,
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}"))
    assert run.final["failed_drivers"] == ["01cleans", "02dies"], run.final
    assert (servo_root / "cleaned").exists(), "01cleans was killed before its grace was over"


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
