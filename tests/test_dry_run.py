"""`adjust --dry-run app`: the plan of an adjust, with no driver's adjust ever run. The plan
and its failures: the real commands over fake drivers on trio's MockClock; what the launch
decides (the request, the arguments): the launch itself, in the test's process; through
./adjust, a disabled driver, found in the drivers directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig, DriverPolicy
from tests.fakes import FakeMember, FakeRun, Script, adjust_job, run_command
from tests.support import launch_before_trio, run_adjust, simple_driver, write_driver

ADJUSTED = "adjusted.log"


def watched_script(component: str, settings: dict[str, Any], *,
                   query_fails: bool = False) -> Script:
    """A driver owning `component` with `settings` whose adjusts are its FakeProcesses of
    Call.ADJUST (it must get none); its query fails with `query_fails`."""
    descriptor = {"application": {"components": {component: {"settings": settings}}}}

    async def script(p: FakeMember) -> int:
        call = p.proc.spec.call
        if call is Call.INFO:
            await p.say({"version": "1", "has_cancel": False})
        elif call is Call.QUERY:
            if query_fails:
                await p.complain("cannot reach the backend\n")
                return 3
            await p.say(descriptor)
        else:
            await p.read_request()
            await p.say({"status": "ok", "reason": "success"})
        return 0

    return script


WEB = {"cpu": {"type": "range", "value": 1.0, "min": 0.5, "max": 4, "step": 0.5},
       "replicas": {"value": 2, "min": 1, "max": 10, "step": 1}}
CACHE = {"size": {"value": 256, "min": 64, "max": 4096, "step": 64},
         "policy": {"type": "enum", "value": "lru", "values": ["lru", "lfu"]}}
DB = {"pool": {"value": 10, "min": 1, "max": 100}}


def sample_root(root: Path) -> None:
    """Three drivers that log each adjust they get in adjusted.log (they must get none)."""
    for name, component, settings in (("10-web", "web", WEB), ("20-cache", "cache", CACHE),
                                       ("30-db", "db", DB)):
        write_driver(root, name, simple_driver(component, settings, log=ADJUSTED))


def request(components: dict[str, dict[str, Any]]) -> str:
    return json.dumps({"application": {"components": {
        component: {"settings": {k: {"value": v} for k, v in values.items()}}
        for component, values in components.items()}}, "control": {"userdata": {}}})


GOOD = request({"web": {"cpu": 2, "replicas": 2}, "cache": {"policy": "lfu"}})
FLAGGED = request({"web": {"cpu": 1.25, "replicas": 12}, "cache": {"policy": "random",
                                                                   "size": 4096}})


def assert_no_adjust_ran(root: Path) -> None:
    assert not (root / ADJUSTED).exists(), (root / ADJUSTED).read_text()


def sample_scripts() -> dict[str, Script]:
    return {"10-web": watched_script("web", WEB), "20-cache": watched_script("cache", CACHE),
            "30-db": watched_script("db", DB)}


async def rehearse(body: str, drivers: dict[str, Script] | None = None, *,
                   command: Command = Command.DRY_RUN, as_json: bool = False,
                   config: AggregatorConfig | None = None) -> FakeRun:
    """`--dry-run app` (or another command) over fakes: sample_root's, and `drivers`."""
    drivers = {**sample_scripts(), **(drivers or {})}
    run = await run_command(adjust_job(command, sorted(drivers), json.loads(body),
                                       config=config, as_json=as_json), drivers)
    if command is Command.DRY_RUN:
        assert_no_fake_adjust_ran(run)
    return run


def assert_no_fake_adjust_ran(run: FakeRun) -> None:
    assert run.spawner is not None
    assert [p for p in run.spawner.started if p.spec.call is Call.ADJUST] == []


@pytest.mark.supervision
async def test_text_plan(autojump_clock: MockClock) -> None:
    run = await rehearse(GOOD)
    assert run.returncode == 0, run.stderr
    text = "\n".join(run.lines)
    assert run.lines[0].startswith("dry run of `adjust app`: 2 drivers would run")
    assert "on_failure: continue" in run.lines[0]
    assert "  10-web (50% of progress)" in run.lines
    assert "    web.cpu: 1 → 2" in run.lines
    assert "    web.replicas: 2 → 2  (unchanged)" in run.lines
    assert "  20-cache (50% of progress)" in run.lines
    assert "    cache.policy: lru → lfu" in run.lines
    assert "cache.size" not in text  # not requested, not sent
    assert "would be skipped:" in run.lines
    assert "  30-db: nothing requested of it" in run.lines
    assert "!" not in text
    assert run.lines[-1] == "nothing was changed: no driver's adjust was run"


@pytest.mark.supervision
async def test_flags_values_outside_the_rules(autojump_clock: MockClock) -> None:
    run = await rehearse(FLAGGED)
    assert run.returncode == 0, run.stderr
    assert "    web.cpu: 1 → 1.25  ! 1.25 is not on the step grid (0.5 + k × 0.5)" in run.lines
    assert "    web.replicas: 2 → 12  ! 12 is outside 1..10" in run.lines
    assert "    cache.policy: lru → random  ! random is not one of lru, lfu" in run.lines
    assert "    cache.size: 256 → 4096" in run.lines  # the top of the range is in it
    assert any(line.startswith("3 values flagged (!)") for line in run.lines)


