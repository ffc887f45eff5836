"""The head start's contract, held by the job itself: the calls a command declares it
makes first (AdjustJob.opening_calls) are the calls it does make first, and each runs
once: its call takes the head start's process over (every command, in a Run in the
test's process; through ./adjust: test_headstart.py)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from aggregator.adjust.calls import AdjustJob, Command
from aggregator.adjust.commands import run_job
from aggregator.process.fork import can_fork_here
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.request import parse_request
from aggregator.root.config import AggregatorConfig
from aggregator.root.discovery import find_drivers
from aggregator.supervision.output import Output
from aggregator.supervision.run import Run
from aggregator.supervision.session import Session
from aggregator.supervision.spawner import DriverSpawner, SupervisedProcess
from aggregator.supervision.spec import CallSpec
from tests.support import TAG_VAR, simple_driver, write_driver

pytestmark = pytest.mark.e2e

REQUEST = {"application": {"components": {"b": {"settings": {"x": {"value": 2}}}}}}


class RecordingSpawner:
    """The real spawner, remembering every call it was asked to start, in order."""

    def __init__(self, inner: DriverSpawner) -> None:
        self.inner = inner
        self.started: list[CallSpec] = []
        self.early: list[CallSpec] = []  # started calls that a head start already ran

    def is_running(self, spec: CallSpec) -> bool:
        return self.inner.is_running(spec)

    @property
    def early_pids(self) -> frozenset[int]:
        return self.inner.early_pids

    async def start(self, spec: CallSpec) -> SupervisedProcess:
        self.started.append(spec)
        if self.inner.is_running(spec):
            self.early.append(spec)
        return await self.inner.start(spec)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("command", list(Command))
def test_the_declared_first_calls_are_the_first_calls_made(
        command: Command, parallel: bool, servo_root: Path, tag: str, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):  # each start of a driver leaves a line in calls.log
        write_driver(servo_root, f"0{name}", simple_driver(
            name, {"x": {"value": 1}}, prelude='echo "${0##*/} $*" >> calls.log'))
    config = AggregatorConfig(parallel_queries=parallel)
    request = parse_request(json.dumps(REQUEST).encode()) \
        if command in (Command.ADJUST, Command.DRY_RUN) else None
    job = AdjustJob(command, "app", config,
                    tuple(find_drivers(servo_root / "adjust.d")), request)
    declared = job.opening_calls()
    run = Run(servo_root=servo_root, env={**os.environ, TAG_VAR: tag},
              environment=ServoEnvironment(None, "all"), kill_grace=0.5, cancel_grace=1.0,
              output=Output())
    with run:
        run.start_early(declared)
        spawner = RecordingSpawner(DriverSpawner(servo_root, run.child_env, run.headstart))

        async def command_run(session: Session) -> int:
            return await run_job(job, session, servo_root)

        code = run.execute(command_run, spawner)
    assert code == 0, capfd.readouterr()
    if can_fork_here():  # where head starts exist, each was taken over by its own call
        assert Counter(spawner.early) == Counter(declared)
    first = spawner.started[:len(declared)]
    assert Counter(first) == Counter(declared)  # same calls; parallel ones in any order
    # and each call ran once: the head start's process did it, none was started again
    ran = (servo_root / "calls.log").read_text().splitlines()
    assert Counter(ran) == Counter(" ".join((s.driver.name, *s.args)) for s in spawner.started)
    if command is Command.DRY_RUN:
        assert declared == []  # a rehearsal starts nothing before it is under trio
    else:
        assert declared, "every command that runs a driver declares its first call"
