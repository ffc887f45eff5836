"""`adjust --check [app]`, the deployment doctor, and the descriptor rules it enforces.
Through ./adjust for the whole way (the arguments, servo's environment, the report as text
and as --json, its exit code); what it makes of the drivers' answers over fake drivers on
MockClock; the sections that only read the servo root and the environment, and a root
without drivers (which starts nothing), by calling them."""

from __future__ import annotations

import io
import json
import os
import platform
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import trio
import trio.testing

from aggregator.limits import CHECK_IO_TIMEOUT_SECONDS
from aggregator.protocol.environment import ServoEnvironment, line_limit_for
from aggregator.protocol.validation import describe_setting, setting_problems, value_problems
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig
from aggregator.root.discovery import Driver
from aggregator.root.front_end import FrontEnd
from aggregator.supervision.output import Output
from aggregator.tools.check import (
    CHECK_IO_TIMEOUT,
    Level,
    Probe,
    Report,
    check_answers,
    check_config,
    check_drivers_dir,
    check_environment,
    check_not_shown,
    check_probe,
    check_runtime,
    run_check,
)
from tests.fakes import (
    FakeMember,
    FakeProcess,
    Script,
    hangs_on_query,
    measure_script,
    probe_fakes,
    simple_script,
)
from tests.measure_support import measure_driver
from tests.support import (
    POLICY,
    adjust_env,
    launch_before_trio,
    run_adjust,
    simple_driver,
    write_driver,
)

CPU = {"type": "range", "value": 1.0, "min": 0.5, "max": 4, "step": 0.5, "unit": "cores"}


# -- the descriptor rules ---------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("spec", [
    CPU,
    {"value": 3, "min": 1, "max": 10},  # type defaults to range
    {"value": 0.3, "min": 0.1, "max": 1.0, "step": 0.1},  # on the grid despite floats
    {"value": 10, "min": 1, "max": 10, "step": 3},  # max need not be on the grid
    POLICY,
])
def test_settings_that_follow_the_rules(spec: dict[str, Any]) -> None:
    assert setting_problems(spec) == []


@pytest.mark.unit
@pytest.mark.parametrize(("spec", "problem"), [
    ({"value": 1, "max": 4}, "range has no min"),
    ({"value": 1, "min": 0}, "range has no max"),
    ({"value": 1, "min": "0", "max": 4}, 'min "0" is not a number'),
    ({"value": 1, "min": 0, "max": True}, "max true is not a number"),
    ({"value": 4, "min": 4, "max": 4}, "min 4 is not below max 4"),
    ({"value": 1, "min": 5, "max": 1}, "min 5 is not below max 1"),
    ({"value": 5, "min": 0, "max": 4}, "value 5 is outside 0..4"),
    ({"value": -1, "min": 0, "max": 4}, "value -1 is outside 0..4"),
    ({"value": "2", "min": 0, "max": 4}, 'value "2" is not a number'),
    ({"value": 1.2, "min": 0.5, "max": 4, "step": 0.5},
     "value 1.2 is not on the step grid (0.5 + k × 0.5)"),
    ({"value": 1, "min": 0, "max": 4, "step": 0}, "step 0 is not a positive number"),
    ({"min": 0, "max": 4}, "has no current value"),
    ({"type": "enum", "value": "arc", "values": ["lru", "lfu"]},
     "value arc is not one of lru, lfu"),
    ({"type": "enum", "value": "lru"}, "enum has no list of values"),
    ({"type": "enum", "value": "lru", "values": []}, "enum has no list of values"),
    ({"type": "slider", "value": 1}, "unknown type slider (known: range, enum)"),
])
def test_each_rule(spec: dict[str, Any], problem: str) -> None:
    assert problem in setting_problems(spec)


@pytest.mark.unit
def test_requested_values_are_judged_by_the_same_rules() -> None:
    assert value_problems(CPU, 2.5) == []
    assert value_problems(CPU, 4.5) == ["4.5 is outside 0.5..4"]
    assert value_problems(CPU, 0.7) == ["0.7 is not on the step grid (0.5 + k × 0.5)"]
    assert value_problems(CPU, "two") == ['"two" is not a number']
    assert value_problems(POLICY, "lfu") == []
    assert value_problems(POLICY, "fifo") == ["fifo is not one of lru, lfu"]
    assert value_problems({"type": "slider"}, 99) == []  # cannot be judged


@pytest.mark.unit
def test_describe_setting() -> None:
    assert describe_setting(CPU) == "range 1 (0.5..4 step 0.5 cores)"
    assert describe_setting(POLICY) == "enum lru (lru|lfu)"


