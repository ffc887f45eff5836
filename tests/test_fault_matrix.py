"""Every way a driver can misbehave: the fault driver (faults/adjust-fault) between two
good drivers, each case run the way servo runs it.

For each case: every stdout line is a JSON object (--version: one text line); the final
line names the faulty driver with the right status and reason; the aggregator is never
silent for T; nothing the faulty driver started survives; the good drivers did their
work; and in the flood cases the aggregator's memory stays bounded.

Where the aggregator's handling is all its own (what a line means, what an exit means,
the deadlines, the keep-alives), the case runs the real command on trio's MockClock over
the fault driver's fakes (tests/fake_faults.py, held to the real driver in
test_fault_driver.py), in milliseconds. Where only the kernel can show it (descendants,
their sessions and pipes, real memory, a real EPIPE or SIGKILL), it runs ./adjust with
the real fault driver.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.limits import MAX_MESSAGE_BYTES
from aggregator.protocol.environment import StderrMode
from aggregator.protocol.vocabulary import Call
from tests.fake_faults import fault_script
from tests.fakes import FakeRun, Script, adjust_job, run_command, simple_script
from tests.fault_support import (
    AGGREGATOR_PEAK_RSS_BOUND,
    FAULT,
    GOOD,
    REQUEST,
    T,
    calls_of,
    fault_root,
    requests_of,
    run_watched,
    started_by_fault,
)
from tests.support import AdjustRun, adjust_env, alive, write_driver

MB = 1024 * 1024
FLOOD_LINE_BYTES = len("stderr flood " * 78) + 1  # one line of the fault driver's stderr flood


@dataclass(frozen=True)
class Case:
    mode: str
    status: str  # the final line's status ("ok": the run succeeded)
    reason: str
    says: tuple[str, ...] = ()  # in the final message (or the --version line / stderr)
    phase: str = "adjust"  # the call the fault driver spoils
    command: str = "adjust"  # adjust, query or version
    flood: bool = False  # check the aggregator's peak memory
    big_request: bool = False  # a 1 MB control blob, more than a pipe holds
    via_config: bool = False  # choose the mode in config.yaml instead of FAULT_MODE
    roles: tuple[str, ...] = ()  # processes the fault driver starts besides itself
    kernel: bool = False  # only real processes show it: ./adjust and the real fault driver
    env: tuple[tuple[str, str], ...] = ()  # more of the fault driver's settings

    @property
    def id(self) -> str:
        where = "" if self.phase == "adjust" else f"{self.command}/{self.phase}:"
        return where + self.mode + ("(config.yaml)" if self.via_config else "")


CASES = [
    # -- silence ------------------------------------------------------------------------
    Case("hang", "failed", "timeout", ("02fault", "sent nothing for 2.0 s")),
    Case("hang-after-progress", "failed", "timeout", ("sent nothing",)),
    Case("ignore-sigterm", "failed", "timeout", ("sent nothing",)),
    Case("children-then-hang", "failed", "timeout", ("sent nothing",),
         roles=("child", "setsid-child"), kernel=True),
    Case("ok-then-linger", "failed", "timeout", ("closed stdout but did not exit",)),
    # -- descendants holding the pipes: the driver's own result counts ----------------------
    Case("grandchild-holds-stdout", "ok", "success", roles=("grandchild",), kernel=True),
    Case("setsid-grandchild-holds-stdout", "ok", "success", roles=("setsid-grandchild",),
         kernel=True),
    # -- bad output ---------------------------------------------------------------------
    Case("non-json", "failed", "bad-output", ("not JSON", "this is not JSON {")),
    Case("non-json", "failed", "bad-output", ("not JSON",), via_config=True),
    Case("non-object", "failed", "bad-output", ("not an object", "[1, 2, 3]")),
    Case("partial-line", "failed", "bad-output", ("without a newline", "succ")),
    Case("invalid-utf8", "failed", "bad-output", ("not JSON",)),
    Case("non-finite-result", "failed", "bad-output", ("printed Infinity",
                                                       "not a JSON value")),
    # valid JSON, but not valid Unicode: passed on with U+FFFD, never a crash
    Case("lone-surrogate", "failed", "fault-injected", ("failed on purpose \ufffd",)),
    # -- exit and status disagree -------------------------------------------------------
    Case("exit-nonzero-silent", "failed", "driver-failed", ("exited with code 3",)),
    Case("exit-zero-silent", "failed", "no-result", ("without printing a result",)),
    Case("ok-then-exit-1", "failed", "driver-failed", ("exited with code 1 after printing "
                                                       "status ok",)),
    Case("no-status", "failed", "no-result", ("no status",)),
    Case("failed-result", "failed", "fault-injected", ("failed on purpose",)),
    Case("rejected", "rejected", "policy", ("refused on purpose",)),
    Case("sigkill-self", "failed", "killed-by-signal", ("killed by SIGKILL",),
         kernel=True),
    # -- floods -------------------------------------------------------------------------
    Case("stderr-flood", "failed", "driver-failed",
         ("bytes of stderr dropped", "the last line of the flood"), flood=True, kernel=True),
    Case("huge-line", "failed", "bad-output", ("line longer than 1048576 bytes",),
         flood=True, kernel=True),
    # 200,000 lines: a relay that kept them would hold 100 MiB, over the bound
    Case("progress-flood", "ok", "success", flood=True, kernel=True,
         env=(("FAULT_LINES", "200000"),)),
    Case("bad-progress", "ok", "success"),
    # -- stdin ----------------------------------------------------------------------------
    Case("close-stdin", "failed", "no-request", ("closed stdin",), big_request=True,
         kernel=True),
    # -- slow but alive -------------------------------------------------------------------
    Case("slow-alive", "ok", "success"),
    Case("junk-progress-alive", "ok", "success"),
    # alive by servo's rule, with nothing to relay: kept, and servo keeps hearing us
    Case("alive-by-blank-lines", "ok", "success"),
    Case("alive-by-result-lines", "ok", "success"),
    Case("alive-by-stderr", "ok", "success"),  # its lines are relayed as signs of life
    # -- --query ------------------------------------------------------------------------
    Case("hang", "failed", "timeout", ("query: sent nothing",), "query", "query"),
    Case("non-json", "failed", "bad-output", ("not JSON",), "query", "query"),
    Case("non-object", "failed", "bad-output", ("not an object",), "query", "query"),
    Case("bad-descriptor", "failed", "bad-output", ("not a descriptor",), "query", "query"),
    Case("non-finite-descriptor", "failed", "bad-output", ("query: printed NaN",),
         "query", "query"),
    Case("non-finite-result", "failed", "bad-output", ("printed Infinity",), "query",
         "query"),
    # ... and the same during an adjust: nothing is changed
    Case("hang", "failed", "timeout", ("02fault", "nothing was changed"), "query"),
    Case("non-object", "failed", "bad-output", ("02fault", "nothing was changed"), "query"),
    Case("non-finite-descriptor", "failed", "bad-output", ("02fault", "printed NaN",
                                                           "nothing was changed"), "query"),
    # -- --version --------------------------------------------------------------------------
    Case("hang", "failed", "timeout", ("did not answer",), "info", "version"),
    Case("ignore-sigterm", "failed", "timeout", ("did not answer",), "info", "version"),
    Case("non-json", "failed", "bad-output", ("not JSON",), "info", "version"),
    Case("non-object", "failed", "bad-output", ("not an object",), "info", "version"),
    Case("non-finite-result", "failed", "bad-output", ("printed -Infinity",), "info",
         "version"),
    Case("lone-surrogate", "ok", "success", ("1.0 \ufffd",), "info", "version"),
]


KERNEL_CASES = [c for c in CASES if c.kernel]
FAKE_CASES = [c for c in CASES if not c.kernel]

#: The fault driver's call in each phase, and the command that reaches it in each.
PHASE_CALL = {"adjust": Call.ADJUST, "query": Call.QUERY, "info": Call.INFO}
COMMAND = {"adjust": Command.ADJUST, "query": Command.QUERY, "version": Command.VERSION}


def arguments(case: Case) -> tuple[str, ...]:
    return {"adjust": ("app",), "query": ("--query", "app"), "version": ("--version",)}[
        case.command]


def request_for(case: Case) -> bytes:
    request = json.loads(json.dumps(REQUEST))
    if case.big_request:
        request["control"]["userdata"]["blob"] = "x" * MB
    return json.dumps(request).encode()


async def run_case(case: Case, root: Path, tag: str) -> tuple[AdjustRun, int]:
    fault_root(root)
    pidfile = root / "fault.pids"
    fault = {"FAULT_PHASE": case.phase, "FAULT_PIDFILE": str(pidfile), **dict(case.env)}
    if case.via_config:
        (root / "config.yaml").write_text(
            f"aggregator:\n  kill_grace: 0.5\nfault:\n  mode: {case.mode}  # rehearsal\n")
    else:
        fault["FAULT_MODE"] = case.mode
    env = adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}", **fault)
    stdin = request_for(case) if case.command == "adjust" else b""
    return await run_watched(root, *arguments(case), tag=tag, env=env, stdin=stdin)


def good_drivers() -> dict[str, Script]:
    """fault_root's good drivers as fakes: 01good owns a.x, 03good owns b.y."""
    setting = {"value": 1, "min": 0, "max": 10}
    return {"01good": simple_script("a", {"x": setting}, version="a-1.0"),
            "03good": simple_script("b", {"y": setting}, version="b-1.0")}


