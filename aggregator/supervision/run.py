"""One command's whole life, owned by one object: guards up, signals, head start,
supervised calls, orphan sweep, guards down.

Trio-free at import: a Run is made and its guards are up before trio is imported, so
that the calls a command declares first can start while trio loads (execute() imports
the trio side, session.py). Order of a run:

    Run(...) -> with run:  descriptor limit raised, sentinel forked, run's cgroup
                          entered, subreaper set
                 run.require_room(n)      refuse before any driver if n at once cannot fit
                 run.start_early(calls)   head start of the declared first calls (as
                                          many as descriptors allow)
                 run.execute(command)     trio: signal listener, early signals replayed,
                                          the command, stopped-run result, final sweep
               exit:       unused head starts killed and reaped, sentinel dismissed,
                           descriptor limit restored
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from aggregator.limits import FD_MARGIN, FDS_PER_DRIVER
from aggregator.process.confine import Confinement
from aggregator.process.fork import (
    UNWATCHED,
    Limits,
    can_fork_here,
    child_environment,
    descriptor_limit,
    drivers_that_fit,
    raise_descriptor_limit,
    restore_descriptor_limit,
)
from aggregator.process.headstart import Headstart
from aggregator.process.linux import become_subreaper
from aggregator.process.sentinel import Sentinel, containment, start_sentinel
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.vocabulary import Reason
from aggregator.root.config import RunBounds
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.output import Output
from aggregator.supervision.signals import EarlySignals
from aggregator.supervision.spec import CallSpec

if TYPE_CHECKING:  # the trio side, imported only by execute()
    from aggregator.supervision.session import Session
    from aggregator.supervision.spawner import Spawner

Command = Callable[["Session"], Awaitable[int]]


class Run:
    """Everything one command run owns that must be set up before and torn down after."""

    def __init__(self, *, servo_root: Path, env: Mapping[str, str],
                 environment: ServoEnvironment, kill_grace: float, cancel_grace: float,
                 output: Output, early: EarlySignals | None = None,
                 verbose: bool = False, heartbeat: bool = True,
                 live_display: bool = False, driver_order: Sequence[str] = (),
                 bounds: RunBounds | None = None,
                 facts: RunFacts | None = None) -> None:
        self.servo_root = servo_root
        #: what the run did, for its record (its id goes to every driver's environment)
        self.facts = facts if facts is not None else RunFacts()
        self.child_env = child_environment(env, servo_root, self.facts.run_id)
        self.environment = environment
        self.kill_grace = kill_grace
        self.cancel_grace = cancel_grace
        self.output = output
        self.early = early if early is not None else EarlySignals()
        self.verbose = verbose
        self.heartbeat = heartbeat  # off where stdout is not servo's (--dry-run, --check)
        self.live_display = live_display
        self.driver_order = tuple(driver_order)  # for the -v timing summary
        self.bounds = bounds or RunBounds()  # each driver's limits and deadline
        self.headstart: Headstart[CallSpec] = Headstart()
        self.sentinel: Sentinel | None = None
        self.confinement = Confinement()
        self.subreaper = False
        self.inherited_descriptors: Limits | None = None  # what we raised, to give back

    def __enter__(self) -> Run:
        if can_fork_here():  # (elsewhere drivers could not be given back the old limit)
            self.inherited_descriptors = raise_descriptor_limit()
        self.sentinel = start_sentinel()  # before any driver: it kills what they leave
        # Every driver, early or not, is started under the sentinel, with the descriptor
        # limit it would have had without us, and held to its resource limits.
        guards = self.sentinel.guards() if self.sentinel is not None else UNWATCHED
        self.confinement = Confinement.for_run(
            self.sentinel.cgroup if self.sentinel is not None else None, self.bounds.limited)
        self.headstart = Headstart(guards._replace(descriptors=self.inherited_descriptors,
                                                   confinement=self.confinement))
        self.subreaper = become_subreaper()
        if self.verbose:
            self.output.note(f"if servo-agg is SIGKILLed: {self.containment()[1]}", trace=True)
            for key in self.bounds.limited:
                self.output.note(f"limits.{key}: {self.confinement.describe(key)}",
                                 trace=True)
        return self

    def containment(self) -> tuple[bool, str]:
        """What would end this run's processes if servo-agg were SIGKILLed now."""
        return containment(self.sentinel)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.headstart.discard_all()  # an early start nobody took up (e.g. a failure)
        if self.sentinel is not None:
            self.sentinel.dismiss()
            self.sentinel = None
        restore_descriptor_limit(self.inherited_descriptors)
        self.inherited_descriptors = None

    def require_room(self, at_once: int, why: str) -> None:
        """Refuse, before any driver starts, a command that must run `at_once` drivers at
        the same time (`why`) when they cannot all hold their descriptors: they would
        start, some would fail with "too many open files", and the others would be
        canceled. The one place that budget is judged."""
        fit = drivers_that_fit()
        if at_once <= fit:
            return
        raised = ("" if self.inherited_descriptors is None else
                  f", raised from {self.inherited_descriptors[0]} to the hard limit")
        raise AggregatorError(Reason.TOO_MANY_DRIVERS, (
            f"{at_once} drivers must run at once ({why}), but only {fit} fit in this "
            f"process's file descriptors: the limit is {descriptor_limit()} (ulimit -n"
            f"{raised}), each driver holds {FDS_PER_DRIVER} and {FD_MARGIN} are kept free; "
            "no driver was started (raise the hard limit, ulimit -Hn, or run fewer drivers)"))

    def start_early(self, calls: Sequence[CallSpec]) -> None:
        """Start the calls the command declared it makes first, before trio is loaded: as
        many as the descriptors left allow (the rest start when their turn comes)."""
        if not can_fork_here() or self.early.received:
            return
        for spec in calls[:drivers_that_fit()]:
            self.headstart.start(spec, spec.argv, self.servo_root, self.child_env,
                                 self.bounds.of(spec.driver.name).limits)

    def execute(self, command: Command, spawner: Spawner | None = None) -> int:
        """Run the command under trio and supervision; its exit code. (A spawner may be
        given: tests hand fakes.)"""
        import trio  # ~90 ms: the head start runs meanwhile

        return trio.run(self.supervised, command, spawner)

    def _open_session(self, spawner: Spawner | None) -> Session:
        import sys

        import trio

        from aggregator.process.orphans import OrphanSweeper
        from aggregator.supervision.call import SupervisionPolicy, Supervisor
        from aggregator.supervision.display import Display, LiveDisplay
        from aggregator.supervision.session import Session, verbose_trace
        from aggregator.supervision.spawner import DriverSpawner

        output = self.output
        output.use_clock(trio.current_time)
        self.facts.use_clock(trio.current_time)
        sweeper = None
        if self.subreaper:
            sweeper = OrphanSweeper(spare=[self.sentinel.pid] if self.sentinel else [])
        policy = SupervisionPolicy(self.environment.io_timeout, self.kill_grace,
                                   self.cancel_grace, self.environment.io_timeout_source)
        supervisor = Supervisor(
            policy, spawner or DriverSpawner(self.servo_root, self.child_env, self.headstart,
                                             self.bounds),
            sweeper=sweeper, trace=verbose_trace(output) if self.verbose else None,
            bounds=self.bounds, facts=self.facts)
        display: Display | None = None
        if self.live_display:
            display = output.overlay = LiveDisplay(sys.stderr, line_limit=policy.line_limit)
        return Session(supervisor, output, self.environment, heartbeat=self.heartbeat,
                       display=display)

    async def supervised(self, command: Command, spawner: Spawner | None = None) -> int:
        """execute()'s trio side: the channel to servo, signals, the command, the
        stopped-run result, the final sweep and flush. (Tests await it on MockClock.)"""
        import time
        from functools import partial

        import trio

        from aggregator.protocol.errors import AggregatorError
        from aggregator.supervision.channel import ServoChannel
        from aggregator.supervision.control import listen_for_signals
        from aggregator.supervision.session import RunStopped, write_stopped

        session = self._open_session(spawner)
        control = session.control
        channel = ServoChannel(session.output, control)
        code = 1
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(channel.run)  # from now on no write waits for servo
                await nursery.start(partial(listen_for_signals, control,
                                            record=self.facts.signal))
                if session.liveness is not None:
                    nursery.start_soon(session.liveness.run)
                self.early.replay(control)
                try:
                    code = await command(session)
                except RunStopped as stop:
                    code = write_stopped(session, stop)
                except AggregatorError as err:
                    if control.stopping:
                        code = write_stopped(session, RunStopped())
                    else:
                        session.output.error(err)
                        code = 1
                finally:
                    self.headstart.discard_all()  # before the sweep: our children too
                    sweeper = session.supervisor.sweeper
                    if sweeper is not None:
                        await sweeper.sweep()
                    if self.verbose:
                        for line in session.timing_summary(self.driver_order):
                            session.output.note(f"timing: {line}", trace=True)
                    await channel.flush()  # bounded: FINAL_WRITE_SECONDS
                nursery.cancel_scope.cancel()
        finally:
            session.output.use_clock(time.monotonic)  # the output outlives trio
            self.facts.use_clock(time.monotonic)
            if control.terminated_because is not None:
                self.facts.servo_gone = control.terminated_because
        return code
