"""What the adjust front-end's commands (--version, --query, adjust) tell servo for each
thing their drivers say, run as ./adjust runs them over fake drivers on trio's MockClock.

How ./adjust gets there (arguments, the request, stdio, the real drivers) is
test_cli_e2e.py's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.protocol.vocabulary import Call
from tests.fakes import (
    FakeMember,
    FakeRun,
    Script,
    adjust_job,
    run_command,
    simple_script,
)
from tests.support import AGGREGATOR, CPU, POLICY, REPLICAS, SIZE

pytestmark = pytest.mark.supervision


def two_drivers() -> dict[str, Script]:
    """test_cli_e2e's two_drivers, as fakes."""
    return {"01web": simple_script("web", {"cpu": CPU, "replicas": REPLICAS}, version="1.2"),
            "02cache": simple_script("cache", {"size": SIZE, "policy": POLICY}, version="0.9")}


def request(components: dict[str, dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"application": {"components": {
        name: {"settings": {k: {"value": v} for k, v in settings.items()}}
        for name, settings in components.items()}}, **extra}


def adjusted(run: FakeRun, name: str) -> list[dict[str, Any]]:
    """The adjust requests driver `name` received."""
    return [json.loads(p.request) for p in run.calls(name) if p.spec.call is Call.ADJUST]


def exits(code: int, *, stderr: str = "") -> Script:
    """A driver that says nothing on stdout whatever it is asked, and exits `code`."""
    async def script(p: FakeMember) -> int:
        if stderr:
            await p.complain(stderr)
        return code
    return script


def answers(line: str) -> Script:
    """A driver that prints `line` (as it is) whatever it is asked."""
    async def script(p: FakeMember) -> None:
        await p.write(line + "\n")
    return script


def assert_one_error(run: FakeRun, reason: str) -> dict[str, Any]:
    """The way every command-ending error looks to servo and to a person."""
    assert run.returncode != 0
    assert len(run.json_lines) == 1, run.lines
    error = run.final
    assert error["status"] == "failed"
    assert error["reason"] == reason
    assert error["message"]
    assert f"servo-agg: error ({reason}): " in run.stderr
    return error


async def adjust(drivers: dict[str, Script], body: dict[str, Any], *,
                 stderr_mode: Any = "all") -> FakeRun:
    return await run_command(adjust_job(Command.ADJUST, sorted(drivers), body), drivers,
                             stderr_mode=stderr_mode)


async def query(drivers: dict[str, Script], app: str = "app") -> FakeRun:
    return await run_command(adjust_job(Command.QUERY, sorted(drivers), app=app), drivers)


async def version(drivers: dict[str, Script]) -> FakeRun:
    return await run_command(adjust_job(Command.VERSION, sorted(drivers), app=""), drivers)


# -- --version (stopped by servo: test_signals.py) -------------------------------------------

async def test_control_characters_from_drivers_reach_the_terminal_escaped(
        autojump_clock: MockClock) -> None:
    """A driver's version on --version's line, its reason and message in the error line on
    stderr: escapes, never a terminal's control sequence (servo's JSON keeps them)."""
    async def tinted(p: FakeMember) -> None:
        await p.say({"version": "1\x1b[31m", "has_cancel": False})

    run = await version({"01web": tinted})
    assert run.lines == [f"{AGGREGATOR} (01web 1\\x1b[31m)"]

    failing = failing_adjust("web", {"cpu": CPU}, exit_code=1, result={
        "status": "failed", "reason": "r\x1b[31m", "message": "m\x1b[2Jx"})
    run = await adjust({"01web": failing}, request({"web": {"cpu": 2}}), stderr_mode="none")
    assert run.final["reason"] == "r\x1b[31m"  # servo's line: JSON escapes it already
    assert "\x1b" not in run.stderr
    assert "r\\x1b[31m" in run.stderr and "m\\x1b[2Jx" in run.stderr


async def test_version_shows_a_failing_driver_by_name(autojump_clock: MockClock) -> None:
    run = await version({**two_drivers(), "01zbroken": exits(3)})
    assert run.lines == [f"{AGGREGATOR} (01web 1.2, 01zbroken: failing, 02cache 0.9)"]
    assert "01zbroken" in run.stderr


async def test_a_drivers_version_with_line_breaks_shows_on_one_line_and_a_long_one_cut(
        autojump_clock: MockClock) -> None:
    run = await version({"01web": simple_script("web", {}, version="2.1\nbuild 7\r\n"),
                         "02db": simple_script("db", {}, version="v" * 10_000)})
    assert run.returncode == 0, run.stderr
    [line] = run.lines
    assert line.startswith(f"{AGGREGATOR} (01web 2.1 build 7, 02db vvv")
    assert line.endswith("...)") and len(line) < 300


async def test_version_with_no_drivers(autojump_clock: MockClock) -> None:
    run = await version({})
    assert run.returncode == 0
    assert run.lines == [f"{AGGREGATOR} (no drivers)"]


# -- --query --------------------------------------------------------------------------------

async def test_a_query_without_an_app_id_asks_the_drivers_without_one(
        autojump_clock: MockClock) -> None:
    """`adjust --query` by hand: drivers get `--query`, not an invented empty app id."""
    drivers = {"01args": answers(json.dumps({"components": {"c": {"settings": {
        "x": {"value": 1}}}}}))}
    run = await query(drivers, app="")
    assert run.returncode == 0, run.stderr
    assert [p.spec.args for p in run.calls("01args")] == [("--query",)]


async def test_query_accepts_a_legacy_descriptor(autojump_clock: MockClock) -> None:
    drivers = {"01old": answers(json.dumps({"components": {"legacy": {"settings": {
                   "mem": {"value": 1, "min": 1, "max": 4}}}}})),
               "02new": simple_script("web", {"cpu": CPU})}
    run = await query(drivers)
    assert run.returncode == 0, run.stderr
    assert run.final["application"]["components"] == {
        "legacy": {"settings": {"mem": {"value": 1, "min": 1, "max": 4}}},
        "web": {"settings": {"cpu": CPU}}}


async def test_query_with_a_descriptor_of_the_wrong_shape_names_the_driver(
        autojump_clock: MockClock) -> None:
    drivers = {"01web": simple_script("web", {"cpu": CPU}),
               "02odd": answers('{"components": ["not", "an", "object"]}')}
    run = await query(drivers)
    assert run.returncode == 1
    assert run.final["status"] == "failed"
    assert "02odd" in run.final["message"]
    assert "components" in run.final["message"]
    assert run.final["failed_drivers"] == ["02odd"]


async def test_query_with_a_duplicate_setting_names_both_drivers(
        autojump_clock: MockClock) -> None:
    drivers = {"01web": simple_script("web", {"cpu": CPU}),
               "02cache": simple_script("cache", {"size": SIZE}),
               "03web2": simple_script("web", {"cpu": CPU, "mem": REPLICAS})}
    error = assert_one_error(await query(drivers), "duplicate-setting")
    assert "web.cpu" in error["message"]
    assert "01web" in error["message"] and "03web2" in error["message"]


async def test_query_with_an_empty_drivers_dir_is_an_empty_descriptor(
        autojump_clock: MockClock) -> None:
    run = await query({})
    assert run.returncode == 0, run.stderr
    assert run.lines and run.final == {"application": {"components": {}}}


# -- adjust ---------------------------------------------------------------------------------

async def test_unowned_settings_are_all_listed_and_no_driver_adjusts(
        autojump_clock: MockClock) -> None:
    run = await adjust(two_drivers(), request({
        "web": {"cpu": 2, "gpu": 1}, "cache": {"size": 32}, "queue": {"depth": 5}}))
    error = assert_one_error(run, "unknown-settings")
    assert "web.gpu" in error["message"] and "queue.depth" in error["message"]
    assert "web.cpu" not in error["message"] and "cache.size" not in error["message"]
    assert adjusted(run, "01web") == [] and adjusted(run, "02cache") == []


async def test_a_driver_whose_query_fails_is_named_and_nothing_is_adjusted(
        autojump_clock: MockClock) -> None:
    drivers = {**two_drivers(), "015sick": exits(2, stderr="cannot reach the cloud API\n")}
    run = await adjust(drivers, request({"web": {"cpu": 2}}))
    assert run.returncode != 0
    assert len(run.json_lines) == 1, run.lines
    assert run.final["status"] == "failed"
    message = run.final["message"]
    assert "015sick could not be asked" in message
    assert "nothing was changed" in message
    # its cause and its name, as for a failed adjust (#16): stderr excerpt, failed_drivers
    assert "--- 015sick stderr ---\ncannot reach the cloud API" in message
    assert run.final["failed_drivers"] == ["015sick"]
    assert adjusted(run, "01web") == []
    # servo posts our stderr after the message: the line there only points at it
    assert run.stderr == "servo-agg: error (driver-failed): the final line on stdout says " \
                         "what and why\n"


@pytest.mark.parametrize(("requested", "idle"), [("02cache", "01web"), ("01web", "02cache")],
                         ids=["first-idle", "last-idle"])
async def test_a_driver_with_nothing_to_change_is_not_run_and_is_no_share(
        requested: str, idle: str, autojump_clock: MockClock) -> None:
    change = {"01web": {"web": {"cpu": 2}}, "02cache": {"cache": {"size": 32}}}[requested]
    run = await adjust(two_drivers(), request(change))
    assert run.returncode == 0, run.stderr
    assert adjusted(run, idle) == []
    assert {"progress": 100, "message": f"{requested}: done"} in run.progress
    assert all(not p["message"].startswith(idle) for p in run.progress)


async def test_an_empty_request_changes_nothing_and_succeeds(autojump_clock: MockClock) -> None:
    run = await adjust(two_drivers(), request({}))
    assert run.returncode == 0, run.stderr
    assert run.final == {"status": "ok", "reason": "success"}
    assert adjusted(run, "01web") == [] and adjusted(run, "02cache") == []


def failing_adjust(component: str, settings: dict[str, Any], *, exit_code: int,
                   result: dict[str, Any] | None) -> Script:
    """A driver that answers --query but whose adjust prints `result` and exits."""
    descriptor = {"application": {"components": {component: {"settings": settings}}}}

    async def script(p: FakeMember) -> int:
        if p.proc.spec.call is Call.QUERY:
            await p.say(descriptor)
            return 0
        await p.read_request()
        await p.say({"progress": 10, "message": "trying"})
        if result is not None:
            await p.say(result)
        await p.complain("details on stderr\n")
        return exit_code

    return script


async def test_later_drivers_still_run_after_a_failure(autojump_clock: MockClock) -> None:
    drivers = {"01bad": failing_adjust("web", {"cpu": CPU}, exit_code=4, result=None),
               "02good": simple_script("cache", {"size": SIZE})}
    run = await adjust(drivers, request({"web": {"cpu": 2}, "cache": {"size": 32}}))
    assert run.returncode == 1
    assert len(adjusted(run, "01bad")) == 1 and len(adjusted(run, "02good")) == 1
    final = run.final
    assert final["status"] == "failed"
    assert final["reason"] == "driver-failed"
    lines = final["message"].split("\n")
    assert lines[0] == "01bad: failed: adjust: exited with code 4"
    assert "details on stderr" in final["message"]  # OPTUNE_VERBOSE_STDERR=all by default
    assert final["failed_drivers"] == ["01bad"]
    assert {"progress": 50, "message": "01bad: failed"} in run.progress
    assert {"progress": 100, "message": "02good: done"} in run.progress


async def test_rejected_wins_and_every_failed_driver_has_its_line(
        autojump_clock: MockClock) -> None:
    drivers = {
        "01ok-then-crash": failing_adjust("web", {"cpu": CPU}, exit_code=1,
                                          result={"status": "ok"}),
        "02policy": failing_adjust("cache", {"size": SIZE}, exit_code=1, result={
            "status": "rejected", "reason": "over-budget", "message": "too expensive"}),
        "03silent": failing_adjust("db", {"conns": REPLICAS}, exit_code=0, result=None),
    }
    run = await adjust(drivers, request({"web": {"cpu": 2}, "cache": {"size": 32},
                                         "db": {"conns": 3}}), stderr_mode="none")
    assert run.returncode == 1
    final = run.final
    assert final["status"] == "rejected"
    assert final["reason"] == "driver-failed; over-budget; no-result"
    assert final["message"].split("\n") == [
        "01ok-then-crash: failed: adjust: exited with code 1 after printing status ok",
        "02policy: rejected: adjust: too expensive (exit code 1)",
        "03silent: failed: adjust: exited 0 without printing a result line",
    ]
    assert final["failed_drivers"] == ["01ok-then-crash", "02policy", "03silent"]
    assert all(len(adjusted(run, name)) == 1 for name in drivers)
    assert "servo-agg: error (" in run.stderr
