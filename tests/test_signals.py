"""servo's signals during an adjust (and during a query or a rollback): SIGUSR1 cancels
(the driver may answer, else it is killed after the cancel grace), SIGTERM and SIGINT
abort. In every case no further driver starts, the final line names what happened and
the driver that was running, and nothing the driver started survives."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from tests.fault_support import (
    FAULT,
    REQUEST,
    T,
    fault_root,
    requests_of,
    run_watched,
    started_by_fault,
)
from tests.support import ADJUST, AdjustRun, adjust_env, alive, simple_driver, write_driver

pytestmark = pytest.mark.e2e

CANCEL_GRACE = 1.0


async def adjust_then_signal(root: Path, tag: str, mode: str, *signals: int,
                             cancel_grace: float = CANCEL_GRACE) -> AdjustRun:
    """An adjust whose fault driver works (a line every 0.3 s) until the signals come;
    they are sent to the aggregator as soon as the fault driver's adjust has started."""
    fault_root(root)
    (root / "config.yaml").write_text(f"aggregator:\n  cancel_grace: {cancel_grace}\n")
    pidfile = root / "fault.pids"
    env = adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}", FAULT_MODE=mode,
                     FAULT_PIDFILE=str(pidfile), FAULT_INTERVAL="0.3")

    def fault_adjusting() -> bool:  # and its signal handlers are in place
        return any(s.call == "adjust" and s.role in ("working", "hanging")
                   for s in started_by_fault(pidfile))

    run, _ = await run_watched(root, "app", tag=tag, env=env, stdin=json.dumps(REQUEST),
                               signals_after_start=signals, signal_when=fault_adjusting)
    return run


def check_stopped_cleanly(root: Path, run: AdjustRun) -> None:
    assert run.json_lines  # every line a JSON object
    assert run.max_gap() < T, run.stdout_lines
    assert len(requests_of(root, "01good")) == 1  # ran before the signal
    assert requests_of(root, "03good") == [], "a driver was started after the signal"
    survivors = [s for s in started_by_fault(root / "fault.pids") if alive(s.pid)]
    assert not survivors, survivors


@pytest.mark.parametrize(("mode", "says"), [
    ("cancel-aware", "stopped at servo's request"),  # its own canceled result is kept
    ("no-cancel-handler", "SIGUSR1"),  # it died of the signal, as servo intends
    ("ignore-sigusr1", "cancel grace"),  # killed once the grace was over
])
async def test_sigusr1_cancels_the_running_driver(mode: str, says: str, servo_root: Path,
                                                  tag: str) -> None:
    run = await adjust_then_signal(servo_root, tag, mode, signal.SIGUSR1)
    final = run.final
    assert (final["status"], final["reason"]) == ("canceled", "canceled"), final
    assert f"while {FAULT} was running" in final["message"]
    assert says in final["message"], final["message"]
    assert run.returncode == 1
    check_stopped_cleanly(servo_root, run)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
@pytest.mark.parametrize("mode", ["work", "ignore-sigterm"])
async def test_sigterm_and_sigint_abort_with_the_kill_cascade(
        sig: int, mode: str, servo_root: Path, tag: str) -> None:
    run = await adjust_then_signal(servo_root, tag, mode, sig)
    assert run.final["status"] == "aborted" and run.final["reason"] == "terminated", run.final
    assert signal.Signals(sig).name in run.final["message"]
    assert f"while {FAULT} was running" in run.final["message"]
    assert run.returncode == 128 + sig
    check_stopped_cleanly(servo_root, run)


async def test_sigterm_during_the_cancel_grace_aborts_at_once(servo_root: Path,
                                                              tag: str) -> None:
    run = await adjust_then_signal(servo_root, tag, "ignore-sigusr1",
                                   signal.SIGUSR1, signal.SIGTERM)
    assert (run.final["status"], run.final["reason"]) == ("aborted", "terminated"), run.final
    assert run.returncode == 128 + signal.SIGTERM
    check_stopped_cleanly(servo_root, run)


async def test_the_cancel_grace_never_outlasts_servos_patience(servo_root: Path,
                                                               tag: str) -> None:
    """With a 60 s grace configured and T = 3 s, a driver that ignores SIGUSR1 (but keeps
    talking) is killed after T-1 s: servo gets its canceled result while it still listens."""
    run = await adjust_then_signal(servo_root, tag, "ignore-sigusr1", signal.SIGUSR1,
                                   cancel_grace=60)
    assert (run.final["status"], run.final["reason"]) == ("canceled", "canceled"), run.final
    assert "cancel grace" in run.final["message"]
    assert run.elapsed < 30  # nowhere near the configured 60 s
    check_stopped_cleanly(servo_root, run)


async def test_sighup_while_the_request_is_read_ends_the_run_as_sigterm_does(
        servo_root: Path, tag: str) -> None:
    """A closed terminal or session must not kill the aggregator without a final line."""
    write_driver(servo_root, "01a", simple_driver("a", {"x": {"value": 1}}))
    env = adjust_env(tag)
    proc = await trio.lowlevel.open_process([str(ADJUST), "app"], cwd=servo_root, env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        await trio.sleep(1.0)  # started, waiting for the request
        proc.send_signal(signal.SIGHUP)
        with trio.fail_after(20):
            await proc.wait()
        assert proc.stdout is not None
        out = await proc.stdout.receive_some(65536)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
    final = json.loads(out.splitlines()[-1])
    assert (final["status"], final["reason"]) == ("aborted", "terminated")
    assert "SIGHUP" in final["message"]
    assert proc.returncode == 128 + signal.SIGHUP


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
