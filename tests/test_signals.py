"""servo's signals during an adjust (and during a query, a rollback or --version):
SIGUSR1 cancels (the driver may answer, else it is killed after the cancel grace),
SIGTERM and SIGINT abort. In every case no further driver starts, the final line names
what happened and the driver that was running, and nothing the driver started survives;
the run's record keeps the signal.

Each signal reaches a real ./adjust once (while the request is read, too:
test_early_signals.py); what the run does with it, driver by driver, runs the real
command over the fault driver's fakes on trio's MockClock."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig
from aggregator.supervision.channel import SERVO_GONE_SIGNAL
from tests.fake_faults import fault_script
from tests.fakes import (
    FakeMember,
    FakeRun,
    Script,
    adjust_job,
    hangs_on_query,
    run_command,
    simple_script,
)
from tests.fault_support import (
    FAULT,
    REQUEST,
    T,
    fault_root,
    requests_of,
    run_watched,
    started_by_fault,
)
from tests.support import AGGREGATOR, AdjustRun, adjust_env, alive, journal_records

CANCEL_GRACE = 1.0
#: When servo's signals come on MockClock: the fault driver's adjust has long started.
SIGNAL_AT = 1.0


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


async def fake_adjust_then_signal(mode: str, *signals: int,
                                  cancel_grace: float = CANCEL_GRACE) -> FakeRun:
    """adjust_then_signal over fakes: fault_root's drivers, the fault driver working (a
    line every 0.3 s) when servo's signals come, 0.05 s apart."""
    setting = {"value": 1, "min": 0, "max": 10}
    drivers = {"01good": simple_script("a", {"x": setting}, version="a-1.0"),
               FAULT: fault_script(mode, io_timeout=T, interval=0.3),
               "03good": simple_script("b", {"y": setting}, version="b-1.0")}
    job = adjust_job(Command.ADJUST, sorted(drivers), REQUEST,
                     config=AggregatorConfig(cancel_grace=cancel_grace))
    return await run_command(job, drivers, io_timeout=T, signals=[
        (SIGNAL_AT + 0.05 * i, sig) for i, sig in enumerate(signals)])


def check_fakes_stopped_cleanly(run: FakeRun) -> None:
    """check_stopped_cleanly's (that nothing is left running: the fake spawner's)."""
    assert run.json_lines  # every line a JSON object
    assert run.max_gap() < T, run.stdout_lines
    assert [p.spec.call for p in run.calls("01good")] == [Call.QUERY, Call.ADJUST]
    assert Call.ADJUST not in [p.spec.call for p in run.calls("03good")], \
        "a driver was started after the signal"


CANCELED = [
    ("cancel-aware", "stopped at servo's request"),  # its own canceled result is kept
    ("no-cancel-handler", "SIGUSR1"),  # it died of the signal, as servo intends
    ("ignore-sigusr1", "cancel grace"),  # killed once the grace was over
]


def check_canceled(run: AdjustRun, says: str) -> None:
    final = run.final
    assert (final["status"], final["reason"]) == ("canceled", "canceled"), final
    assert f"while {FAULT} was running" in final["message"]
    assert says in final["message"], final["message"]
    assert run.returncode == 1


@pytest.mark.e2e
async def test_sigusr1_cancels_the_running_driver(servo_root: Path, tag: str) -> None:
    """And the run's record says so: the signal, when it came, and how the call ended."""
    mode, says = CANCELED[0]
    run = await adjust_then_signal(servo_root, tag, mode, signal.SIGUSR1)
    check_canceled(run, says)
    check_stopped_cleanly(servo_root, run)
    [record] = journal_records(servo_root)
    assert (record["status"], record["exit_code"]) == ("canceled", 1)
    canceled = record["calls"][-1]
    assert (canceled["driver"], canceled["call"], canceled["end"]) == (FAULT, "adjust",
                                                                        "canceled")
    [(name, at)] = [(s["signal"], s["at"]) for s in record["signals"]]
    assert name == "SIGUSR1"
    assert canceled["start"] < at < canceled["start"] + canceled["duration"]


@pytest.mark.supervision
@pytest.mark.parametrize(("mode", "says"), CANCELED)
async def test_sigusr1_cancels_the_running_driver_whatever_it_does_with_it(
        mode: str, says: str, autojump_clock: MockClock) -> None:
    run = await fake_adjust_then_signal(mode, signal.SIGUSR1)
    check_canceled(run, says)
    check_fakes_stopped_cleanly(run)