async def run_case_on_fakes(case: Case, extra: dict[str, Script] | None = None,
                            request: dict[str, Any] | None = None,
                            stderr_mode: StderrMode = "all") -> FakeRun:
    """The case's command over fake drivers: fault_root's, with the fault driver's fake in
    the case's mode (and `extra` drivers) between them; OPTUNE_IO_TIMEOUT is T."""
    drivers = {**good_drivers(), FAULT: fault_script(case.mode, PHASE_CALL[case.phase],
                                                    io_timeout=T), **(extra or {})}
    if request is None and case.command == "adjust":
        request = json.loads(request_for(case))
    job = adjust_job(COMMAND[case.command], sorted(drivers),
                     request if case.command == "adjust" else None,
                     app="" if case.command == "version" else "app")  # as arguments() has it
    return await run_command(job, drivers, io_timeout=T, stderr_mode=stderr_mode)


def check_final(case: Case, run: AdjustRun) -> None:
    final = run.final
    if case.status == "ok":
        assert final == {"status": "ok", "reason": "success"}, run.stderr
        assert run.returncode == 0
        return
    assert run.returncode == 1, run.stderr
    assert (final["status"], final["reason"]) == (case.status, case.reason), final
    assert FAULT in final["message"]
    if not (case.command == "adjust" and case.phase == "query"):  # else: nothing was run
        assert final["failed_drivers"] == [FAULT], final
    for text in case.says:
        assert text in final["message"], final["message"][:2000]
    assert len(final["message"].encode()) <= MAX_MESSAGE_BYTES


