"""The trio side of a Run: what a command sees while it runs (the supervisor, servo's
channel, the stop state) and the one stopped-run result."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

import trio

from aggregator.limits import (
    ANSWER_MARGIN_SECONDS,
    KEEPALIVE_MARGIN_SECONDS,
    UNTIMED_ANSWER_LIMIT_SECONDS,
)
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.result import DriverFailure, fold
from aggregator.protocol.text import clip_message, signal_name
from aggregator.protocol.vocabulary import Reason, Status
from aggregator.supervision.call import (
    LifeHandler,
    ProgressHandler,
    SupervisionPolicy,
    Supervisor,
    TraceHandler,
)
from aggregator.supervision.control import RunControl
from aggregator.supervision.display import Display, LiveDisplay
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.heartbeat import Heartbeat
from aggregator.supervision.output import Output
from aggregator.supervision.progress_relay import ProgressRelay
from aggregator.supervision.spec import CallEnd, CallOutcome, CallSpec, TimeLimit


class RunStopped(Exception):
    """Raised by a command that sees servo stopped the run: the Run writes the line.
    `running`: the drivers the stop cut short (several when they ran at once; empty:
    whichever calls were running); `failed_drivers`: those that had failed before."""

    def __init__(self, running: Sequence[str] = (), details: Sequence[str] = (),
                 failed_drivers: Sequence[str] = ()) -> None:
        super().__init__(", ".join(running) or "stopped")
        self.running = list(running)
        self.details = list(details)
        self.failed_drivers = list(failed_drivers)


def verbose_trace(output: Output) -> TraceHandler:
    """-v: every line exchanged with a driver (stamped, as every -v note, from the
    process's start: Output.stamp_notes), its control characters escaped."""
    def trace(driver: str, text: str) -> None:
        output.note(f"{driver}: {text}", trace=True)

    return trace


class Session:
    """What a command works with: the supervisor, servo's channel, the stop state."""

    def __init__(self, supervisor: Supervisor, output: Output,
                 environment: ServoEnvironment, *, heartbeat: bool = True,
                 display: Display | None = None) -> None:
        self.supervisor = supervisor
        self.output = output
        self.environment = environment
        self.heartbeat = heartbeat
        self.display = display if display is not None else Display()
        timeout = environment.io_timeout
        #: repeats a progress line while a driver lives but gives nothing to relay
        self.liveness: Heartbeat | None = None
        if heartbeat and timeout is not None:
            self.liveness = Heartbeat(output, timeout / 2, self._still_working,
                                      supervisor.control.is_running)

    def _still_working(self, driver: str) -> None:
        self.output.json_line({"progress": 0, "message": f"{driver}: working"})

    @property
    def control(self) -> RunControl:
        return self.supervisor.control

    @property
    def facts(self) -> RunFacts:
        """The run's record so far (the calls are added by the supervisor)."""
        return self.supervisor.facts

    @property
    def policy(self) -> SupervisionPolicy:
        return self.supervisor.policy

    def life_handler(self, spec: CallSpec) -> LifeHandler | None:
        """What tells the heartbeat, and a live display, that this call's driver is
        alive (None: neither listens)."""
        name = spec.driver.name
        heartbeat = None if self.liveness is None else partial(self.liveness.life, name)
        if not isinstance(self.display, LiveDisplay):
            return heartbeat
        display = self.display

        def life() -> None:
            display.alive(name)
            if heartbeat is not None:
                heartbeat()

        return life

    async def call(self, spec: CallSpec, on_progress: ProgressHandler | None = None,
                   *, deadline: float | None = None, limit: TimeLimit | None = None,
                   group: RunControl | None = None) -> CallOutcome:
        """One supervised call, its life told to the heartbeat and the display (the
        bounds and `group` as Supervisor.call takes them): every command's one call path."""
        return await self.supervisor.call(spec, on_progress, on_life=self.life_handler(spec),
                                          deadline=deadline, limit=limit, group=group)

    async def call_all(self, specs: Sequence[CallSpec], *, parallel: bool,
                       between: Callable[[CallSpec], None] | None = None,
                       deadline: float | None = None,
                       relay: ProgressRelay | None = None) -> list[CallOutcome]:
        """`deadline` is for one-line answers (--version): they get no keep-alive.
        `relay`: each driver's progress goes to servo through it (a survey before an
        adjust or a measure, under relay.relaying); None where servo's answer is one
        document (--query, --describe) or nobody posts it (--dry-run, --check)."""
        return await self.supervisor.call_all(
            specs, parallel=parallel, between=between, deadline=deadline,
            on_life=None if deadline is not None else self.life_handler,
            on_progress=None if relay is None else (
                lambda spec: partial(relay.driver_progress, spec.driver.name)))

    def keepalive(self, label: str, percent: int = 0) -> None:
        """Between driver calls: one progress line if the next call could outlast servo's
        patience with our silence. Never sent while a driver is silent (that would hide it)."""
        timeout = self.environment.io_timeout
        limit = self.policy.line_limit
        if not self.heartbeat or timeout is None or limit is None:
            return
        worst_next = limit + self.policy.effective_kill_grace + KEEPALIVE_MARGIN_SECONDS
        if self.output.silent_for() + worst_next >= timeout:
            self.output.json_line({"progress": percent, "message": label})

    def answer_deadline(self) -> float | None:
        """trio time by which a one-line answer (--version) must be out: servo's timeout
        counts from our last line (or our start) and no keep-alive can be sent meanwhile."""
        timeout = self.environment.io_timeout
        if timeout is None:  # an operator's first check must not wait forever either
            return trio.current_time() + UNTIMED_ANSWER_LIMIT_SECONDS
        return trio.current_time() + timeout - ANSWER_MARGIN_SECONDS - self.output.silent_for()

    def stop_if_stopping(self, running: str | None = None) -> None:
        if self.control.stopping:
            raise RunStopped([running] if running else [])

    def stop(self, running: Sequence[str] = (), details: Sequence[str] = (),
             failed_drivers: Sequence[str] = ()) -> NoReturn:
        raise RunStopped(running, details, failed_drivers)

    def stop_with_failures(self, running: Sequence[str], failures: Sequence[DriverFailure],
                           *, cut_short: Sequence[DriverFailure] = (),
                           before: Sequence[str] = (), extra: Sequence[str] = (),
                           failed_drivers: Sequence[str] | None = None) -> NoReturn:
        """End a stopped or canceled run (any front-end) that had failures: `before` (e.g.
        where each adjust driver stands), then the drivers that failed on their own and
        those the stop `cut_short`, folded as any failure is (a line each, `extra`, each
        one's stderr excerpt); `failed_drivers` names only those that failed on their own
        (default: `failures`' drivers; more when `extra` tells of others, as a failed
        rollback)."""
        everyone = [*failures, *cut_short]
        folded = fold(everyone, extra)["message"].split("\n") if everyone else list(extra)
        raise RunStopped(running, [*before, *folded],
                         [f.driver for f in failures] if failed_drivers is None
                         else failed_drivers)

    def timing_summary(self, driver_order: Sequence[str]) -> list[str]:
        """One line per driver: each call it had and how long it took, in call order."""
        order = {name: i for i, name in enumerate(driver_order)}
        per_driver: dict[str, list[str]] = {}
        for call in self.supervisor.facts.calls:
            if call.end is not CallEnd.NOT_STARTED:
                per_driver.setdefault(call.driver, []).append(
                    f"{call.call} {call.duration:.3f} s")
        ranked = sorted(per_driver.items(), key=lambda item: order.get(item[0], len(order)))
        return [f"{driver}: {', '.join(calls)}" for driver, calls in ranked]

    def stopped_result(self, stop: RunStopped) -> tuple[dict[str, Any], int]:
        """The one final line of a run servo stopped: aborted (terminate) or canceled."""
        control = self.control
        names = stop.running or control.interrupted
        where = (f" while {', '.join(names)} {'was' if len(names) == 1 else 'were'} running"
                 if names else "")
        if control.terminated_by is not None:
            stopped = ("" if not names else "the driver was stopped and " if len(names) == 1
                       else "the drivers were stopped and ")
            cause = (f"servo-agg stopped because {control.terminated_because}"
                     if control.terminated_because is not None else
                     f"servo-agg received {signal_name(control.terminated_by)}")
            result: dict[str, Any] = {
                "status": Status.ABORTED, "reason": Reason.TERMINATED,
                "message": f"{cause}{where}; {stopped}no further driver was started"}
            code = 128 + control.terminated_by
        else:
            result = {"status": Status.CANCELED, "reason": Reason.CANCELED,
                      "message": f"canceled by servo{where}; no further driver was started"}
            code = 1
        if stop.details:
            result["message"] = clip_message(result["message"] + "\n"
                                             + "\n".join(stop.details))
        if stop.failed_drivers:
            result["failed_drivers"] = stop.failed_drivers
        return result, code


def write_stopped(session: Session, stop: RunStopped) -> int:
    """The stopped run's final line, and the exit code that goes with it."""
    result, code = session.stopped_result(stop)
    session.output.failure(result, result["status"], result["message"].splitlines()[0])
    return code