STOPS = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


def check_aborted(run: AdjustRun, sig: int) -> None:
    assert run.final["status"] == "aborted" and run.final["reason"] == "terminated", run.final
    assert signal.Signals(sig).name in run.final["message"]
    assert f"while {FAULT} was running" in run.final["message"]
    assert run.returncode == 128 + sig


@pytest.mark.e2e
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_sigterm_and_sigint_abort_with_the_kill_cascade(
        sig: int, servo_root: Path, tag: str) -> None:
    """SIGINT, which Python itself would make a KeyboardInterrupt, and SIGTERM, which
    stands for SIGHUP: both are received as every one of STOP_SIGNALS is (the next test)."""
    run = await adjust_then_signal(servo_root, tag, "work", sig)
    check_aborted(run, sig)
    check_stopped_cleanly(servo_root, run)


@pytest.mark.unit
def test_servos_signals_are_one_list_every_receiver_takes() -> None:
    """The early handlers (signals.py) and the run's receiver (control.py) both take
    STOP_SIGNALS, so SIGHUP reaches a real ./adjust as SIGTERM does."""
    from aggregator.supervision.signals import STOP_SIGNALS

    assert set(STOP_SIGNALS) == {signal.SIGUSR1, *STOPS}


@pytest.mark.supervision
@pytest.mark.parametrize("sig", STOPS, ids=[s.name for s in STOPS])
@pytest.mark.parametrize("mode", ["work", "ignore-sigterm"])
async def test_sigterm_and_sigint_abort_whatever_the_driver_does_with_them(
        sig: int, mode: str, autojump_clock: MockClock) -> None:
    run = await fake_adjust_then_signal(mode, sig)
    check_aborted(run, sig)
    check_fakes_stopped_cleanly(run)


@pytest.mark.supervision
async def test_sigterm_during_the_cancel_grace_aborts_at_once(
        autojump_clock: MockClock) -> None:
    run = await fake_adjust_then_signal("ignore-sigusr1", signal.SIGUSR1, signal.SIGTERM)
    assert (run.final["status"], run.final["reason"]) == ("aborted", "terminated"), run.final
    assert run.returncode == 128 + signal.SIGTERM
    assert run.elapsed < SIGNAL_AT + CANCEL_GRACE  # the grace was not waited out
    check_fakes_stopped_cleanly(run)


@pytest.mark.supervision
async def test_the_cancel_grace_never_outlasts_servos_patience(
        autojump_clock: MockClock) -> None:
    """With a 60 s grace configured and T = 3 s, a driver that ignores SIGUSR1 (but keeps
    talking) is killed after T-1 s: servo gets its canceled result while it still listens."""
    run = await fake_adjust_then_signal("ignore-sigusr1", signal.SIGUSR1, cancel_grace=60)
    assert (run.final["status"], run.final["reason"]) == ("canceled", "canceled"), run.final
    assert "cancel grace" in run.final["message"]
    assert run.elapsed < SIGNAL_AT + T  # nowhere near the configured 60 s
    check_fakes_stopped_cleanly(run)


@pytest.mark.supervision
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGUSR1, "canceled"),
                                             (signal.SIGTERM, "aborted")])
async def test_a_stop_during_a_query_names_the_driver_that_was_running(
        sig: int, status: str, autojump_clock: MockClock) -> None:
    drivers: dict[str, Script] = {"01hang": hangs_on_query}
    job = adjust_job(Command.QUERY, list(drivers), config=AggregatorConfig(cancel_grace=0.5))
    run = await run_command(job, drivers, io_timeout=None, signals=[(SIGNAL_AT, sig)])
    assert run.final["status"] == status, run.final
    assert "while 01hang was running" in run.final["message"], run.final


async def rollback_hangs(p: FakeMember) -> None:
    """Owns web.cpu (1); its adjust to 2 succeeds, its rollback to 1 hangs."""
    if p.proc.spec.call is Call.QUERY:
        await p.say({"application": {"components": {"web": {"settings": {
            "cpu": {"value": 1, "min": 0, "max": 4}}}}}})
        return
    request = json.loads(await p.read_request())
    if request["application"]["components"]["web"]["settings"]["cpu"]["value"] == 1:
        await trio.sleep_forever()  # the rollback to the queried value
    await p.say({"status": "ok", "reason": "success"})