@pytest.mark.supervision
async def test_json_plan_is_one_object(autojump_clock: MockClock) -> None:
    config = AggregatorConfig(on_failure="rollback", drivers={"10-web": DriverPolicy(weight=3)})
    run = await rehearse(FLAGGED, as_json=True, config=config)
    assert run.returncode == 0, run.stderr
    assert len(run.lines) == 1
    plan = run.final
    assert plan["dry_run"] is True
    assert plan["app"] == "app"
    assert plan["on_failure"] == "rollback"
    assert [d["driver"] for d in plan["drivers"]] == ["10-web", "20-cache"]
    assert [d["progress_share"] for d in plan["drivers"]] == [75.0, 25.0]
    web = {s["setting"]: s for s in plan["drivers"][0]["settings"]}
    assert web["web.replicas"] == {"setting": "web.replicas", "current": 2, "requested": 12,
                                   "flags": ["12 is outside 1..10"]}
    assert web["web.cpu"]["current"] == 1.0 and web["web.cpu"]["requested"] == 1.25
    assert plan["skipped"] == [{"driver": "30-db", "why": "nothing requested of it"}]
    assert plan["flagged"] == 3


@pytest.mark.e2e
async def test_disabled_driver_is_listed_as_skipped(servo_root: Path, tag: str) -> None:
    sample_root(servo_root)
    (servo_root / "config.yaml").write_text(
        "aggregator:\n  drivers:\n    30-db: {enabled: false}\n")
    run = await run_adjust(servo_root, "--dry-run", "--json", "app", tag=tag, stdin=GOOD)
    assert run.returncode == 0, run.stderr
    assert {"driver": "30-db", "why": "disabled in config.yaml (enabled: false)"} \
        in run.final["skipped"]
    assert_no_adjust_ran(servo_root)


#: Refused where the request is read, before any driver is asked (the launch's, for every
#: command alike): not JSON, and JSON the parser refuses (every other way, each its own
#: message: test_request.py).
REFUSED_REQUESTS = [
    ("not-json", "{not json"),
    ("no-value", json.dumps({"application": {"components": {"web": {"settings": {
        "cpu": {"val": 2}}}}}})),
]


@pytest.mark.unit
@pytest.mark.parametrize(("case", "stdin"), REFUSED_REQUESTS, ids=[c[0] for c in REFUSED_REQUESTS])
def test_refuses_a_request_exactly_as_adjust_would(tmp_path: Path, case: str,
                                                   stdin: str) -> None:
    """(A refused request through ./adjust, as servo sees it: test_cli_e2e.py.)"""
    adjust = launch_before_trio(tmp_path, ["app"], request=stdin.encode())
    assert adjust.code == 1
    assert adjust.final["status"] == "failed"
    for args in (["--dry-run", "app"], ["--dry-run", "--json", "app"]):
        dry = launch_before_trio(tmp_path, args, request=stdin.encode())
        assert dry.code == adjust.code
        assert dry.lines == adjust.lines
        assert dry.stderr == adjust.stderr


#: Refused once the drivers were asked: the plan fails as the adjust does.
FAILED_PLANS: list[tuple[str, str, dict[str, Script]]] = [
    ("unknown-setting", request({"web": {"cpu": 2, "gpu": 1}, "nosuch": {"x": 1}}), {}),
    ("query-fails", GOOD, {"40-broken": watched_script("broken", {"z": {"value": 1}},
                                                       query_fails=True)}),
    ("duplicate-setting", GOOD, {"40-dup": watched_script("web", {"cpu": {"value": 1}})}),
]


@pytest.mark.supervision
@pytest.mark.parametrize(("case", "stdin", "extra"), FAILED_PLANS, ids=[c[0] for c in FAILED_PLANS])
async def test_fails_exactly_as_adjust_would(case: str, stdin: str, extra: dict[str, Script],
                                             autojump_clock: MockClock) -> None:
    adjust = await rehearse(stdin, extra, command=Command.ADJUST)
    assert adjust.returncode == 1
    assert adjust.final["status"] == "failed"
    assert_no_fake_adjust_ran(adjust)  # adjust itself refused before any driver's adjust
    for as_json in (False, True):
        dry = await rehearse(stdin, extra, as_json=as_json)
        assert dry.returncode == adjust.returncode
        assert dry.lines == adjust.lines
        assert dry.stderr == adjust.stderr


@pytest.mark.unit
def test_needs_an_app_id_like_adjust(tmp_path: Path) -> None:
    adjust = launch_before_trio(tmp_path, [], request=GOOD.encode())
    dry = launch_before_trio(tmp_path, ["--dry-run"], request=GOOD.encode())
    assert dry.code == adjust.code == 1
    assert dry.lines == adjust.lines
    assert dry.final["reason"] == "bad-usage"


@pytest.mark.unit
def test_json_alone_is_a_usage_error(tmp_path: Path) -> None:
    run = launch_before_trio(tmp_path, ["--json", "app"], request=GOOD.encode())
    assert run.code == 1
    error = run.error
    assert error["reason"] == "bad-usage"
    assert "--dry-run" in error["message"]
    assert run.reads == []  # refused before the request was read, let alone a driver run
