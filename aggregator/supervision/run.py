"""Everything one command run needs, built once from argv, environment and config."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import trio

from aggregator.process.headstart import Headstart
from aggregator.process.linux import become_subreaper
from aggregator.process.orphans import OrphanSweeper
from aggregator.process.sentinel import Sentinel, start_sentinel
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.limits import ANSWER_MARGIN_SECONDS, KEEPALIVE_MARGIN_SECONDS
from aggregator.root.config import AggregatorConfig
from aggregator.root.discovery import Driver
from aggregator.supervision.call import (
    CallOutcome,
    CallSpec,
    ProgressHandler,
    Supervision,
    TraceHandler,
    run_call,
)
from aggregator.supervision.display import Display
from aggregator.supervision.output import Output


def verbose_trace(output: Output) -> TraceHandler:
    """-v: every line exchanged with a driver, stamped with seconds since the start."""
    started = time.monotonic()

    def trace(driver: str, text: str) -> None:
        output.note(f"[{time.monotonic() - started:7.3f}] {driver}: {text}")

    return trace


def new_supervision(servo_root: Path, env: Mapping[str, str], io_timeout: float | None,
                    config: AggregatorConfig, trace: TraceHandler | None, *,
                    sentinel: Sentinel | Literal["start"] | None = "start",
                    subreaper: bool | None = None,
                    headstart: Headstart | None = None) -> Supervision:
    """How this run's driver calls are supervised. Unless the launch already did, this
    forks the sentinel and makes this process a child subreaper."""
    if sentinel == "start":
        sentinel = start_sentinel()  # kills what drivers leave if we are SIGKILLed
    if subreaper is None:
        subreaper = become_subreaper()
    spare = [sentinel.pid] if sentinel else []
    sweeper = OrphanSweeper(spare=spare) if subreaper else None
    return Supervision(
        servo_root=servo_root, env=dict(env), io_timeout=io_timeout,
        kill_grace=config.kill_grace, cancel_grace=config.cancel_grace,
        sweeper=sweeper, trace=trace, sentinel=sentinel, headstart=headstart,
    )


@dataclass
class RunContext:
    servo_root: Path
    app: str
    config: AggregatorConfig
    environment: ServoEnvironment
    drivers: list[Driver]
    output: Output
    sup: Supervision
    heartbeat: bool = True  # off where stdout is not servo's (--dry-run, --check)
    verbose: bool = False  # -v: per-driver timing at the end
    display: Display = field(default_factory=Display)  # live per-driver view on a terminal
    timings: list[tuple[str, str, float]] = field(default_factory=list)  # driver, call, s

    def keepalive(self, label: str, percent: int = 0) -> None:
        """Between driver calls: one progress line if the next call could outlast servo's
        patience with our silence. Never sent while a driver is silent (that would hide it)."""
        timeout = self.environment.io_timeout
        limit = self.sup.line_limit
        if not self.heartbeat or timeout is None or limit is None:
            return
        worst_next = limit + self.sup.effective_kill_grace + KEEPALIVE_MARGIN_SECONDS
        silent = time.monotonic() - self.output.last_write
        if silent + worst_next >= timeout:
            self.output.json_line({"progress": percent, "message": label})

    async def call(self, spec: CallSpec,
                   on_progress: ProgressHandler | None = None) -> CallOutcome:
        """One supervised driver call, its time remembered for the -v summary."""
        outcome = await run_call(self.sup, spec, on_progress)
        self.timings.append((spec.driver.name, spec.call, outcome.elapsed))
        return outcome

    def timing_summary(self) -> list[str]:
        """One line per driver: each call it had and how long it took, in call order."""
        order = {d.name: i for i, d in enumerate(self.drivers)}
        per_driver: dict[str, list[str]] = {}
        for driver, call, elapsed in self.timings:
            per_driver.setdefault(driver, []).append(f"{call} {elapsed:.3f} s")
        ranked = sorted(per_driver.items(), key=lambda item: order.get(item[0], len(order)))
        return [f"{driver}: {', '.join(calls)}" for driver, calls in ranked]

    def answer_deadline(self) -> float | None:
        """trio time by which a one-line answer (--version) must be out: servo's timeout
        counts from our last line (or our start) and no keep-alive can be sent meanwhile."""
        timeout = self.environment.io_timeout
        if timeout is None:
            return None
        left = self.output.last_write + timeout - ANSWER_MARGIN_SECONDS - time.monotonic()
        return trio.current_time() + left

    async def call_all(
        self, call: str, args: Sequence[str], *, parallel: bool | None = None,
        between: Callable[[Driver], None] | None = None, deadline: float | None = None,
    ) -> list[CallOutcome]:
        """One call of every driver, in driver order (concurrently with parallel_queries)."""
        if parallel is None:
            parallel = self.config.parallel_queries
        specs = [CallSpec(d, call, tuple(args), deadline=deadline) for d in self.drivers]
        if not parallel:
            outcomes = []
            for spec in specs:
                outcomes.append(await self.call(spec))
                if between is not None:
                    between(spec.driver)
            return outcomes
        slots: list[CallOutcome | None] = [None] * len(specs)

        async def one(i: int, spec: CallSpec) -> None:
            slots[i] = await self.call(spec)

        async with trio.open_nursery() as nursery:
            for i, spec in enumerate(specs):
                nursery.start_soon(one, i, spec)
        return [o for o in slots if o is not None]