def check_version(case: Case, run: AdjustRun) -> None:
    assert len(run.lines) == 1, run.lines
    assert run.lines[0].startswith("servo-agg "), run.lines
    if case.status == "ok":  # `says` is what the line shows for the fault driver
        assert f"(01good a-1.0, 02fault {case.says[0]}, 03good b-1.0)" in run.lines[0], \
            run.lines
        assert run.returncode == 0, run.stderr
        return
    assert "(01good a-1.0, 02fault: failing, 03good b-1.0)" in run.lines[0]
    assert run.returncode == 1
    for text in case.says:
        assert text in run.stderr, run.stderr


def refuse(token: str) -> None:
    raise AssertionError(f"{token} on stdout")


def check_strict(run: AdjustRun) -> None:
    """Strict JSON any parser takes: no NaN or Infinity, no lone surrogate, even escaped
    (run_adjust already decoded every line as UTF-8)."""
    for line in run.lines:
        value = json.loads(line, parse_constant=refuse)
        json.dumps(value, ensure_ascii=False).encode("utf-8")


def check_progress(run: AdjustRun) -> None:
    values = [p["progress"] for p in run.progress]
    assert all(isinstance(v, int | float) and 0 <= v <= 100 for v in values), values
    assert values == sorted(values), values


def check_good_drivers(case: Case, calls: Callable[[str], list[str]],
                       requests: Callable[[str], list[dict[str, Any]]]) -> None:
    """What the good drivers were asked: `calls` gives each call's arguments, `requests`
    each adjust request, of a driver by name."""
    for name in GOOD:
        made = calls(name)
        if case.command == "version":
            assert made == ["--info"], (name, made)
        elif case.command == "query":
            assert made == ["--query app"], (name, made)
        elif case.phase == "query":  # a driver could not be asked: nothing is changed
            assert requests(name) == [], name
        else:
            assert made == ["--query app", "app"], (name, made)
    if case.command == "adjust" and case.phase == "adjust":
        assert [r["application"] for r in requests("01good")] == [
            {"components": {"a": {"settings": {"x": {"value": 2}}}}}]
        assert [r["application"] for r in requests("03good")] == [
            {"components": {"b": {"settings": {"y": {"value": 7}}}}}]


