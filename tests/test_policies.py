"""The policies of the `aggregator:` section: on_failure, rollback, weights, enabled and
parallel_queries. What each decides runs the real commands over fake drivers on trio's
MockClock; through ./adjust, a rollback read from config.yaml, a disabled driver (which
the launch leaves out), and what only real processes show (a sibling's kill grace)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.journal.record import build
from aggregator.journal.show import failed_drivers
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig, DriverPolicy
from aggregator.root.front_end import FrontEnd
from tests.fakes import FakeMember, FakeRun, Script, adjust_job, run_command, simple_script
from tests.fault_support import T
from tests.support import adjust_env, launch_before_trio, run_adjust, write_driver

CALLS = "calls.log"


def recording_driver(component: str, settings: dict[str, Any], *,
                     fail_on_adjust: int | None = None) -> str:
    """A driver that appends `<file name> <request>` to calls.log for each adjust, and
    fails its `fail_on_adjust`-th adjust call (1 = the adjust, 2 = a rollback). In sh
    (what it says is fixed when it is written), for a tenth of Python's start."""
    descriptor = {"application": {"components": {component: {"settings": settings}}}}
    return f"""
        #!/bin/sh
        me=${{0##*/}}
        case "$1" in
            --info) echo '{{"version": "1", "has_cancel": false}}'; exit 0;;
            --query) printf '%s\\n' {shlex.quote(json.dumps(descriptor))}; exit 0;;
        esac
        request=$(cat)
        printf '%s %s\\n' "$me" "$request" >> {CALLS}
        mine=$(grep -c "^$me " {CALLS})
        echo '{{"progress": 50, "message": "halfway"}}'
        if [ "$mine" = "{fail_on_adjust}" ]; then
            echo "this driver's own complaint" >&2
            printf '{{"status": "failed", "reason": "boom", "message": "%s %s"}}\\n' \\
                "$me" "broke on call $mine"
            exit 1
        fi
        echo '{{"status": "ok", "reason": "success"}}'
        """


def recording_script(name: str, component: str, settings: dict[str, Any], *,
                     fail_on_adjust: int | None = None) -> Script:
    """recording_driver as a fake: what it was asked is in its FakeProcesses."""
    descriptor = {"application": {"components": {component: {"settings": settings}}}}
    adjusts = 0

    async def script(p: FakeMember) -> int:
        nonlocal adjusts
        call = p.proc.spec.call
        if call is Call.INFO:
            await p.say({"version": "1", "has_cancel": False})
            return 0
        if call is Call.QUERY:
            await p.say(descriptor)
            return 0
        json.loads(await p.read_request())
        adjusts += 1
        await p.say({"progress": 50, "message": "halfway"})
        if adjusts == fail_on_adjust:
            await p.complain("this driver's own complaint\n")
            await p.say({"status": "failed", "reason": "boom",
                         "message": f"{name} broke on call {adjusts}"})
            return 1
        await p.say({"status": "ok", "reason": "success"})
        return 0

    return script


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


def changes(run: FakeRun) -> list[tuple[str, dict[str, Any]]]:
    """Each adjust and rollback the drivers received, in order: (driver, components)."""
    assert run.spawner is not None
    return [(p.spec.driver.name, json.loads(p.request)["application"]["components"])
            for p in run.spawner.started if p.spec.call in (Call.ADJUST, Call.ROLLBACK)]


SETTINGS = {"x": {"value": 1, "min": 0, "max": 10}, "y": {"value": 5, "min": 0, "max": 10}}


def three_scripts(*, failing: str = "02b", fail_on_adjust: int = 1) -> dict[str, Script]:
    return {name: recording_script(name, component, SETTINGS, fail_on_adjust=fail_on_adjust
                                   if name == failing else None)
            for name, component in (("01a", "a"), ("02b", "b"), ("03c", "c"))}


async def adjust_all(drivers: dict[str, Script], config: AggregatorConfig | None = None,
                     value: int = 2) -> FakeRun:
    body = json.loads(request_all(value))
    return await run_command(adjust_job(Command.ADJUST, sorted(drivers), body, config=config),
                             drivers)


@pytest.mark.supervision
async def test_continue_runs_later_drivers_after_a_failure(autojump_clock: MockClock) -> None:
    run = await adjust_all(three_scripts())
    assert run.returncode == 1
    assert [name for name, _ in changes(run)] == ["01a", "02b", "03c"]
    assert run.final["status"] == "failed"
    assert run.final["failed_drivers"] == ["02b"]
    assert "02b broke on call 1" in run.final["message"]
    assert "not started" not in run.final["message"]
    assert_monotone(run.progress)


@pytest.mark.supervision
async def test_stop_starts_no_driver_after_a_failure(autojump_clock: MockClock) -> None:
    run = await adjust_all(three_scripts(), AggregatorConfig(on_failure="stop"))
    assert run.returncode == 1
    assert [name for name, _ in changes(run)] == ["01a", "02b"]
    assert run.final["failed_drivers"] == ["02b"]
    assert "not started (on_failure: stop): 03c" in run.final["message"]
    assert "rollback" not in run.final["message"]  # stop does not undo 01a
    assert_monotone(run.progress)


