"""The policies of the `aggregator:` section: on_failure, rollback, weights, enabled and
parallel_queries, end to end through ./adjust."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fault_support import T
from tests.support import adjust_env, run_adjust, simple_driver, write_driver

pytestmark = pytest.mark.e2e

CALLS = "calls.log"


def recording_driver(component: str, settings: dict[str, Any], *,
                     fail_on_adjust: int | None = None) -> str:
    """A driver that appends `<file name> <request>` to calls.log for each adjust, and
    fails its `fail_on_adjust`-th adjust call (1 = the adjust, 2 = a rollback)."""
    descriptor = {"application": {"components": {component: {"settings": settings}}}}
    return f"""
        import json, os, sys
        me = os.path.basename(sys.argv[0])
        if "--info" in sys.argv:
            print(json.dumps({{"version": "1", "has_cancel": False}}))
            sys.exit(0)
        if "--query" in sys.argv:
            print(json.dumps({descriptor!r}))
            sys.exit(0)
        request = json.load(sys.stdin)
        with open({CALLS!r}, "a") as log:
            log.write(me + " " + json.dumps(request) + "\\n")
        with open({CALLS!r}) as log:
            mine = sum(1 for line in log if line.split(" ", 1)[0] == me)
        print(json.dumps({{"progress": 50, "message": "halfway"}}), flush=True)
        if mine == {fail_on_adjust!r}:
            print("this driver's own complaint", file=sys.stderr)
            print(json.dumps({{"status": "failed", "reason": "boom",
                               "message": me + " broke on call " + str(mine)}}))
            sys.exit(1)
        print(json.dumps({{"status": "ok", "reason": "success"}}))
        """


def calls(root: Path) -> list[tuple[str, dict[str, Any]]]:
    path = root / CALLS
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        name, _, request = line.partition(" ")
        found.append((name, json.loads(request)["application"]["components"]))
    return found


def three_drivers(root: Path, *, failing: str = "02b", fail_on_adjust: int = 1) -> None:
    for name, component in (("01a", "a"), ("02b", "b"), ("03c", "c")):
        write_driver(root, name, recording_driver(
            component, {"x": {"value": 1, "min": 0, "max": 10},
                        "y": {"value": 5, "min": 0, "max": 10}},
            fail_on_adjust=fail_on_adjust if name == failing else None))


def request_all(value: int = 2) -> str:
    return json.dumps({"application": {"components": {
        name: {"settings": {"x": {"value": value}}} for name in ("a", "b", "c")}},
        "control": {"userdata": {"run": 7}}})


def policy(root: Path, text: str) -> None:
    (root / "config.yaml").write_text("aggregator:\n" + text)


def assert_monotone(progress: list[dict[str, Any]]) -> None:
    values = [p["progress"] for p in progress]
    assert values == sorted(values), values


async def test_continue_runs_later_drivers_after_a_failure(servo_root: Path,
                                                           tag: str) -> None:
    three_drivers(servo_root)
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request_all())
    assert run.returncode == 1
    assert [name for name, _ in calls(servo_root)] == ["01a", "02b", "03c"]
    assert run.final["status"] == "failed"
    assert run.final["failed_drivers"] == ["02b"]
    assert "02b broke on call 1" in run.final["message"]
    assert "not started" not in run.final["message"]
    assert_monotone(run.progress)


async def test_stop_starts_no_driver_after_a_failure(servo_root: Path, tag: str) -> None:
    three_drivers(servo_root)
    policy(servo_root, "  on_failure: stop\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request_all())
    assert run.returncode == 1
    assert [name for name, _ in calls(servo_root)] == ["01a", "02b"]
    assert run.final["failed_drivers"] == ["02b"]
    assert "not started (on_failure: stop): 03c" in run.final["message"]
    assert "rollback" not in run.final["message"]  # stop does not undo 01a
    assert_monotone(run.progress)


async def test_rollback_restores_completed_drivers_newest_first(servo_root: Path,
                                                                tag: str) -> None:
    three_drivers(servo_root, failing="03c")
    policy(servo_root, "  on_failure: rollback\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request_all())
    assert run.returncode == 1
    assert run.final["status"] == "failed"
    assert run.final["failed_drivers"] == ["03c"]
    seen = calls(servo_root)
    assert [name for name, _ in seen] == ["01a", "02b", "03c", "02b", "01a"]
    # Each completed driver is put back to what its query reported, and only the setting
    # this run changed (x; y was not requested, so it is not touched).
    assert seen[3][1] == {"b": {"settings": {"x": {"value": 1}}}}
    assert seen[4][1] == {"a": {"settings": {"x": {"value": 1}}}}
    raw = (servo_root / CALLS).read_text().splitlines()
    assert json.loads(raw[3].partition(" ")[2])["control"] == {"userdata": {"run": 7}}
    message = run.final["message"]
    assert "03c broke on call 1" in message
    assert "rollback of 02b: ok, restored b.x=1" in message
    assert "rollback of 01a: ok, restored a.x=1" in message
    assert message.index("rollback of 02b") < message.index("rollback of 01a")
    assert "rollback-failed" not in run.final["reason"]
    assert_monotone(run.progress)  # held during the rollback (the newest state is shown)
    assert any(p["message"].startswith("rollback: ") for p in run.progress)


async def test_rollback_that_also_fails_is_reported(servo_root: Path, tag: str) -> None:
    """01a's second adjust call (its rollback) fails; 02b's rollback still runs."""
    for name, component in (("01a", "a"), ("02b", "b")):
        write_driver(servo_root, name, recording_driver(
            component, {"x": {"value": 1, "min": 0, "max": 10}},
            fail_on_adjust=2 if name == "01a" else None))
    write_driver(servo_root, "03c", recording_driver(
        "c", {"x": {"value": 1, "min": 0, "max": 10}}, fail_on_adjust=1))
    policy(servo_root, "  on_failure: rollback\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request_all(3))
    assert run.returncode == 1
    assert [name for name, _ in calls(servo_root)] == ["01a", "02b", "03c", "02b", "01a"]
    final = run.final
    assert final["status"] == "failed"
    assert final["failed_drivers"] == ["03c"]  # the failure that started it all
    assert "rollback-failed" in final["reason"]
    assert "boom" in final["reason"]
    assert "rollback of 02b: ok, restored b.x=1" in final["message"]
    assert "rollback of 01a: FAILED" in final["message"]
    assert "01a broke on call 2" in final["message"]
    assert "a.x=1 may not be restored" in final["message"]
    rollback_stderr = final["message"].split("--- 01a rollback stderr ---\n")[1]
    assert rollback_stderr.startswith("this driver's own complaint")
    assert_monotone(run.progress)


async def test_rollback_with_nothing_completed_says_so(servo_root: Path, tag: str) -> None:
    three_drivers(servo_root, failing="01a")
    policy(servo_root, "  on_failure: rollback\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request_all())
    assert run.returncode == 1
    assert [name for name, _ in calls(servo_root)] == ["01a"]
    assert "nothing to roll back" in run.final["message"]
    assert "not started (on_failure: rollback): 02b, 03c" in run.final["message"]


async def test_no_failure_no_rollback(servo_root: Path, tag: str) -> None:
    three_drivers(servo_root, failing="none")
    policy(servo_root, "  on_failure: rollback\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=request_all())
    assert run.returncode == 0, run.stderr
    assert run.final == {"status": "ok", "reason": "success"}
    assert [name for name, _ in calls(servo_root)] == ["01a", "02b", "03c"]


async def test_weights_replace_equal_shares(servo_root: Path, tag: str) -> None:
    for name, component in (("01a", "a"), ("02b", "b")):
        write_driver(servo_root, name, recording_driver(
            component, {"x": {"value": 1, "min": 0, "max": 10}}))
    policy(servo_root, "  drivers:\n    01a: {weight: 3}\n")  # 02b keeps weight 1
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(
        {"application": {"components": {"a": {"settings": {"x": {"value": 2}}},
                                        "b": {"settings": {"x": {"value": 2}}}}}}))
    assert run.returncode == 0, run.stderr
    by_message = {p["message"]: p["progress"] for p in run.progress}
    assert by_message["01a: halfway"] == 37  # half of 3/4
    assert by_message["01a: done"] == 75
    assert by_message["02b: halfway"] == 87  # 3/4 + half of 1/4
    assert by_message["02b: done"] == 100


async def test_disabled_driver_is_as_if_absent(servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "01a", recording_driver("a", {"x": {"value": 1}}))
    write_driver(servo_root, "02b", recording_driver("b", {"x": {"value": 1}}))
    policy(servo_root, "  drivers:\n    02b: {enabled: false}\n")
    query = await run_adjust(servo_root, "--query", "app", tag=tag)
    assert query.returncode == 0, query.stderr
    assert set(query.final["application"]["components"]) == {"a"}
    version = await run_adjust(servo_root, "--version", tag=tag)
    assert version.returncode == 0
    assert version.lines[-1].endswith("(01a 1)")  # only 01a's version
    info = await run_adjust(servo_root, "--info", tag=tag)
    assert "01a" in info.final["version"] and "02b" not in info.final["version"]

    both = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(
        {"application": {"components": {"a": {"settings": {"x": {"value": 2}}},
                                        "b": {"settings": {"x": {"value": 2}}}}}}))
    assert both.returncode == 1
    assert both.final["reason"] == "unknown-settings"
    assert "b.x" in both.final["message"]
    assert calls(servo_root) == []

    only_a = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(
        {"application": {"components": {"a": {"settings": {"x": {"value": 2}}}}}}))
    assert only_a.returncode == 0, only_a.stderr
    assert [name for name, _ in calls(servo_root)] == ["01a"]
    assert [p["progress"] for p in only_a.progress][-1] == 100  # 01a is the whole run


HANGING_QUERY = """
    import json, os, sys, time
    if "--info" in sys.argv:
        print(json.dumps({"version": "hang", "has_cancel": False}))
        sys.exit(0)
    # Waits until both other drivers have answered their --query, records that it saw
    # them while still running, then hangs (it is killed by the per-line timeout).
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        if os.path.exists("02b.answered") and os.path.exists("03c.answered"):
            open("hang.saw-others", "w").close()
            break
        time.sleep(0.02)
    time.sleep(3600)