def check_run(case: Case, run: AdjustRun) -> None:
    """What servo saw, whatever ran the case."""
    if case.command == "version":
        check_version(case, run)
    else:
        assert run.json_lines, run.stderr  # every line parses as a JSON object
        check_strict(run)
        check_final(case, run)
        check_progress(run)
    assert run.max_gap() < T, (run.max_gap(), run.stdout_lines)
    assert "Traceback" not in run.stderr, run.stderr  # nothing escaped (e.g. BrokenPipe)
    if case.mode in EXTRA_CHECKS and case.phase == "adjust":
        EXTRA_CHECKS[case.mode](run)


def check_nothing_left(case: Case, root: Path) -> None:
    started = started_by_fault(root / "fault.pids")
    assert any(s.role == "driver" and s.call == case.phase for s in started), started
    roles = {s.role for s in started if s.call == case.phase}
    assert set(case.roles) <= roles, started
    survivors = [s for s in started if alive(s.pid)]
    assert not survivors, f"still running after the aggregator exited: {survivors}"


def bad_progress_is_ignored_with_one_note(run: AdjustRun) -> None:
    assert run.stderr.count("ignored a progress value") == 1, run.stderr
    sent = {p["message"] for p in run.progress}
    # Its first line is relayed (a sign of life, at the current percentage); the later
    # ones come within one interval and the newest state replaces them.
    assert "02fault: odd value 'abc'" in sent, sent


def a_progress_flood_reaches_servo_coalesced(run: AdjustRun) -> None:
    """A flood of progress lines in, a few dozen out: servo is not flooded in turn."""
    assert len(run.progress) < 500, len(run.progress)


def slow_but_alive_outlives_t(run: AdjustRun) -> None:
    steps = [p for p in run.progress if "slow step" in p["message"]]
    assert len(steps) >= 4, run.progress  # a line every T-2 s for T+2 s
    assert run.elapsed > T


EXTRA_CHECKS = {
    "bad-progress": bad_progress_is_ignored_with_one_note,
    "progress-flood": a_progress_flood_reaches_servo_coalesced,
    "slow-alive": slow_but_alive_outlives_t,
}


@pytest.mark.supervision
@pytest.mark.parametrize("case", FAKE_CASES, ids=[c.id for c in FAKE_CASES])
async def test_a_faulty_driver_ends_in_one_clear_error(case: Case,
                                                        autojump_clock: MockClock) -> None:
    run = await run_case_on_fakes(case)
    check_run(case, run)
    # the fake spawner saw every process exit and reaped, with nothing left in its group
    assert any(p.spec.call is PHASE_CALL[case.phase] for p in run.calls(FAULT))

    def requests(name: str) -> list[dict[str, Any]]:
        return [json.loads(p.request) for p in run.calls(name) if p.spec.call is Call.ADJUST]

    check_good_drivers(case, lambda name: [" ".join(p.spec.args) for p in run.calls(name)],
                       requests)