@pytest.mark.e2e
async def test_rollback_restores_completed_drivers_newest_first(servo_root: Path,
                                                                tag: str) -> None:
    """Through ./adjust: the policy as config.yaml gives it, each rollback as a driver gets
    it (a call of its own, the run's control)."""
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


ROLLBACK = AggregatorConfig(on_failure="rollback")


@pytest.mark.supervision
async def test_rollback_that_also_fails_is_reported(autojump_clock: MockClock) -> None:
    """01a's second adjust call (its rollback) fails; 02b's rollback still runs."""
    setting = {"x": {"value": 1, "min": 0, "max": 10}}
    drivers = {"01a": recording_script("01a", "a", setting, fail_on_adjust=2),
               "02b": recording_script("02b", "b", setting),
               "03c": recording_script("03c", "c", setting, fail_on_adjust=1)}
    run = await adjust_all(drivers, ROLLBACK, value=3)
    assert run.returncode == 1
    assert [name for name, _ in changes(run)] == ["01a", "02b", "03c", "02b", "01a"]
    final = run.final
    assert final["status"] == "failed"
    # the failure that started it all, and the driver whose rollback failed: as the
    # run's record counts them (--history)
    assert final["failed_drivers"] == ["01a", "03c"]
    assert run.facts is not None
    assert sorted(failed_drivers(build(run.facts))) == final["failed_drivers"]
    assert "rollback-failed" in final["reason"]
    assert "boom" in final["reason"]
    assert "rollback of 02b: ok, restored b.x=1" in final["message"]
    assert "rollback of 01a: FAILED" in final["message"]
    assert "01a broke on call 2" in final["message"]
    assert "a.x=1 may not be restored" in final["message"]
    rollback_stderr = final["message"].split("--- 01a rollback stderr ---\n")[1]
    assert rollback_stderr.startswith("this driver's own complaint")
    assert_monotone(run.progress)


@pytest.mark.supervision
async def test_rollback_with_nothing_completed_says_so(autojump_clock: MockClock) -> None:
    run = await adjust_all(three_scripts(failing="01a"), ROLLBACK)
    assert run.returncode == 1
    assert [name for name, _ in changes(run)] == ["01a"]
    assert "nothing to roll back" in run.final["message"]
    assert "not started (on_failure: rollback): 02b, 03c" in run.final["message"]


@pytest.mark.supervision
async def test_no_failure_no_rollback(autojump_clock: MockClock) -> None:
    run = await adjust_all(three_scripts(failing="none"), ROLLBACK)
    assert run.returncode == 0, run.stderr
    assert run.final == {"status": "ok", "reason": "success"}
    assert [name for name, _ in changes(run)] == ["01a", "02b", "03c"]


@pytest.mark.supervision
async def test_weights_replace_equal_shares(autojump_clock: MockClock) -> None:
    setting = {"x": {"value": 1, "min": 0, "max": 10}}
    drivers = {"01a": recording_script("01a", "a", setting),
               "02b": recording_script("02b", "b", setting)}
    config = AggregatorConfig(drivers={"01a": DriverPolicy(weight=3)})  # 02b keeps weight 1
    run = await run_command(adjust_job(Command.ADJUST, sorted(drivers), {"application": {
        "components": {"a": {"settings": {"x": {"value": 2}}}, "b": {"settings": {
            "x": {"value": 2}}}}}}, config=config), drivers)
    assert run.returncode == 0, run.stderr
    by_message = {p["message"]: p["progress"] for p in run.progress}
    assert by_message["01a: halfway"] == 37  # half of 3/4
    assert by_message["01a: done"] == 75
    assert by_message["02b: halfway"] == 87  # 3/4 + half of 1/4
    assert by_message["02b: done"] == 100


@pytest.mark.e2e
async def test_disabled_driver_is_as_if_absent(servo_root: Path, tag: str) -> None:
    """Left out where the drivers are found: no command sees it (each command's drivers,
    as the launch finds them: the next test; --info's, found before that:
    test_info.py's test_follows_the_aggregator_section_of_config_yaml)."""
    write_driver(servo_root, "01a", recording_driver("a", {"x": {"value": 1}}))
    write_driver(servo_root, "02b", recording_driver("b", {"x": {"value": 1}}))
    policy(servo_root, "  drivers:\n    02b: {enabled: false}\n")
    query = await run_adjust(servo_root, "--query", "app", tag=tag)
    assert query.returncode == 0, query.stderr
    assert set(query.final["application"]["components"]) == {"a"}


@pytest.mark.unit
@pytest.mark.parametrize(("front", "argv"), [
    (FrontEnd.ADJUST, ["app"]), (FrontEnd.ADJUST, ["--query", "app"]),
    (FrontEnd.ADJUST, ["--version"]), (FrontEnd.ADJUST, ["--dry-run", "app"]),
    (FrontEnd.MEASURE, ["app"]), (FrontEnd.MEASURE, ["--describe", "app"])])
