"""servo gives up on a driver that is silent for T (OPTUNE_IO_TIMEOUT); the aggregator is one
driver to servo, so its own lines must keep coming while it runs one driver call after
another, each of which stays within the per-line limit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fault_support import T
from tests.support import adjust_env, run_adjust, write_driver

pytestmark = pytest.mark.e2e

SLOW_BUT_IN_TIME = """
    import json, sys, time
    if "--info" in sys.argv:
        print(json.dumps({"version": "1", "has_cancel": False}))
        sys.exit(0)
    if "--query" in sys.argv:
        time.sleep(1.6)  # under the 2 s per line
        print(json.dumps({"application": {"components": {"web": {"settings": {
            "cpu": {"value": 1, "min": 0, "max": 4}}}}}}))
        sys.exit(0)
    json.load(sys.stdin)
    time.sleep(1.6)  # under the 2 s per line
    print(json.dumps({"progress": 50, "message": "half"}), flush=True)
    print(json.dumps({"status": "ok", "reason": "success"}))
    """


async def test_no_silence_of_t_between_the_queries_and_the_first_adjust(
        servo_root: Path, tag: str) -> None:
    """Each call answers within the line limit, but the last query and the first adjust
    together outlast servo's patience: a keep-alive line must come between them."""
    write_driver(servo_root, "01slow", SLOW_BUT_IN_TIME)
    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}}}
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(request),
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}"))
    assert run.final == {"status": "ok", "reason": "success"}, run.stderr
    assert run.max_gap() < T, (run.max_gap(), run.stdout_lines)
    percents = [p["progress"] for p in run.progress]
    assert percents == sorted(percents), percents
