"""Config mistakes that used to pass silently (#16 point 3): a key written twice in the
aggregator's section is bad-config for every command that reads it, naming the key and
both lines; a top-level section whose name is `aggregator` mistyped is a warning with
"did you mean"."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregator.protocol.errors import AggregatorError
from aggregator.root.config import AggregatorConfig, load_config
from aggregator.root.config_probe import misspelled_sections, top_level_names
from aggregator.tools.check import Report, check_config
from tests.support import run_adjust, simple_driver, write_driver

CPU = {"value": 1, "min": 0, "max": 4}


def refused(root: Path, text: str) -> str:
    (root / "config.yaml").write_text(text)
    with pytest.raises(AggregatorError) as caught:
        load_config(root)
    assert caught.value.reason == "bad-config"
    return caught.value.message


@pytest.mark.unit
@pytest.mark.parametrize(("text", "says"), [
    ("aggregator:\n  on_failure: stop\n  kill_grace: 1\n  on_failure: rollback\n",
     "aggregator.on_failure is written twice, on lines 2 and 4"),
    ("aggregator:\n  drivers:\n    10-web: {weight: 2, weight: 3}\n",
     "aggregator.drivers.10-web.weight is written twice, both on line 3"),
    ("aggregator:\n  drivers:\n    10-web: {weight: 2}\n    10-web: {enabled: false}\n",
     "aggregator.drivers.10-web is written twice, on lines 3 and 4"),
    ("aggregator:\n  measure:\n    drivers_dir: m\n    drivers_dir: n\n",
     "aggregator.measure.drivers_dir is written twice, on lines 3 and 4"),
    ("aggregator: {on_failure: stop}\nweb: {}\naggregator: {on_failure: rollback}\n",
     "aggregator is written twice, on lines 1 and 3"),
    ('aggregator:\n  on_failure: stop\n  "on_failure": rollback\n',
     "aggregator.on_failure is written twice, on lines 2 and 3"),
])
def test_a_key_written_twice_names_the_key_and_both_lines(tmp_path: Path, text: str,
                                                          says: str) -> None:
    message = refused(tmp_path, text)
    assert says in message, message
    assert "keep one" in message


@pytest.mark.unit
@pytest.mark.parametrize(("text", "says"), [
    # one driver name after str(): YAML keeps both keys, the policies keep the second
    ('aggregator:\n  drivers:\n    10: {weight: 2, group: a}\n    "10": {weight: 3}\n',
     'aggregator.drivers.10 is written twice, on lines 3 and 4, as 10 and "10"'),
    ("aggregator:\n  measure:\n    drivers:\n      '7': {enabled: false}\n      7: {}\n",
     "aggregator.measure.drivers.7 is written twice, on lines 4 and 5, as '7' and 7"),
    # one value: YAML itself keeps only the second (same tag, other spelling; two tags)
    ("aggregator:\n  drivers:\n    0x10: {weight: 2}\n    16: {weight: 3}\n",
     "aggregator.drivers.16 is written twice, on lines 3 and 4, as 0x10 and 16"),
    ("aggregator:\n  limits:\n    pids: 5\n  drivers:\n    1: {}\n    true: {}\n",
     "aggregator.drivers.1 is written twice, on lines 5 and 6, as 1 and true"),
])
def test_keys_spelled_apart_but_read_as_one_are_written_twice(tmp_path: Path, text: str,
                                                              says: str) -> None:
    """#16.3 for keys that differ only in their YAML type or spelling: servo-agg names
    drivers (and every key) by str(), so `10` and `"10"` are one driver's policy twice."""
    message = refused(tmp_path, text)
    assert says in message, message
    assert "keep one" in message


@pytest.mark.unit
def test_check_fails_a_driver_named_twice_by_type(tmp_path: Path) -> None:
    from aggregator.tools.check import Report, check_config

    (tmp_path / "config.yaml").write_text(
        'aggregator:\n  drivers:\n    10: {weight: 2}\n    "10": {weight: 3}\n')
    report = Report()
    assert check_config(report, tmp_path) == AggregatorConfig()  # the defaults, said so
    assert report.problems == 1
    assert any("[FAIL]" in line and "aggregator.drivers.10 is written twice, on lines 3 "
               "and 4" in line for line in report.lines), report.lines