# -- the report -------------------------------------------------------------------------

def healthy_root(root: Path) -> None:
    write_driver(root, "10-web", simple_driver("web", {"cpu": CPU}, version="web 2.1"))
    write_driver(root, "20-cache", simple_driver("cache", {"policy": POLICY}))
    (root / "adjust.d" / "settings.json").write_text("{}")  # data for the drivers
    (root / "adjust.d" / "10-web~").write_text("")
    (root / "adjust.d" / "10-web~").chmod(0o755)
    (root / "adjust.d" / ".hidden").write_text("")
    (root / "adjust.d" / "lib").mkdir()


def line_with(run_lines: list[str], *parts: str) -> str:
    for line in run_lines:
        if all(p in line for p in parts):
            return line
    raise AssertionError(f"no line with {parts!r} in:\n" + "\n".join(run_lines))


@pytest.mark.e2e
async def test_healthy_root(servo_root: Path, tag: str) -> None:
    healthy_root(servo_root)
    run = await run_adjust(servo_root, "--check", "-v", "app", tag=tag)
    assert run.returncode == 0, "\n".join(run.lines)
    # -v: stderr traces each driver's lines and times each call
    assert "10-web: <- " in run.stderr
    assert "timing: 10-web: info " in run.stderr
    lines = run.lines
    assert "checking servo root" in lines[0] and "for app app" in lines[0]
    assert line_with(lines, "[ok]", "10-web ", "driver (executable regular file)")
    assert line_with(lines, "[--]", "settings.json", "not executable")
    assert line_with(lines, "[--]", "10-web~", "editor backup")
    assert line_with(lines, "[--]", ".hidden", "hidden file")
    assert line_with(lines, "[--]", "lib", "directory")
    assert line_with(lines, "[ok]", "--info: version web 2.1, has_cancel false")
    assert line_with(lines, "web.cpu", "range 1 (0.5..4 step 0.5 cores)")
    assert line_with(lines, "cache.policy", "enum lru (lru|lfu)")
    assert line_with(lines, "[ok]", "2 settings in 2 components")
    assert line_with(lines, "[note]", "no config.yaml")
    assert line_with(lines, "[note]", "OPTUNE_IO_TIMEOUT is not set")
    # what would end the drivers if servo-agg died: the run's cgroup or the tree walk
    tier = lines[lines.index("if servo-agg is SIGKILLed") + 1]
    assert tier.startswith("  [ok]") and ("the run's own cgroup" in tier
                                          or "every process tree below a driver" in tier)
    # without T from servo or config.yaml, nothing bounds a hung driver: a warning
    assert line_with(lines, "[warn]", "10-web, 20-cache could each hang forever")
    assert lines[-1] == "result: servo would work with this root (0 problems, 1 warning)"
    assert not any("[FAIL]" in line for line in lines)
    # (--json, the whole report as one document, through ./adjust:
    # test_a_broken_root_s_check_json_is_one_document_of_the_whole_report; its exit code
    # the text report's, in-process: test_the_exit_code_is_the_report_s_...)


@pytest.mark.unit
@pytest.mark.parametrize("broken", [False, True])
def test_the_exit_code_is_the_report_s_with_or_without_json(servo_root: Path,
                                                            broken: bool) -> None:
    """run_check itself, on a root with no driver to ask (so no Run, no process): 0 only
    when servo would work with the root, as text or as --json's one document."""
    if broken:
        (servo_root / "config.yaml").write_text("aggregator:\n  on_failure: later\n")
    as_text, as_json = (check_without_drivers(servo_root, env={"PATH": os.defpath},
                                              as_json=json_wanted)
                        for json_wanted in (False, True))
    assert [as_text.code, as_json.code] == [int(broken)] * 2
    text, (line,) = as_text.lines, as_json.lines
    assert text[-1].startswith("result: servo would NOT work" if broken
                               else "result: servo would work")
    assert json.loads(line)["result"] == ("fail" if broken else "ok")


@pytest.mark.unit
@pytest.mark.parametrize(("levels", "interrupted", "result"), [
    (("ok", "note", "warn"), False, "ok"), (("ok", "FAIL", "warn"), False, "fail"),
    (("ok", "FAIL"), True, "interrupted"), (("ok", "--"), True, "interrupted")])