"""


def answering_driver(name: str, component: str) -> str:
    descriptor = {"application": {"components": {component: {"settings": {
        "x": {"value": 1, "min": 0, "max": 9}}}}}}
    return f"""
        import json, sys
        if "--info" in sys.argv:
            print(json.dumps({{"version": {name!r}, "has_cancel": False}}))
            sys.exit(0)
        open({name + ".answered"!r}, "w").close()
        print(json.dumps({descriptor!r}))
        """


async def test_parallel_query_kills_a_hung_driver_while_the_others_answer(
        servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "01hang", HANGING_QUERY)
    write_driver(servo_root, "02b", answering_driver("02b", "b"))
    write_driver(servo_root, "03c", answering_driver("03c", "c"))
    policy(servo_root, "  parallel_queries: true\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag,
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT="3"))
    # The others answered while the hung driver was still alive, in the same run.
    assert (servo_root / "hang.saw-others").exists()
    assert run.returncode == 1
    assert run.final["failed_drivers"] == ["01hang"]
    assert run.final["reason"] == "timeout"
    assert "01hang" in run.final["message"]
    assert "02b" not in run.final["message"] and "03c" not in run.final["message"]


async def test_a_parallel_query_ending_does_not_cut_a_siblings_kill_grace(
        servo_root: Path, tag: str) -> None:
    """Two stuck drivers time out together: the one that dies at once on SIGTERM must not
    sweep the other away (as an orphan) while it uses its grace to clean up."""
    write_driver(servo_root, "01cleans", """
        import pathlib, signal, sys, time
        def on_term(*_):
            time.sleep(0.05)
            pathlib.Path("cleaned").touch()
            sys.exit(1)
        signal.signal(signal.SIGTERM, on_term)
        time.sleep(60)
        """)
    write_driver(servo_root, "02dies", "import time\ntime.sleep(60)\n")
    (servo_root / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag,
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}"))
    assert run.final["failed_drivers"] == ["01cleans", "02dies"], run.final
    assert (servo_root / "cleaned").exists(), "01cleans was killed before its grace was over"


async def test_sequential_query_asks_one_driver_at_a_time(servo_root: Path,
                                                          tag: str) -> None:
    """The default: the hung first driver is killed before the others are started."""
    write_driver(servo_root, "01hang", HANGING_QUERY)
    write_driver(servo_root, "02b", answering_driver("02b", "b"))
    write_driver(servo_root, "03c", answering_driver("03c", "c"))
    run = await run_adjust(servo_root, "--query", "app", tag=tag,
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT="3"))
    assert not (servo_root / "hang.saw-others").exists()
    assert (servo_root / "02b.answered").exists() and (servo_root / "03c.answered").exists()
    assert run.returncode == 1
    assert run.final["failed_drivers"] == ["01hang"]


async def test_parallel_query_merges_in_driver_order(servo_root: Path, tag: str) -> None:
    for name, component in (("01a", "a"), ("02b", "b"), ("03c", "c")):
        write_driver(servo_root, name, simple_driver(component, {"x": {"value": 1}}))
    policy(servo_root, "  parallel_queries: true\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag)
    assert run.returncode == 0, run.stderr
    assert list(run.final["application"]["components"]) == ["a", "b", "c"]