@pytest.mark.e2e
@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.id for c in KERNEL_CASES])
async def test_a_faulty_real_driver_ends_in_one_clear_error(case: Case, servo_root: Path,
                                                             tag: str) -> None:
    """The cases only real processes show: what the driver started (its children, in its
    session or not, holding its pipes or not), real memory under a flood, a request
    broken off by EPIPE, a death by SIGKILL."""
    run, peak = await run_case(case, servo_root, tag)
    check_run(case, run)
    check_nothing_left(case, servo_root)
    check_good_drivers(case, lambda name: calls_of(servo_root, name),
                       lambda name: requests_of(servo_root, name))
    if case.flood:
        assert 0 < peak < AGGREGATOR_PEAK_RSS_BOUND, f"peak RSS {peak / MB:.1f} MiB"


@pytest.mark.supervision
@pytest.mark.parametrize("command", ["adjust", "query", "version"])
async def test_two_stuck_drivers_never_make_the_aggregator_silent_for_t(
        command: str, autojump_clock: MockClock) -> None:
    """Each stuck driver costs T-1 plus the kill grace; two in a row would be more than T
    without keep-alive lines between calls (adjust, query) or one shared budget with the
    --info calls run together (--version, a single line)."""
    phase = {"adjust": "adjust", "query": "query", "version": "info"}[command]
    request = json.loads(json.dumps(REQUEST))
    request["application"]["components"]["fault2"] = {"settings": {"level": {"value": 4}}}
    case = Case("ignore-sigterm", "failed", "timeout", phase=phase, command=command)
    second = fault_script("ignore-sigterm", PHASE_CALL[phase], component="fault2",
                          io_timeout=T)
    run = await run_case_on_fakes(case, {"04fault": second}, request)
    assert run.max_gap() < T, (run.max_gap(), run.stdout_lines)
    if command == "version":
        assert ("(01good a-1.0, 02fault: failing, 03good b-1.0, 04fault: failing)"
                in run.lines[0])
    else:
        assert run.final["failed_drivers"] == ["02fault", "04fault"], run.final


@pytest.mark.supervision
@pytest.mark.parametrize(("verbose", "kept"), [
    ("all", 100), ("minimal", 2), ("none", 0)])
async def test_a_failing_drivers_stderr_is_added_as_servo_would(
        verbose: StderrMode, kept: int, autojump_clock: MockClock) -> None:
    """OPTUNE_VERBOSE_STDERR: all of it (the default, test_environment.py), its first two
    lines, or none."""
    drivers = {**good_drivers(),
               FAULT: fault_script("stderr-flood", size=100 * FLOOD_LINE_BYTES)}
    run = await run_command(adjust_job(Command.ADJUST, sorted(drivers), REQUEST), drivers,
                            io_timeout=T, stderr_mode=verbose)
    message = run.final["message"]
    assert run.final["reason"] == "driver-failed"
    flood_lines = [line for line in message.splitlines() if line.startswith("stderr flood")]
    assert len(flood_lines) == kept, message[-300:]
    assert ("--- 02fault stderr ---" in message) is (kept > 0)


@pytest.mark.e2e
async def test_a_driver_that_cannot_be_started_fails_alone(servo_root: Path, tag: str) -> None:
    fault_root(servo_root)
    write_driver(servo_root, "02fault", "", shebang="#!/nonexistent/interpreter")
    run, _ = await run_watched(servo_root, "--query", "app", tag=tag,
                               env=adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}"))
    assert (run.final["status"], run.final["reason"]) == ("failed", "spawn-failed"), run.final
    assert run.final["failed_drivers"] == ["02fault"]
    assert calls_of(servo_root, "03good") == ["--query app"]