def test_the_json_report_s_result_is_its_verdict(levels: tuple[Level, ...],
                                                 interrupted: bool, result: str) -> None:
    """The text report's last line as one word, with the counts; each item a check."""
    report = Report()
    report.heading("drivers", "driver-file")
    for n, level in enumerate(levels):
        report.item(level, f"item {n}", subject=f"{n}0-x")
    document = report.as_json(Path("/srv"), FrontEnd.ADJUST, "app", interrupted=interrupted)
    assert document["result"] == result
    assert (document["problems"], document["warnings"]) == (report.problems, report.warnings)
    assert (document["servo_root"], document["front_end"], document["app"]) == (
        "/srv", "adjust", "app")
    assert [(c["name"], c["subject"], c["detail"]) for c in document["checks"]] == [
        ("driver-file", f"{n}0-x", f"item {n}") for n in range(len(levels))]
    assert json.loads(json.dumps(document)) == document  # one JSON document as it is


# -- the drivers section, over fake drivers -----------------------------------------------
# What the check makes of each driver's answers: probe_command asks fake drivers under the
# same supervision as a run (on MockClock: fakes.probe_fakes), and check_answers writes
# the section that run_check writes from them (run_check's whole way, through ./adjust:
# test_healthy_root and test_a_broken_root_s_check_json_is_one_document_of_the_whole_report).

def answering(info: dict[str, Any] | None, query: str | dict[str, Any] | None, *,
              stderr: str = "", code: int = 0) -> Script:
    """A fake driver that prints `info` to --info and `query` (a line as it is, or a
    message) to --query, `stderr` to stderr, and exits with `code`."""
    async def script(p: FakeMember) -> int:
        said = info if p.proc.spec.call is Call.INFO else query
        if stderr:
            await p.complain(stderr)
        if isinstance(said, str):
            await p.write(said + "\n")
        elif said is not None:
            await p.say(said)
        return code

    return script


async def checked_answers(scripts: dict[str, Script], *, app: str = "app",
                          io_timeout: float | None = None, front: FrontEnd = FrontEnd.ADJUST,
                          ) -> tuple[Report, list[FakeProcess]]:
    """The drivers section --check (of `front`) writes for fake drivers `scripts` (T
    `io_timeout`, or --check's own default as without servo's), and the processes it
    started."""
    environment = ServoEnvironment(io_timeout, "all").with_fallback(
        CHECK_IO_TIMEOUT_SECONDS, CHECK_IO_TIMEOUT)
    probes, started = await probe_fakes(scripts, environment, app=app, front=front)
    report = Report()
    check_answers(report, probes, line_limit_for(environment.io_timeout), AggregatorConfig(),
                  [p.driver for p in probes], front)
    return report, started


@pytest.mark.supervision
async def test_descriptor_rules_are_enforced(autojump_clock: trio.testing.MockClock) -> None:
    report, _ = await checked_answers({
        "10-web": simple_script("web", {"cpu": CPU}),
        "30-bad": simple_script("bad", {
            "wide": {"value": 5, "min": 0, "max": 4},
            "inverted": {"value": 1, "min": 3, "max": 1},
            "grid": {"value": 1.2, "min": 0.5, "max": 4, "step": 0.5},
            "choice": {"type": "enum", "value": "arc", "values": ["lru", "lfu"]},
            "odd": {"type": "slider", "value": 1},
        })})
    # servo and servo-agg pass such a descriptor on (--query and adjusts work): only the
    # optimizer may object, so it is a warning that says so, not a failure (#16 point 4)
    lines = report.lines
    assert line_with(lines, "[warn]", "--query: 5 settings, 5 breaking the descriptor rules",
                     "the optimizer may refuse them")
    assert line_with(lines, "! value 5 is outside 0..4")
    assert line_with(lines, "! min 3 is not below max 1")
    assert line_with(lines, "! value 1.2 is not on the step grid")
    assert line_with(lines, "! value arc is not one of lru, lfu")
    assert line_with(lines, "! unknown type slider")
    assert line_with(lines, "[ok]", "--query: 1 setting")  # 10-web's: no finding
    assert (report.problems, report.warnings) == (0, 1)


@pytest.mark.supervision
async def test_duplicate_settings_across_drivers(autojump_clock: trio.testing.MockClock) -> None:
    report, _ = await checked_answers({
        "01a": simple_script("web", {"cpu": CPU, "mem": CPU}),
        "02b": simple_script("web", {"cpu": CPU, "mem": CPU}),
        "03c": simple_script("web", {"disk": CPU})})  # shares the component web: fine
    assert line_with(report.lines, "[FAIL]", "web.cpu is reported by 01a and 02b")
    assert line_with(report.lines, "[FAIL]", "web.mem is reported by 01a and 02b")
    assert not any("web.disk is reported" in line for line in report.lines)
    assert report.problems == 2


