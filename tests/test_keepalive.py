"""servo gives up on a driver that is silent for T (OPTUNE_IO_TIMEOUT); the aggregator is one
driver to servo, so its own lines must keep coming while it runs one driver call after
another, each of which stays within the per-line limit. The real adjust over a fake
driver, on trio's MockClock."""

from __future__ import annotations

import json

import pytest
import trio
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.protocol.vocabulary import Call
from tests.fakes import FakeMember, adjust_job, run_command

pytestmark = pytest.mark.supervision

T = 3.0  # OPTUNE_IO_TIMEOUT: 2 s per line


async def slow_but_in_time(p: FakeMember) -> None:
    """Each answer after 1.6 s: under the 2 s per line."""
    if p.proc.spec.call is Call.QUERY:
        await trio.sleep(1.6)
        await p.say({"application": {"components": {"web": {"settings": {
            "cpu": {"value": 1, "min": 0, "max": 4}}}}}})
        return
    json.loads(await p.read_request())
    await trio.sleep(1.6)
    await p.say({"progress": 50, "message": "half"})
    await p.say({"status": "ok", "reason": "success"})


async def test_no_silence_of_t_between_the_queries_and_the_first_adjust(
        autojump_clock: MockClock) -> None:
    """Each call answers within the line limit, but the last query and the first adjust
    together outlast servo's patience: a keep-alive line must come between them."""
    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}}}
    drivers = {"01slow": slow_but_in_time}
    run = await run_command(adjust_job(Command.ADJUST, list(drivers), request), drivers,
                            io_timeout=T)
    assert run.final == {"status": "ok", "reason": "success"}, run.stderr
    assert run.max_gap() < T, (run.max_gap(), run.stdout_lines)
    # between them: as the query answers (the heartbeat's would come only 0.25 s later)
    assert run.stdout_lines[0][0] == pytest.approx(1.6), run.stdout_lines
    percents = [p["progress"] for p in run.progress]
    assert percents == sorted(percents), percents