def test_no_command_has_a_disabled_driver(tmp_path: Path, front: FrontEnd,
                                          argv: list[str]) -> None:
    """The launch, in the test's process (launch_before_trio): the job every command runs
    is made of the drivers found less the disabled ones. (What an adjust makes of a
    request for a setting no driver in it owns: test_dry_run.py's unknown-setting, over
    fakes.)"""
    for name in ("01a", "02b", "03c"):
        write_driver(tmp_path, name, "exit 3\n", shebang="#!/bin/sh", folder=f"{front}.d")
    if front is FrontEnd.ADJUST:
        policy(tmp_path, "  drivers:\n    02b: {enabled: false}\n")
        stdin = b'{"application": {"components": {}}}'
    else:
        policy(tmp_path, "  measure:\n    drivers:\n      02b: {enabled: false}\n")
        stdin = b'{"metrics": []}'
    launched = launch_before_trio(tmp_path, argv, front, stdin)
    assert launched.job is not None, launched.stderr
    assert [d.name for d in launched.job.drivers] == ["01a", "03c"]


def hanging_query(answered: dict[str, trio.Event], saw_others: list[bool]) -> Script:
    """--info: its version. --query: waits (up to 8 s) until both other drivers answered
    their --query, records that it saw them while still running, then hangs."""
    async def script(p: FakeMember) -> None:
        if p.proc.spec.call is Call.INFO:
            await p.say({"version": "hang", "has_cancel": False})
            return
        with trio.move_on_after(8):
            for event in answered.values():
                await event.wait()
            saw_others.append(True)
        await trio.sleep_forever()
    return script


def answering_script(component: str, answered: trio.Event) -> Script:
    descriptor = {"application": {"components": {component: {"settings": {
        "x": {"value": 1, "min": 0, "max": 9}}}}}}

    async def script(p: FakeMember) -> None:
        answered.set()
        await p.say(descriptor)
    return script


async def query_with_a_hung_driver(parallel: bool) -> tuple[FakeRun, bool]:
    """--query (T=3) of 01hang, 02b and 03c; and whether 01hang saw both others answer."""
    answered = {"02b": trio.Event(), "03c": trio.Event()}
    saw_others: list[bool] = []
    drivers = {"01hang": hanging_query(answered, saw_others),
               "02b": answering_script("b", answered["02b"]),
               "03c": answering_script("c", answered["03c"])}
    job = adjust_job(Command.QUERY, sorted(drivers),
                     config=AggregatorConfig(parallel_queries=parallel))
    run = await run_command(job, drivers, io_timeout=T)
    return run, bool(saw_others)


@pytest.mark.supervision
async def test_parallel_query_kills_a_hung_driver_while_the_others_answer(
        autojump_clock: MockClock) -> None:
    run, saw_others = await query_with_a_hung_driver(parallel=True)
    # The others answered while the hung driver was still alive, in the same run.
    assert saw_others
    assert run.returncode == 1
    assert run.final["failed_drivers"] == ["01hang"]
    assert run.final["reason"] == "timeout"
    assert "01hang" in run.final["message"]
    assert "02b" not in run.final["message"] and "03c" not in run.final["message"]


@pytest.mark.e2e
async def test_a_parallel_query_ending_does_not_cut_a_siblings_kill_grace(
        servo_root: Path, tag: str) -> None:
    """Two stuck drivers time out together: the one that dies at once on SIGTERM must not
    sweep the other away (as an orphan) while it uses its grace to clean up."""
    write_driver(servo_root, "01cleans", """
        trap 'sleep 0.05; touch cleaned; exit 1' TERM
        sleep 60 > /dev/null & wait $!
        """, shebang="#!/bin/sh")
    write_driver(servo_root, "02dies", "exec sleep 60\n", shebang="#!/bin/sh")
    (servo_root / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag,
                           env=adjust_env(tag, OPTUNE_IO_TIMEOUT=f"{T:g}"))
    assert run.final["failed_drivers"] == ["01cleans", "02dies"], run.final
    assert (servo_root / "cleaned").exists(), "01cleans was killed before its grace was over"


@pytest.mark.supervision
async def test_sequential_query_asks_one_driver_at_a_time(autojump_clock: MockClock) -> None:
    """The default: the hung first driver is killed before the others are started."""
    run, saw_others = await query_with_a_hung_driver(parallel=False)
    assert not saw_others
    assert [len(run.calls(name)) for name in ("02b", "03c")] == [1, 1]  # asked after all
    assert run.returncode == 1
    assert run.final["failed_drivers"] == ["01hang"]


@pytest.mark.supervision
async def test_parallel_query_merges_in_driver_order(autojump_clock: MockClock) -> None:
    drivers = {name: simple_script(component, {"x": {"value": 1}})
               for name, component in (("01a", "a"), ("02b", "b"), ("03c", "c"))}
    job = adjust_job(Command.QUERY, sorted(drivers),
                     config=AggregatorConfig(parallel_queries=True))
    run = await run_command(job, drivers)
    assert run.returncode == 0, run.stderr
    assert list(run.final["application"]["components"]) == ["a", "b", "c"]