@pytest.mark.supervision
async def test_failing_drivers(autojump_clock: trio.testing.MockClock) -> None:
    report, _ = await checked_answers({
        "01crash": answering(None, None, stderr="no credentials for the API\n", code=2),
        "02chatty": answering({"has_cancel": "maybe"}, "Querying the cluster..."),
        "03shape": answering({"version": "3", "has_cancel": False}, {"settings": {}})})
    lines = report.lines
    assert line_with(lines, "[FAIL]", "--info failed: info: exited with code 2")
    assert line_with(lines, "stderr: no credentials for the API")
    assert line_with(lines, "[FAIL]", "--query failed: query: printed a line that is not JSON")
    assert line_with(lines, "[FAIL]", "--info gave no version",
                     "`adjust --version` names this driver failing and exits 1")
    assert line_with(lines, "[note]", "no true/false has_cancel: nothing here reads it")
    assert line_with(lines, "[FAIL]", "--query: output is not a descriptor")


@pytest.mark.supervision
async def test_hung_driver_is_killed_and_reported(autojump_clock: trio.testing.MockClock,
                                                  ) -> None:
    report, started = await checked_answers({"01hang": hangs_on_query,
                                             "02ok": simple_script("web", {"cpu": CPU})},
                                            io_timeout=3)
    assert line_with(report.lines, "[FAIL]", "--query failed", "sent nothing for", "killed")
    assert line_with(report.lines, "[ok]", "--query: 1 setting")  # 02ok still checked
    hung = next(p for p in started if p.spec.driver.name == "01hang" and
                p.spec.call is Call.QUERY)
    assert hung.exited_at == pytest.approx(2.0, abs=0.6)  # T=3: its line limit of 2 s


@pytest.mark.supervision
async def test_a_summary_counts_only_what_was_checked(autojump_clock: trio.testing.MockClock,
                                                      ) -> None:
    down = answering(None, None, code=3)
    report, _ = await checked_answers({"01web": simple_script("web", {"cpu": CPU}),
                                       "02down": down})
    assert line_with(report.lines, "[ok]", "1 settings in 1 components from 1 of 2 drivers "
                                           "(1 could not be asked: see above)")
    report, _ = await checked_answers({"02down": down})
    assert line_with(report.lines, "[--]",
                     "not checked: no driver's --query answer could be used")
    assert not any("0 settings" in line for line in report.lines)


@pytest.mark.supervision
async def test_a_metric_two_measure_drivers_describe_fails(
        autojump_clock: trio.testing.MockClock) -> None:
    """(measure --check's whole way, through ./measure: test_measure_e2e.py's
    test_check_warns_when_servos_timeout_is_below_what_measure_drivers_need.)"""
    report, _ = await checked_answers({"10a": measure_script({"x": {}}),
                                       "20b": measure_script({"x": {}, "y": {}})},
                                      front=FrontEnd.MEASURE)
    assert line_with(report.lines, "[FAIL]", "x is reported by 10a and 20b")
    assert not any("y is reported" in line for line in report.lines)
    assert report.problems == 1


@pytest.mark.supervision
@pytest.mark.parametrize(("app", "args"), [("shop", ("shop",)), ("", ())])
async def test_drivers_are_asked_with_the_app_id_given_and_none_without_one(
        app: str, args: tuple[str, ...], autojump_clock: trio.testing.MockClock) -> None:
    """(What `--check` without one gives it, in-process:
    test_check_without_an_app_id_says_so_first.)"""
    _, started = await checked_answers({"01args": simple_script("w", {"x": CPU})}, app=app)
    assert [p.spec.args for p in started] == [("--info", *args), ("--query", *args)]


@pytest.mark.unit
def test_check_without_an_app_id_says_so_first(tmp_path: Path) -> None:
    """The command line, as the launch reads it, to the report's first line (with no
    driver to ask, nothing starts)."""
    launched = launch_before_trio(tmp_path, ["--check"])
    assert launched.code == 0, launched.lines
    assert launched.lines[0].endswith(" (no app id given: drivers are asked without one)")


@pytest.mark.e2e
async def test_a_check_stopped_by_sigterm_counts_only_what_it_checked(servo_root: Path,
                                                                      tag: str) -> None:
    """The --info it killed and the --query it never started are no problems; the report
    says it was interrupted and the exit is a termination's (the parts: check_probe)."""
    from tests.fault_support import run_watched

    write_driver(servo_root, "01hang", "touch hung; exec sleep 60", shebang="#!/bin/sh")
    run, _ = await run_watched(servo_root, "--check", "app", tag=tag, env=adjust_env(tag),
                               signals_after_start=(signal.SIGTERM,),
                               signal_when=(servo_root / "hung").exists)
    assert run.returncode == 128 + signal.SIGTERM, "\n".join(run.lines)
    assert line_with(run.lines, "[--]", "--info not checked: the check was interrupted")
    assert run.lines[-1].startswith("result: interrupted: the check did not finish "
                                    "(0 problems, ")  # warnings: of the environment
    assert run.lines[-1].endswith(" in what it checked)")