@pytest.mark.unit
def test_drivers_sections_and_yaml_merges_are_not_judged(tmp_path: Path) -> None:
    """A driver's own section is its business; `<<: *base` overrides on purpose."""
    (tmp_path / "config.yaml").write_text(
        "web:\n  replicas: 1\n  replicas: 2\n"
        "base: &base {weight: 2}\n"
        "aggregator:\n  drivers:\n    a: *base\n    b: *base\n"
        "    c:\n      <<: *base\n      weight: 3\n")
    config = load_config(tmp_path)
    assert [config.policy(n).weight for n in "abc"] == [2, 2, 3]


@pytest.mark.unit
def test_top_level_names_cheaply() -> None:
    assert top_level_names("# c\nagregator:\n  x: 1\n'web': {}\n\"db\" : 1\n- item\n"
                           "---\nplain\n") == ["agregator", "web", "db"]


@pytest.mark.unit
@pytest.mark.parametrize(("name", "close"), [
    ("Aggregator", True), ("AGGREGATOR", True), ("agregator", True), ("aggregater", True),
    ("aggreagtor", True),  # two letters swapped: one edit
    ("agregater", True), ("aggregators", True), ("aggregator", False),
    ("agg", False), ("aggregation_x", False), ("web", False), ("gregator", True),
    ("aggrgtr", False),  # three edits away
])
def test_what_is_close_to_aggregator(name: str, close: bool) -> None:
    assert misspelled_sections(f"{name}:\n  on_failure: rollback\n") == ([name] if close
                                                                          else [])


@pytest.mark.unit
@pytest.mark.parametrize("name", ["agregator", "Aggregator"])
def test_a_misspelled_section_is_warned_of_though_yaml_is_not_loaded(tmp_path: Path,
                                                                     name: str) -> None:
    (tmp_path / "config.yaml").write_text(f"{name}:\n  on_failure: rollback\n")
    warned: list[str] = []
    assert load_config(tmp_path, warned.append) == AggregatorConfig()  # as before: ignored
    (warning,) = warned
    assert f"'{name}' looks like a misspelling: did you mean aggregator?" in warning


@pytest.mark.e2e
async def test_a_command_warns_on_stderr(servo_root: Path, tag: str) -> None:
    """And runs. (A key written twice refuses the run, as every bad config.yaml does
    through ./adjust: test_config.py's test_adjust_refuses_a_bad_section_with_a_json_error.)"""
    write_driver(servo_root, "01web", simple_driver("web", {"cpu": CPU}))
    (servo_root / "config.yaml").write_text("agregator:\n  on_failure: rollback\n")
    run = await run_adjust(servo_root, "--query", "app", tag=tag)
    assert run.returncode == 0
    assert "servo-agg: warning: config.yaml: the top-level section 'agregator' looks " \
           "like a misspelling: did you mean aggregator?" in run.stderr


def config_report(root: Path, text: str) -> Report:
    """--check's config.yaml section on `text` (that --check goes on past a config it
    refuses to run with, through ./adjust: test_check.py's
    test_a_broken_policy_is_a_problem_and_the_drivers_are_checked_with_the_defaults)."""
    (root / "config.yaml").write_text(text)
    report = Report()
    check_config(report, root)
    return report


@pytest.mark.unit
def test_check_fails_a_key_written_twice(tmp_path: Path) -> None:
    report = config_report(tmp_path, "aggregator:\n  on_failure: stop\n  on_failure: rollback\n")
    assert any("[FAIL]" in line and "aggregator.on_failure is written twice" in line
               for line in report.lines), report.lines
    assert report.problems == 1


@pytest.mark.unit
def test_check_warns_of_a_misspelled_section(tmp_path: Path) -> None:
    report = config_report(tmp_path, "Aggregator:\n  on_failure: rollback\n")
    assert any("[warn]" in line and "did you mean aggregator?" in line
               for line in report.lines), report.lines
    assert report.problems == 0  # a warning, not a reason to fail the check