async def fails(p: FakeMember) -> int:
    """Owns db.size; its adjust fails."""
    if p.proc.spec.call is Call.QUERY:
        await p.say({"application": {"components": {"db": {"settings": {
            "size": {"value": 1, "min": 0, "max": 4}}}}}})
        return 0
    await p.read_request()
    return 1


@pytest.mark.supervision
async def test_a_stop_during_a_rollback_names_the_driver_being_rolled_back(
        autojump_clock: MockClock) -> None:
    drivers: dict[str, Script] = {"01web": rollback_hangs, "02db": fails}
    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}},
                                              "db": {"settings": {"size": {"value": 2}}}}}}
    job = adjust_job(Command.ADJUST, list(drivers), request,
                     config=AggregatorConfig(on_failure="rollback"))
    run = await run_command(job, drivers, io_timeout=None,
                            signals=[(SIGNAL_AT, signal.SIGTERM)])
    assert (run.final["status"], run.final["reason"]) == ("aborted", "terminated"), run.final
    assert "while 01web was running" in run.final["message"], run.final
    assert [p.spec.call for p in run.calls("01web")][-1] is Call.ROLLBACK  # it was rolling back
    assert run.returncode == 128 + signal.SIGTERM


#: servo's two ways of stopping a run from outside: SIGTERM, and servo gone (its end of
#: stdout closed, or servo exited), for which SIGHUP stands (channel.SERVO_GONE_SIGNAL)
SIGTERM_AND_SERVO_GONE = [signal.SIGTERM, SERVO_GONE_SIGNAL]


@pytest.mark.supervision
@pytest.mark.parametrize("sig", SIGTERM_AND_SERVO_GONE, ids=["SIGTERM", "servo-gone"])
async def test_version_stopped_shows_every_driver_and_the_one_cut_as_interrupted(
        sig: int, autojump_clock: MockClock) -> None:
    """Stopped while a driver's --info hangs: the line shows what was answered and the cut
    driver as interrupted (not failing), then the stopped run's final line, exit 128+signal.
    How servo gone is noticed, through ./adjust: test_servo_end_e2e.py."""
    setting = {"value": 1, "min": 0, "max": 10}
    drivers = {"01good": simple_script("a", {"x": setting}, version="a-1.0"),
               FAULT: fault_script("hang", Call.INFO),
               "03good": simple_script("b", {"y": setting}, version="b-1.0")}
    job = adjust_job(Command.VERSION, sorted(drivers), app="")
    run = await run_command(job, drivers, io_timeout=None, stderr_mode="none",
                            signals=[(SIGNAL_AT, sig)])
    assert run.returncode == 128 + sig
    assert run.lines[0] == f"{AGGREGATOR} (01good a-1.0, {FAULT}: interrupted, 03good b-1.0)"
    assert "failing" not in run.stderr, run.stderr
    final = json.loads(run.lines[-1])  # then the one way a stopped run ends
    assert (final["status"], final["reason"]) == ("aborted", "terminated"), final
    assert f"while {FAULT} was running" in final["message"], final
    assert [p.spec.call for p in run.calls(FAULT)][-1] is Call.INFO  # stopped where it hung


@pytest.mark.supervision
async def test_dry_run_stops_when_servo_goes_as_on_sigterm(autojump_clock: MockClock) -> None:
    """servo gone stops the run as SIGTERM does, with SIGHUP standing for it; how each is
    noticed, and --check and an adjust stopped so, through ./adjust: test_servo_end_e2e.py
    (--version: the test above)."""
    setting = {"value": 1, "min": 0, "max": 10}
    drivers = {"01good": simple_script("a", {"x": setting}, version="a-1.0"),
               FAULT: fault_script("hang", Call.QUERY),
               "03good": simple_script("b", {"y": setting}, version="b-1.0")}
    job = adjust_job(Command.DRY_RUN, sorted(drivers), REQUEST)
    run = await run_command(job, drivers, io_timeout=None,
                            signals=[(SIGNAL_AT, SERVO_GONE_SIGNAL)])
    assert run.returncode != 0
    assert (run.final["status"], run.final["reason"]) == ("aborted", "terminated")
    assert f"while {FAULT} was running; the driver was stopped" in run.final["message"]
    assert [p.spec.call for p in run.calls(FAULT)][-1] is Call.QUERY  # stopped where it hung