def report_on(root: Path) -> tuple[Report, list[str]]:
    """The config.yaml and drivers-directory sections of the report on `root`, and the
    drivers the check would ask."""
    report = Report()
    drivers = check_drivers_dir(report, root, check_config(report, root))
    return report, [d.name for d in drivers]


@pytest.mark.unit
def test_a_broken_policy_is_a_problem_and_the_drivers_are_checked_with_the_defaults(
        servo_root: Path) -> None:
    healthy_root(servo_root)
    (servo_root / "config.yaml").write_text("aggregator:\n  on_failure: later\n")
    report, drivers = report_on(servo_root)
    assert line_with(report.lines, "[FAIL]", "aggregator.on_failure", "continue, stop, rollback")
    assert drivers == ["10-web", "20-cache"]  # still asked, with the defaults
    assert report.problems == 1


@pytest.mark.unit
def test_unparsable_yaml_is_a_problem_naming_the_line(servo_root: Path) -> None:
    healthy_root(servo_root)
    (servo_root / "config.yaml").write_text("web:\n  a: 1\n b: 2\n")
    report, _ = report_on(servo_root)
    assert line_with(report.lines, "[FAIL]", "config.yaml", "line 3", "not valid YAML")
    assert report.problems == 1


@pytest.mark.unit
def test_config_summary_and_policy_typos(servo_root: Path) -> None:
    healthy_root(servo_root)
    (servo_root / "config.yaml").write_text(
        "aggregator:\n  on_failure: rollback\n  drivers:\n"
        "    10-web: {weight: 2}\n    20-cahce: {enabled: false}\n"
        "    settings.json: {weight: 2}\n"
        "web:\n  x: 1\ncache: {}\n")
    report, drivers = report_on(servo_root)
    lines = report.lines
    assert line_with(lines, "[ok]", "aggregator section", "on_failure rollback")
    assert line_with(lines, "driver 10-web: weight 2")
    assert line_with(lines, "[warn]", "aggregator.drivers.20-cahce: no such file")
    assert line_with(lines, "[warn]", "aggregator.drivers.settings.json: not a driver")
    assert line_with(lines, "[note]", "other sections", "web, cache")
    assert (report.problems, report.warnings) == (0, 2)  # warnings only
    assert drivers == ["10-web", "20-cache"]


@pytest.mark.unit
def test_disabled_driver_is_listed_not_run(servo_root: Path) -> None:
    healthy_root(servo_root)
    write_driver(servo_root, "30-off", "import sys; sys.exit(1)\n")
    (servo_root / "config.yaml").write_text(
        "aggregator:\n  drivers:\n    30-off: {enabled: false}\n")
    report, drivers = report_on(servo_root)
    assert line_with(report.lines, "[--]", "30-off", "disabled in config.yaml")
    assert drivers == ["10-web", "20-cache"]  # asked nothing
    assert report.problems == 0


@pytest.mark.unit
def test_a_program_without_its_execute_bit_is_a_warning_with_the_fix(servo_root: Path) -> None:
    """#16 point 1, as --check lists the measure drivers directory (what every command
    that runs drivers says of it: test_launch.py)."""
    measure_driver(servo_root, "10-ab", {"throughput": {"unit": "rpm"}}, window=0.1)
    measure_driver(servo_root, "20-prom", {"p99_latency": {"unit": "ms"}}, window=0.1)
    (servo_root / "measure.d" / "20-prom").chmod(0o644)
    (servo_root / "measure.d" / "prom.yaml").write_text("url: http://prom\n")  # data
    report = Report()
    check_drivers_dir(report, servo_root, check_config(report, servo_root, FrontEnd.MEASURE),
                      FrontEnd.MEASURE)
    warned = [line for line in report.lines if "[warn]" in line and "20-prom" in line]
    assert len(warned) == 1 and "chmod +x measure.d/20-prom" in warned[0], report.lines
    assert any("[--]" in line and "prom.yaml" in line for line in report.lines)
    assert (report.problems, report.warnings) == (0, 1)


