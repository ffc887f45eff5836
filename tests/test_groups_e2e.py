"""Adjust groups for real (#18): drivers that record when they start and end overlap
inside their group and never across groups, and a stuck one is killed alone (with its
process group) while its sibling finishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import adjust_env, run_adjust, simple_driver, write_driver

pytestmark = pytest.mark.e2e


def timed(adjust: str) -> str:
    """simple_driver's `adjust` that appends `start <name> <time>` to times, runs `adjust`
    (sh), then appends `end <name> <time>` and says ok."""
    ok = json.dumps({"status": "ok", "reason": "success"})
    return (f'echo "start ${{0##*/}} $(date +%s.%N)" >> times\n{adjust}\n'
            f'echo "end ${{0##*/}} $(date +%s.%N)" >> times; echo \'{ok}\'')


#: The settings of each driver below (the request sets x to 5).
SETTINGS = {"x": {"value": 1, "min": 0, "max": 9}}


async def test_a_group_runs_together_and_a_stuck_driver_is_killed_alone(
        servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "10-a", simple_driver("a", SETTINGS, adjust=timed("sleep 0.6")))
    write_driver(servo_root, "10-b", simple_driver("b", SETTINGS, adjust=timed("sleep 0.3")))
    # silent after its start: killed at T-1 with its child, the sleep
    write_driver(servo_root, "10-stuck", simple_driver("s", SETTINGS, adjust=timed("sleep 60")))
    write_driver(servo_root, "20-c", simple_driver("c", SETTINGS, adjust=timed("sleep 0.1")))
    (servo_root / "config.yaml").write_text("aggregator:\n  groups: prefix\n")
    request = {"application": {"components": {name: {"settings": {"x": {"value": 5}}}
                                              for name in ("a", "b", "s", "c")}}}
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(request),
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT="2"))
    assert run.final["failed_drivers"] == ["10-stuck"], run.final
    assert run.final["reason"] == "timeout"
    times: dict[tuple[str, str], float] = {}
    for line in (servo_root / "times").read_text().splitlines():
        what, name, when = line.split()
        times[(what, name)] = float(when)
    assert ("end", "10-stuck") not in times  # killed, its sleep too (the tag sees to it)
    a, b, c = ((times[("start", n)], times[("end", n)]) for n in ("10-a", "10-b", "20-c"))
    stuck = times[("start", "10-stuck")]
    assert a[0] < b[1] and b[0] < a[1]  # together inside the group
    assert c[0] > max(a[1], b[1])  # never across groups ...
    # ... nor before the stuck one was killed, 1 s (T-1) after its call began
    assert c[0] - stuck >= 0.5
