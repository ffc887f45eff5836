"""The descriptor budget, as arithmetic: how many drivers fit, which jobs must run how
many at once, and the one refusal that names the limit (the real limits, raised and
given back, are shown end to end in test_limits_e2e.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.adjust.calls import AdjustJob, Command
from aggregator.limits import FD_MARGIN, FDS_PER_DRIVER
from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.process.fork import fitting
from aggregator.protocol.environment import ServoEnvironment
from aggregator.protocol.errors import AggregatorError
from aggregator.root.config import AggregatorConfig, MeasureConfig, parse_section
from aggregator.root.discovery import Driver
from aggregator.supervision import run as run_module
from aggregator.supervision.output import Output
from aggregator.supervision.run import Run

pytestmark = pytest.mark.unit

DRIVERS = tuple(Driver(f"d{i:02}", Path(f"/fake/d{i:02}")) for i in range(12))


@pytest.mark.parametrize(("limit", "open_now", "fit"), [
    (256, 10, 53), (1024, 10, 245), (64, 8, 6), (64, 28, 1), (64, 29, 0), (40, 10, 0),
    (10, 20, 0),
])
def test_drivers_that_fit_a_limit(limit: int, open_now: int, fit: int) -> None:
    assert fitting(limit, open_now) == fit


@given(st.integers(0, 1 << 20), st.integers(0, 1 << 20))
def test_the_drivers_that_fit_hold_no_more_than_the_limit_less_the_margin(
        limit: int, open_now: int) -> None:
    fit = fitting(limit, open_now)
    assert fit >= 0
    if fit:
        assert open_now + FD_MARGIN + fit * FDS_PER_DRIVER <= limit
    assert open_now + FD_MARGIN + (fit + 1) * FDS_PER_DRIVER > limit


@pytest.mark.parametrize(("command", "at_once"), [
    (MeasureCommand.MEASURE, 12), (MeasureCommand.DESCRIBE, 12), (MeasureCommand.DRY_RUN, 12),
    (MeasureCommand.VERSION, 0),  # --info calls take turns within --version's budget
])
def test_measure_drivers_all_run_at_once_but_for_version(command: MeasureCommand,
                                                         at_once: int) -> None:
    job = MeasureJob(command, "app", MeasureConfig(), DRIVERS)
    assert job.at_once()[0] == at_once


@pytest.mark.parametrize(("parallel", "command", "at_once"), [
    (True, Command.QUERY, 12), (True, Command.ADJUST, 12), (True, Command.DRY_RUN, 12),
    (True, Command.VERSION, 0), (False, Command.QUERY, 0), (False, Command.ADJUST, 0),
])
def test_adjust_drivers_run_at_once_only_with_parallel_queries(
        parallel: bool, command: Command, at_once: int) -> None:
    job = AdjustJob(command, "app", AggregatorConfig(parallel_queries=parallel), DRIVERS)
    assert job.at_once()[0] == at_once


@pytest.mark.parametrize(("section", "command", "at_once"), [
    ({"groups": "prefix"}, Command.ADJUST, 5),  # 0-x0..0-x4, 1-x0..1-x4, 2-x0, 2-x1
    ({"drivers": {f"d{i:02}": {"group": "g"} for i in range(5)}}, Command.ADJUST, 5),
    ({"drivers": {f"d{i:02}": {"group": "g"} for i in range(5)}}, Command.QUERY, 0),
    ({"drivers": {f"d{i:02}": {"group": "g"} for i in range(5)}}, Command.DRY_RUN, 0),
    ({"drivers": {f"d{i:02}": {"group": "g"} for i in range(5)}, "parallel_queries": True},
     Command.ADJUST, 12),
])
def test_the_largest_adjust_group_runs_at_once(section: dict[str, Any], command: Command,
                                               at_once: int) -> None:
    """A group's drivers all adjust at once: the largest group must fit the descriptors,
    judged before any driver starts (only an adjust runs a group)."""
    named = tuple(Driver(f"{i // 5}-x{i % 5}", Path(f"/fake/{i}")) for i in range(12))
    drivers = named if "groups" in section else DRIVERS
    job = AdjustJob(command, "app", parse_section(section), drivers)
    assert job.at_once()[0] == at_once
    if at_once == 5:
        assert job.at_once()[1] == "group " + ("0" if "groups" in section else "g") + \
            " adjusts its drivers at once"


def a_run() -> Run:
    return Run(servo_root=Path("/fake"), env={}, environment=ServoEnvironment(None, "all"),
               kill_grace=0.5, cancel_grace=3.0,
               output=Output(stdout_fd=-1, stderr=io.StringIO()))


def test_drivers_that_cannot_all_run_at_once_are_refused_naming_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "drivers_that_fit", lambda: 6)
    monkeypatch.setattr(run_module, "descriptor_limit", lambda: 64)
    run = a_run()
    run.require_room(6, "all at once")  # what fits is fine
    run.inherited_descriptors = (32, 64)  # as if raised from 32
    with pytest.raises(AggregatorError) as caught:
        run.require_room(12, "measure drivers describe and measure all at once")
    assert caught.value.reason == "too-many-drivers"
    assert caught.value.message == (
        "12 drivers must run at once (measure drivers describe and measure all at once), "
        "but only 6 fit in this process's file descriptors: the limit is 64 (ulimit -n, "
        "raised from 32 to the hard limit), each driver holds 4 and 32 are kept free; no "
        "driver was started (raise the hard limit, ulimit -Hn, or run fewer drivers)")