@pytest.mark.unit
@pytest.mark.parametrize(("env", "level", "says", "problems"), [
    ({"OPTUNE_IO_TIMEOUT": "10"}, "[note]", "waits at most 9 s", 0),
    ({"OPTUNE_IO_TIMEOUT": "3"}, "[note]", "OPTUNE_IO_TIMEOUT=3", 0),
    ({"OPTUNE_IO_TIMEOUT": "1.5"}, "[warn]", "is very short", 0),
    ({"OPTUNE_IO_TIMEOUT": "soon"}, "[FAIL]", "OPTUNE_IO_TIMEOUT='soon'", 1),
    ({"OPTUNE_VERBOSE_STDERR": "loud"}, "[FAIL]", "OPTUNE_VERBOSE_STDERR='loud'", 1),
])
def test_environment(env: dict[str, str], level: str, says: str, problems: int) -> None:
    """(That --check reads servo's real environment, through ./adjust:
    test_a_broken_root_s_check_json_is_one_document_of_the_whole_report.)"""
    report = Report()
    check_environment(report, env, 0.5)
    assert line_with(report.lines, level, says)
    assert report.problems == problems


@pytest.mark.unit
@pytest.mark.parametrize(("env", "graces"), [
    ({}, "kill_grace 5 s (cut to 0.5 s to fit T = 2 s), "
         "cancel_grace 3 s (cut to 1 s to fit T = 2 s)"),  # T from io_timeout: 2
    ({"OPTUNE_IO_TIMEOUT": "4"}, "kill_grace 5 s (cut to 0.5 s to fit T = 4 s), "
                                 "cancel_grace 3 s"),  # servo's T wins; 3 s fits in T-1
    ({"OPTUNE_IO_TIMEOUT": "30"}, "kill_grace 5 s (cut to 0.5 s to fit T = 30 s), "
                                  "cancel_grace 3 s"),  # T-1 leaves 1 s: half for the kill
])
def test_the_config_line_shows_the_graces_as_they_apply_under_t(
        tmp_path: Path, env: dict[str, str], graces: str) -> None:
    (tmp_path / "config.yaml").write_text(
        "aggregator: {io_timeout: 2, kill_grace: 5, cancel_grace: 3}\n")
    report = Report()
    check_config(report, tmp_path, env=env)
    assert line_with(report.lines, "[ok]", "aggregator section:").endswith(graces)


def root_report(root: Path) -> Path:
    """Where a unit test has --check write its report."""
    return root.parent / "report"


class CheckWritten(NamedTuple):
    """What check_without_drivers' run_check wrote, and its exit code."""

    code: int
    lines: list[str]  # the report, as --check writes it
    said: list[str]  # its notes for people, as the run's record keeps them (Output.said)
    stderr: str


def check_without_drivers(root: Path, *, env: Mapping[str, str] | None = None,
                          as_json: bool = False) -> CheckWritten:
    """run_check on a root without a driver to run (so it starts nothing), in `env` (none
    by default), as text or as --json's one document: what it wrote and its exit code."""
    report, stderr = root_report(root), io.StringIO()
    with report.open("wb") as out:
        output = Output(out.fileno(), stderr)
        code = run_check(root, "app", output, env={} if env is None else env,
                         as_json=as_json)
        output.close()
    return CheckWritten(code, report.read_text().splitlines(), output.said, stderr.getvalue())


@pytest.mark.unit
def test_no_drivers(servo_root: Path) -> None:
    """An empty drivers directory is allowed (servo-agg runs, with nothing to offer): a
    warning, not a failure; a missing one is a failure."""
    checked = check_without_drivers(servo_root)
    assert checked.code == 0, "\n".join(checked.lines)
    assert line_with(checked.lines, "[warn]", "empty")
    assert not any(line.startswith("settings") for line in checked.lines)  # nothing compared
    (servo_root / "adjust.d" / "notes.txt").write_text("")
    checked = check_without_drivers(servo_root)
    assert checked.code == 0
    assert line_with(checked.lines, "[warn]", "no driver would run")
    (servo_root / "adjust.d" / "notes.txt").unlink()
    (servo_root / "adjust.d").rmdir()
    checked = check_without_drivers(servo_root)
    assert checked.code == 1
    assert line_with(checked.lines, "[FAIL]", "does not exist")


@pytest.mark.unit
def test_a_program_without_its_execute_bit_is_noted_on_stderr_and_in_the_record_too(
        servo_root: Path) -> None:
    """As every command that runs drivers notes it (entry/launch.py's _job), besides the
    report's [warn]: on stderr, and in what the run's record keeps (Output.said)."""
    program = servo_root / "adjust.d" / "40-noexec"
    program.write_text("#!/bin/sh\necho\n")
    program.chmod(0o644)
    checked = check_without_drivers(servo_root)
    assert line_with(checked.lines, "[warn]", "40-noexec", "chmod +x")
    (said,) = checked.said
    assert said.startswith("warning: adjust.d/40-noexec is not executable")
    assert checked.stderr == f"servo-agg: {said}\n"


