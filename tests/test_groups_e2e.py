"""Adjust groups for real (#18): drivers that record when they start and end overlap
inside their group and never across groups, and a stuck one is killed alone (with its
process group) while its sibling finishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import adjust_env, run_adjust, write_driver

pytestmark = pytest.mark.e2e


def timed_driver(component: str, adjust: str) -> str:
    """A driver in sh owning `component`.x: its adjust appends `start <name> <time>`, runs
    `adjust` (shell), then appends `end <name> <time>` and prints ok."""
    descriptor = {"application": {"components": {component: {"settings": {
        "x": {"value": 1, "min": 0, "max": 9}}}}}}
    ok = json.dumps({"status": "ok", "reason": "success"})
    return (f'case "$1" in\n'
            f"  --query) echo '{json.dumps(descriptor)}' ;;\n"
            f'  *) cat > /dev/null; echo "start ${{0##*/}} $(date +%s.%N)" >> times\n'
            f"     {adjust}\n"
            f'     echo "end ${{0##*/}} $(date +%s.%N)" >> times; echo \'{ok}\' ;;\n'
            "esac\n")


async def test_a_group_runs_together_and_a_stuck_driver_is_killed_alone(
        servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "10-a", timed_driver("a", "sleep 0.6"), shebang="#!/bin/sh")
    write_driver(servo_root, "10-b", timed_driver("b", "sleep 0.3"), shebang="#!/bin/sh")
    # silent after its start: killed at T-1 with its child, the sleep
    write_driver(servo_root, "10-stuck", timed_driver("s", "sleep 60"), shebang="#!/bin/sh")
    write_driver(servo_root, "20-c", timed_driver("c", "sleep 0.1"), shebang="#!/bin/sh")
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
