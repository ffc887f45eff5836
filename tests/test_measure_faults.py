"""The measure fault matrix: a faulty driver beside a good one, run as servo runs
./measure. Each case asserts what adjust's matrix asserts (one clear final line naming the
driver, progress that never goes back, servo never left without a line for T, nothing
left running) plus wall time: the drivers run together, so a run lasts about the
longest driver's window, never the sum, and a failure cuts the others short.

As in adjust's matrix, what the aggregator decides runs the real command on trio's
MockClock over the fault driver's fakes (tests/fake_faults.py); ./measure with the real
fault driver, what only the kernel shows (a load tool that ignores the cancel and holds
the pipes) and real drivers measuring side by side."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from trio.testing import MockClock

from aggregator.measure.calls import MeasureCommand
from aggregator.protocol.vocabulary import Call
from tests.fake_faults import fault_script
from tests.fakes import FakeRun, measure_job, measure_script, run_command
from tests.fault_support import T, calls_of, run_watched, started_by_fault
from tests.measure_support import MEASURE, install_measure_fault, measure_driver
from tests.support import AdjustRun, adjust_env, alive

GOOD, FAULT = "01good", "02fault"
REQUEST = {"metrics": ["good_rps", "fault_level"], "control": {"duration": 1}}
GOOD_WINDOW = 6.0  # long: a failure must cut it short, never let it run out


@dataclass(frozen=True)
class Case:
    mode: str
    phase: str  # describe or measure
    status: str
    reason: str
    says: tuple[str, ...] = ()
    good_measures: bool = True  # the good driver's measure was started
    cancel_after: float | None = None  # servo's SIGUSR1, once the fault driver measures
    fault_env: tuple[tuple[str, str], ...] = ()
    kernel: bool = False  # only real processes show it: ./measure and the real driver

    @property
    def id(self) -> str:
        return f"{self.phase}:{self.mode}" + ("+cancel" if self.cancel_after else "")


CASES = [
    Case("hang", "measure", "failed", "timeout", ("02fault", "sent nothing for 2.0 s",
                                                  "canceled because 02fault failed: 01good")),
    Case("failed-result", "measure", "failed", "fault-injected",
         ("failed on purpose", "canceled because 02fault failed: 01good")),
    Case("loadgen-child-holds-pipes", "measure", "canceled", "canceled",
         ("canceled by servo",), cancel_after=1.0, kernel=True),
    Case("cancel-aware", "measure", "canceled", "canceled", ("canceled by servo",),
         cancel_after=1.0),
    Case("non-json", "describe", "failed", "bad-output", ("02fault", "not JSON",
                                                          "no measurement was started"),
         good_measures=False),
    Case("ok", "describe", "failed", "duplicate-metric",
         ("metric good_rps is described by both 01good and 02fault",), good_measures=False,
         fault_env=(("FAULT_METRIC", "good_rps"),)),
]


async def run_case(case: Case, root: Path, tag: str) -> AdjustRun:
    measure_driver(root, GOOD, {"good_rps": {"unit": "rpm"}}, window=GOOD_WINDOW)
    install_measure_fault(root, FAULT)
    pidfile = root / "fault.pids"
    env = adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}", FAULT_MODE=case.mode,
                     FAULT_PHASE=case.phase, FAULT_PIDFILE=str(pidfile),
                     FAULT_DURATION="60", **dict(case.fault_env))

    def measuring() -> bool:
        return pidfile.exists() and any(s.call == "measure"
                                        for s in started_by_fault(pidfile))

    run, _ = await run_watched(
        root, "app", tag=tag, env=env, stdin=json.dumps(REQUEST),
        signals_after_start=(signal.SIGUSR1,) if case.cancel_after else (),
        signal_when=measuring if case.cancel_after else None, program=MEASURE)
    return run


KERNEL_CASES = [c for c in CASES if c.kernel]
FAKE_CASES = [c for c in CASES if not c.kernel]
PHASE_CALL = {"describe": Call.DESCRIBE, "measure": Call.MEASURE}


def check_run(case: Case, run: AdjustRun) -> None:
    """What servo saw, whatever ran the case."""
    assert run.json_lines, run.stderr
    final = run.final
    assert (final["status"], final["reason"]) == (case.status, case.reason), final
    for text in case.says:
        assert text in final["message"], final["message"][:2000]
    assert run.returncode != 0
    values = [p["progress"] for p in run.progress]
    assert values == sorted(values) and all(0 <= v <= 100 for v in values), values
    assert run.max_gap() < T, (run.max_gap(), run.stdout_lines)
    assert "Traceback" not in run.stderr, run.stderr
    if case.good_measures and case.cancel_after is None:  # the good driver was canceled
        assert final["canceled_drivers"] == [GOOD], final
    # concurrent: a failure or a cancel cuts the good driver's window short
    assert run.elapsed < GOOD_WINDOW, run.elapsed


@pytest.mark.supervision
@pytest.mark.parametrize("case", FAKE_CASES, ids=[c.id for c in FAKE_CASES])
async def test_a_faulty_measure_driver_ends_in_one_clear_error(
        case: Case, autojump_clock: MockClock) -> None:
    drivers = {GOOD: measure_script({"good_rps": {"unit": "rpm"}}, window=GOOD_WINDOW),
               FAULT: fault_script(case.mode, PHASE_CALL[case.phase], io_timeout=T,
                                   duration=60, metric=dict(case.fault_env).get("FAULT_METRIC"))}
    run: FakeRun = await run_command(
        measure_job(MeasureCommand.MEASURE, list(drivers), REQUEST), drivers, io_timeout=T,
        signals=((case.cancel_after, signal.SIGUSR1),) if case.cancel_after else ())
    check_run(case, run)
    # (nothing left running: the fake spawner's check)
    assert any(p.spec.call is PHASE_CALL[case.phase] for p in run.calls(FAULT))
    if not case.good_measures:  # a describe failed: no measure started at all
        assert Call.MEASURE not in [p.spec.call for p in run.calls(GOOD)]


@pytest.mark.e2e
@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.id for c in KERNEL_CASES])
async def test_a_faulty_real_measure_driver_ends_in_one_clear_error(
        case: Case, servo_root: Path, tag: str) -> None:
    run = await run_case(case, servo_root, tag)
    check_run(case, run)
    survivors = [s for s in started_by_fault(servo_root / "fault.pids") if alive(s.pid)]
    assert not survivors, f"still running after the aggregator exited: {survivors}"
    if not case.good_measures:  # a describe failed: no measure started at all
        assert "app" not in calls_of(servo_root, GOOD), calls_of(servo_root, GOOD)


@pytest.mark.e2e
async def test_drivers_share_the_window_the_run_lasts_the_longest_never_the_sum(
        servo_root: Path, tag: str) -> None:
    measure_driver(servo_root, "01a", {"a": {}}, window=2.0)
    measure_driver(servo_root, "02b", {"b": {}}, window=2.0)
    measure_driver(servo_root, "03c", {"c": {}}, window=2.0)
    run, _ = await run_watched(servo_root, "app", tag=tag, env=adjust_env(tag),
                               stdin=json.dumps({"metrics": ["a", "b", "c"]}),
                               program=MEASURE)
    assert run.final == {"status": "ok", "metrics": {m: {"value": 1} for m in "abc"}}
    assert run.elapsed < 2 * 2.0, run.elapsed  # together: about 2 s, not 6 s