@pytest.mark.unit
def test_config_summary_stays_bounded_whatever_the_names(servo_root: Path) -> None:
    """A config.yaml with thousands of sections or a driver name of 100 k characters: the
    report quotes them cut, on one line each."""
    long_name = "n" * 100_000
    sections = "".join(f"section{i}: {{}}\n" for i in range(2_000))
    (servo_root / "config.yaml").write_text(
        f"aggregator:\n  drivers:\n    ? {long_name}\n    : {{weight: 2}}\n{sections}")
    report = Report()
    config = check_config(report, servo_root)
    check_drivers_dir(report, servo_root, config)
    assert max(len(line) for line in report.lines) < 1200
    assert any("no such file here" in line for line in report.lines)


# -- what the report counts, what it cannot show, what it runs on (#16 points 4-6) -----

@pytest.mark.unit
def test_the_report_says_what_it_cannot_show_and_what_it_runs_on(servo_root: Path,
                                                                 tmp_path: Path) -> None:
    healthy_root(servo_root)
    env_driver = write_driver(servo_root, "30-env", "print('never run here')\n",
                              shebang="#!/usr/bin/env pydriver")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pydriver").symlink_to(sys.executable)
    report = Report()
    check_runtime(report, {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
                  [Driver("30-env", env_driver)])
    check_not_shown(report, FrontEnd.ADJUST)
    lines = report.lines
    assert line_with(lines, "[note]", "never an adjust")
    assert line_with(lines, "[ok]", f"servo-agg runs on Python {platform.python_version()}")
    assert line_with(lines, "[ok]", "trio ", "(declared minimum 0.25)")
    assert line_with(lines, "[ok]", "PyYAML ", "(declared minimum 6.0.1)")
    assert line_with(lines, "[ok]", "#!/usr/bin/env pydriver (30-env) runs "
                                    f"{bin_dir / 'pydriver'} (-> ")
    assert line_with(lines, "#!/usr/bin/env python3 (no driver here names it)")


@pytest.mark.unit
def test_a_missing_interpreter_is_named(servo_root: Path) -> None:
    """The runtime section reads the drivers' #! lines and looks on servo-agg's PATH
    (that --check passes it the real environment, through ./adjust:
    test_a_broken_root_s_check_json_is_one_document_of_the_whole_report)."""
    path = write_driver(servo_root, "02redis", "print('never')\n",
                        shebang="#!/usr/bin/env pyhton3")
    report = Report()
    check_runtime(report, {"PATH": os.environ["PATH"]}, [Driver("02redis", path)])
    assert line_with(report.lines, "[FAIL]", "#!/usr/bin/env pyhton3 (02redis): no pyhton3 "
                                             "on the drivers' PATH")
    assert report.problems == 1  # servo would not work: --check exits 1


@pytest.mark.unit
def test_dependencies_below_the_declared_minimum_fail(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from aggregator.tools import check, runtime

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\ntrio>=0.25\nPyYAML>=6.0.1\n")
    monkeypatch.setattr(runtime, "installed",
                        {"trio": (True, "0.22.2"), "PyYAML": (False, None)}.__getitem__)
    monkeypatch.setattr(check, "dependencies",
                        lambda: runtime.dependencies(requirements))
    report = Report()
    check.check_runtime(report, {"PATH": ""}, [])
    assert line_with(report.lines, "[FAIL]", "trio 0.22.2 is below the declared minimum "
                                             "0.25", "pip install --upgrade 'trio>=0.25'")
    assert line_with(report.lines, "[FAIL]", "PyYAML is not installed",
                     "pip install 'PyYAML>=6.0.1'")
    assert report.problems == 2


@pytest.mark.unit
@pytest.mark.parametrize(("older", "newer"), [
    ("0.22.2", "0.25"), ("0.25", "0.25.1"), ("6.0", "6.0.1"), ("0.9", "0.10"),
    ("0.25.0rc1", "0.26")])
def test_versions_compare_by_release_numbers(older: str, newer: str) -> None:
    from aggregator.tools.runtime import version_key

    assert version_key(older) < version_key(newer)
    assert version_key("0.25") == version_key("0.25.0")


@pytest.mark.unit
def test_the_declared_minimums_are_the_packages_one_list() -> None:
    """pyproject.toml reads its dependencies from aggregator/requirements.txt (one list),
    and the installed metadata says the same."""
    import importlib.metadata
    import tomllib

    from aggregator.tools.runtime import REQUIREMENTS, declared_minimums
    from tests.support import REPO

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "dependencies" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["dependencies"] == {
        "file": ["aggregator/requirements.txt"]}
    assert REQUIREMENTS == REPO / "aggregator" / "requirements.txt"
    wanted = {f"{name}>={version}" for name, version in declared_minimums().items()}
    requires = importlib.metadata.requires("servo-agg") or []
    assert wanted == {r for r in requires if "extra ==" not in r}


def finding(checks: list[dict[str, str]], status: str, *parts: str) -> dict[str, str]:
    """The finding of --json's report with `status` whose subject and detail say `parts`."""
    for check in checks:
        if check["status"] == status and all(p in f"{check['subject']} {check['detail']}"
                                             for p in parts):
            return check
    raise AssertionError(f"no {status} finding with {parts!r} in:\n"
                         + "\n".join(map(str, checks)))


@pytest.mark.e2e
async def test_a_broken_root_s_check_json_is_one_document_of_the_whole_report(
        servo_root: Path, tag: str, tmp_path: Path) -> None:
    """Every line of the text report is a finding in it (its exit code is the report's,
    with or without --json: test_the_exit_code_is_the_report_s_with_or_without_json).
    Also: --check reads servo's real environment (its T, and the PATH a driver's
    `#!/usr/bin/env` line is looked up on), and reports on the root's permissions."""
    healthy_root(servo_root)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "shdriver").symlink_to("/bin/sh")
    write_driver(servo_root, "30-bad", "exit 2\n", shebang="#!/usr/bin/env shdriver",
                 mode=0o777)
    env = adjust_env(tag, OPTUNE_IO_TIMEOUT="3")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    run = await run_adjust(servo_root, "--check", "--json", "app", tag=tag, env=env)
    assert run.returncode == 1
    (report,) = run.json_lines
    assert report["result"] == "fail"
    assert report["servo_root"] == str(servo_root) and report["front_end"] == "adjust"
    checks = report["checks"]
    assert all(set(c) == {"name", "status", "subject", "detail"} for c in checks)
    assert {c["status"] for c in checks} <= {"ok", "warn", "fail"}
    assert sum(c["status"] == "fail" for c in checks) == report["problems"]
    assert {"name": "driver-file", "status": "ok", "subject": "10-web",
            "detail": "driver (executable regular file)"} in checks
    assert finding(checks, "ok", "20-cache", "--query")["name"] == "query"
    assert finding(checks, "fail", "30-bad", "--info failed: info: exited with code 2"
                   )["name"] == "info"
    finding(checks, "ok", "OPTUNE_IO_TIMEOUT=3", "at most 2 s")  # a note
    finding(checks, "ok", f"#!/usr/bin/env shdriver (30-bad) runs {bin_dir / 'shdriver'} (-> ")
    # the security section is in the report (what it finds: test_check_security.py)
    assert finding(checks, "warn", "driver 30-bad is writable by its group and others"
                   )["name"].startswith("security")


@pytest.mark.unit
def test_calls_the_checks_interruption_cut_are_not_checked_and_no_problem() -> None:
    """SIGTERM during --check: the call it killed and those it never started say nothing
    about the root; a call that had failed on its own before still counts."""
    from aggregator.protocol.vocabulary import Reason
    from aggregator.supervision.spec import CallEnd, CallOutcome, Problem, question

    def outcome(driver: Driver, call: Call, end: CallEnd, **kw: Any) -> CallOutcome:
        return CallOutcome(question(driver, call, "app"), end=end, **kw)

    a, b = Driver("10-a", Path("/fake/10-a")), Driver("20-b", Path("/fake/20-b"))
    not_started = Problem(Reason.TERMINATED, "not started: servo-agg was stopping")
    report = Report()
    assert check_probe(report, Probe(
        a, outcome(a, Call.INFO, CallEnd.EXITED, exit_code=3),
        outcome(a, Call.QUERY, CallEnd.NOT_STARTED, problem=not_started)), None) is None
    assert check_probe(report, Probe(
        b, outcome(b, Call.INFO, CallEnd.STOPPED, exit_code=-15),
        outcome(b, Call.QUERY, CallEnd.NOT_STARTED, problem=not_started)), None) is None
    assert report.problems == 1  # 10-a's --info exited 3 on its own
    assert line_with(report.lines, "[FAIL]", "--info failed")
    assert [line.strip() for line in report.lines if "not checked" in line] == [
        "[--]   --query not checked: the check was interrupted",
        "[--]   --info not checked: the check was interrupted",
        "[--]   --query not checked: the check was interrupted"]
