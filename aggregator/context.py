"""Everything one command run needs, built once from argv, environment and config."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from .config import AggregatorConfig
from .discovery import Driver
from .environment import ServoEnvironment
from .limits import KEEPALIVE_MARGIN_SECONDS
from .output import Output
from .supervisor import CallOutcome, CallSpec, ProgressHandler, Supervision, run_call


@dataclass
class RunContext:
    servo_root: Path
    app: str
    config: AggregatorConfig
    environment: ServoEnvironment
    drivers: list[Driver]
    output: Output
    sup: Supervision

    def keepalive(self, label: str, percent: int = 0) -> None:
        """Between driver calls: one progress line if the next call could outlast servo's
        patience with our silence. Never sent while a driver is silent (that would hide it)."""
        timeout = self.environment.io_timeout
        limit = self.sup.line_limit
        if timeout is None or limit is None:
            return
        worst_next = limit + self.sup.effective_kill_grace + KEEPALIVE_MARGIN_SECONDS
        silent = time.monotonic() - self.output.last_write
        if silent + worst_next >= timeout:
            self.output.json_line({"progress": percent, "message": label})

    async def call_all(
        self, call: str, args: Sequence[str], *, parallel: bool | None = None,
        between: Callable[[Driver], None] | None = None,
    ) -> list[CallOutcome]:
        """One call of every driver, in driver order (concurrently with parallel_queries)."""
        if parallel is None:
            parallel = self.config.parallel_queries
        specs = [CallSpec(d, call, tuple(args)) for d in self.drivers]
        if not parallel:
            outcomes = []
            for spec in specs:
                outcomes.append(await run_call(self.sup, spec))
                if between is not None:
                    between(spec.driver)
            return outcomes
        slots: list[CallOutcome | None] = [None] * len(specs)

        async def one(i: int, spec: CallSpec, on_progress: ProgressHandler | None) -> None:
            slots[i] = await run_call(self.sup, spec, on_progress)

        async with trio.open_nursery() as nursery:
            for i, spec in enumerate(specs):
                nursery.start_soon(one, i, spec, None)
        return [o for o in slots if o is not None]
