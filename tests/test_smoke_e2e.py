"""End to end: ./adjust run as servo runs it, against drivers written here."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_adjust, simple_driver, write_driver


async def test_query_merges_and_adjust_splits(servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "01web", simple_driver(
        "web", {"cpu": {"value": 1, "min": 0.5, "max": 4}}, log="web.log"))
    write_driver(servo_root, "02cache", simple_driver(
        "cache", {"size": {"value": 64, "min": 16, "max": 256}}, log="cache.log"))
    query = await run_adjust(servo_root, "--query", "app", tag=tag)
    assert query.returncode == 0, query.stderr
    components = query.final["application"]["components"]
    assert set(components) == {"web", "cache"}

    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}},
               "control": {"userdata": {"x": 1}}}
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(request))
    assert run.returncode == 0, run.stderr
    assert run.final == {"status": "ok", "reason": "success"}
    sent = json.loads((servo_root / "web.log").read_text())
    assert sent["application"]["components"] == {"web": {"settings": {"cpu": {"value": 2}}}}
    assert sent["control"] == {"userdata": {"x": 1}}
    assert not (servo_root / "cache.log").exists()  # nothing to change: not run
