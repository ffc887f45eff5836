"""The aggregator's own `aggregator:` section of config.yaml: every key, every error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aggregator.limits import (
    DEFAULT_CANCEL_GRACE,
    DEFAULT_KILL_GRACE,
    DEFAULT_PROGRESS_INTERVAL_SECONDS,
)
from aggregator.protocol.errors import AggregatorError
from aggregator.root.config import (
    AggregatorConfig,
    DriverPolicy,
    load_config,
    load_document,
    parse_section,
)
from tests.support import (
    REPO,
    TAG_VAR,
    launch_before_trio,
    run_adjust,
    simple_driver,
    write_driver,
)


@pytest.mark.unit
def test_absent_file_section_or_empty_section_means_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == AggregatorConfig()
    (tmp_path / "config.yaml").write_text("web:\n  replicas: 3\n")
    assert load_config(tmp_path) == AggregatorConfig()
    (tmp_path / "config.yaml").write_text("aggregator:\n")
    assert load_config(tmp_path) == AggregatorConfig()
    (tmp_path / "config.yaml").write_text("")
    assert load_config(tmp_path) == AggregatorConfig()


@pytest.mark.unit
def test_defaults() -> None:
    config = AggregatorConfig()
    assert config.drivers_dir == "adjust.d"
    assert config.kill_grace == DEFAULT_KILL_GRACE
    assert config.cancel_grace == DEFAULT_CANCEL_GRACE
    assert config.on_failure == "continue"
    assert config.parallel_queries is False
    assert config.progress_interval == DEFAULT_PROGRESS_INTERVAL_SECONDS == 0.25
    assert config.measure.progress_interval == 0.25
    assert config.policy("anything") == DriverPolicy(weight=1.0, enabled=True)
    assert config.disabled == frozenset()


@pytest.mark.unit
def test_every_key(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "aggregator:\n"
        "  drivers_dir: drivers\n"
        "  kill_grace: 2\n"
        "  cancel_grace: 1.5\n"
        "  on_failure: rollback\n"
        "  parallel_queries: true\n"
        "  progress_interval: 2\n"
        "  drivers:\n"
        "    10-web: {weight: 3}\n"
        "    20-cache: {enabled: false}\n"
        "    30-db: {weight: 0.5, enabled: true}\n"
        "    40-empty:\n"
        "web:\n  anything: goes\n"
    )
    config = load_config(tmp_path)
    assert config.drivers_dir == "drivers"
    assert config.kill_grace == 2.0
    assert config.cancel_grace == 1.5
    assert config.on_failure == "rollback"
    assert config.parallel_queries is True
    assert config.progress_interval == 2.0
    assert config.measure.progress_interval == 2.0  # one key for both front-ends
    assert config.policy("10-web") == DriverPolicy(3.0, True)
    assert config.policy("20-cache") == DriverPolicy(1.0, False)
    assert config.policy("30-db") == DriverPolicy(0.5, True)
    assert config.policy("40-empty") == DriverPolicy(1.0, True)
    assert config.disabled == frozenset({"20-cache"})


@pytest.mark.unit
@pytest.mark.parametrize("choice", ["continue", "stop", "rollback"])
def test_on_failure_choices(choice: str) -> None:
    assert parse_section({"on_failure": choice}).on_failure == choice


@pytest.mark.unit
@pytest.mark.parametrize(("section", "names", "says"), [
    ({"drivers_directory": "x"}, "aggregator.drivers_directory", "unknown key"),
    ({"drivers_dir": 3}, "aggregator.drivers_dir", "non-empty path"),
    ({"drivers_dir": ""}, "aggregator.drivers_dir", "non-empty path"),
    ({"kill_grace": "2s"}, "aggregator.kill_grace", "number of seconds"),
    ({"kill_grace": True}, "aggregator.kill_grace", "number of seconds"),
    ({"kill_grace": -1}, "aggregator.kill_grace", "from 0 to 60, not -1"),
    ({"kill_grace": 1e9}, "aggregator.kill_grace", "from 0 to 60, not 1000000000.0"),
    ({"kill_grace": 60.5}, "aggregator.kill_grace", "from 0 to 60"),
    ({"kill_grace": 10 ** 400}, "aggregator.kill_grace", "from 0 to 60, not 1000"),
    ({"cancel_grace": 3600}, "aggregator.cancel_grace", "from 0 to 60, not 3600"),
    ({"cancel_grace": -0.1}, "aggregator.cancel_grace", "from 0 to 60"),
    ({"kill_grace": float("inf")}, "aggregator.kill_grace", "finite"),
    ({"cancel_grace": [1]}, "aggregator.cancel_grace", "number of seconds"),
    ({"cancel_grace": float("nan")}, "aggregator.cancel_grace", "finite"),
    ({"on_failure": "abort"}, "aggregator.on_failure", "continue, stop, rollback"),
    ({"on_failure": True}, "aggregator.on_failure", "continue, stop, rollback"),
    ({"progress_interval": "1s"}, "aggregator.progress_interval", "number of seconds"),
    ({"progress_interval": False}, "aggregator.progress_interval", "number of seconds"),
    ({"progress_interval": -0.25}, "aggregator.progress_interval", "from 0 to 60, not -0.25"),
    ({"progress_interval": 61}, "aggregator.progress_interval", "from 0 to 60, not 61"),
    ({"progress_interval": float("nan")}, "aggregator.progress_interval", "finite"),
    ({"measure": {"progress_interval": 1}}, "aggregator.measure.progress_interval",
     "unknown key"),
    ({"parallel_queries": "sometimes"}, "aggregator.parallel_queries", "true or false"),
    ({"parallel_queries": 1}, "aggregator.parallel_queries", "true or false"),
    ({"drivers": ["10-web"]}, "aggregator.drivers", "must map driver file names"),
    ({"drivers": {"10-web": 3}}, "aggregator.drivers.10-web", "must be a mapping"),
    ({"drivers": {"10-web": {"wieght": 3}}}, "aggregator.drivers.10-web.wieght",
     "unknown key"),
    ({"drivers": {"10-web": {"weight": 0}}}, "aggregator.drivers.10-web.weight",
     "positive number"),
    ({"drivers": {"10-web": {"weight": -2}}}, "aggregator.drivers.10-web.weight",
     "positive number"),
    ({"drivers": {"10-web": {"weight": "heavy"}}}, "aggregator.drivers.10-web.weight",
     "positive number"),
    ({"drivers": {"10-web": {"weight": True}}}, "aggregator.drivers.10-web.weight",
     "positive number"),
    ({"drivers": {"10-web": {"weight": float("inf")}}}, "aggregator.drivers.10-web.weight",
     "positive number"),
    ({"drivers": {"10-web": {"weight": float("nan")}}}, "aggregator.drivers.10-web.weight",
     "positive number"),
    ({"drivers": {"10-web": {"weight": 1e308}}}, "aggregator.drivers.10-web.weight",
     "positive number up to 1000000, not 1e+308"),
    ({"drivers": {"10-web": {"weight": 10 ** 400}}}, "aggregator.drivers.10-web.weight",
     "positive number up to 1000000"),
    ({"drivers": {"10-web": {"enabled": "no"}}}, "aggregator.drivers.10-web.enabled",
     "true or false"),
    ({"drivers": {"10-web": {"enabled": 0}}}, "aggregator.drivers.10-web.enabled",
     "true or false"),
])
def test_each_bad_value_is_an_error_naming_its_key(section: dict[str, Any], names: str,
                                                   says: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_section(section)
    assert caught.value.reason == "bad-config"
    assert f"config.yaml: {names}:" in caught.value.message
    assert says in caught.value.message


@pytest.mark.unit
@pytest.mark.parametrize("key", ["kill_grace", "cancel_grace"])
def test_grace_periods_may_be_zero_to_a_minute(key: str) -> None:
    """The documented range, ends included (a grace of 0 means SIGKILL at once)."""
    assert getattr(parse_section({key: 0}), key) == 0.0
    assert getattr(parse_section({key: 60}), key) == 60.0
    assert isinstance(getattr(parse_section({key: 60}), key), float)


@pytest.mark.unit
def test_progress_interval_may_be_zero_to_a_minute_and_measure_shares_it() -> None:
    """0: every line relayed; the measure section takes the aggregator's own."""
    assert parse_section({"progress_interval": 0}).progress_interval == 0.0
    top = parse_section({"progress_interval": 60, "measure": {"kill_grace": 1}})
    assert top.progress_interval == top.measure.progress_interval == 60.0
    assert isinstance(top.progress_interval, float)


@pytest.mark.unit
def test_weights_may_be_tiny_or_up_to_a_million() -> None:
    drivers = parse_section({"drivers": {"a": {"weight": 1e-9}, "b": {"weight": 1e6}}})
    assert drivers.policy("a").weight == 1e-9
    assert drivers.policy("b").weight == 1e6




@pytest.mark.unit
def test_unknown_key_error_lists_the_known_ones() -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_section({"kill_grace": 1, "paralel_queries": True})
    assert "aggregator.paralel_queries" in caught.value.message
    assert "parallel_queries" in caught.value.message.split("known:")[1]


@pytest.mark.unit
def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("aggregator: [on_failure, stop]\n")
    with pytest.raises(AggregatorError) as caught:
        load_config(tmp_path)
    assert "aggregator: must be a mapping" in caught.value.message


@pytest.mark.unit
def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("- just\n- a list\n")
    with pytest.raises(AggregatorError) as caught:
        load_document(tmp_path)
    assert str(tmp_path / "config.yaml") in caught.value.message
    assert "must be a mapping of sections" in caught.value.message


@pytest.mark.unit
def test_yaml_that_does_not_parse_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "web:\n"
        "  replicas: 3\n"
        "aggregator:\n"
        "  on_failure: [stop\n"
        "  kill_grace: 1\n"
    )
    with pytest.raises(AggregatorError) as caught:
        load_config(tmp_path)
    message = caught.value.message
    assert caught.value.reason == "bad-config"
    assert str(tmp_path / "config.yaml") in message
    assert "line 5" in message
    assert "not valid YAML" in message


@pytest.mark.unit
def test_tab_indentation_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("aggregator:\n\ton_failure: stop\n")
    with pytest.raises(AggregatorError) as caught:
        load_config(tmp_path)
    assert "line 2" in caught.value.message


@pytest.mark.unit
def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_bytes(b"aggregator:\n  drivers_dir: \xff\xfe\n")
    with pytest.raises(AggregatorError) as caught:
        load_config(tmp_path)
    assert "cannot be read" in caught.value.message


@pytest.mark.e2e
async def test_adjust_refuses_a_bad_section_with_a_json_error(servo_root: Path,
                                                              tag: str) -> None:
    """End to end: servo hears a bad-config failure naming the key; no driver runs. (The
    launch loads config.yaml alike for every command, before it reads a request:
    test_config_file.py; every way it is refused: the unit tests here and in
    test_config_mistakes.py.)"""
    write_driver(servo_root, "01web", simple_driver(
        "web", {"cpu": {"value": 1, "min": 0, "max": 4}}, log="web.log"))
    (servo_root / "config.yaml").write_text("aggregator:\n  on_failure: retry\n")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=(
        '{"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}}}'))
    assert run.returncode == 1
    assert len(run.lines) == 1
    assert run.final["status"] == "failed"
    assert run.final["reason"] == "bad-config"
    assert "aggregator.on_failure" in run.final["message"]
    assert "servo-agg: error (bad-config): " in run.stderr
    assert not (servo_root / "web.log").exists()


@pytest.mark.unit
def test_drivers_dir_is_used(tmp_path: Path) -> None:
    """The launch, in the test's process: the job is made of the drivers found there
    (--info's, found before the launch: test_info.py; config.yaml's drivers section
    through ./adjust: test_policies.py's disabled driver)."""
    (tmp_path / "config.yaml").write_text("aggregator:\n  drivers_dir: mine\n")
    write_driver(tmp_path, "01web", "exit 3\n", shebang="#!/bin/sh", folder="mine")
    write_driver(tmp_path, "02cache", "exit 3\n", shebang="#!/bin/sh")  # in adjust.d
    launched = launch_before_trio(tmp_path, ["--query", "app"])
    assert launched.job is not None, launched.stderr
    assert [d.path for d in launched.job.drivers] == [tmp_path / "mine" / "01web"]


@pytest.mark.e2e
def test_config_without_an_aggregator_section_is_not_parsed(tmp_path: Path, tag: str) -> None:
    """Most servo roots have no aggregator section: they must not pay for importing yaml."""
    env = {**os.environ, TAG_VAR: tag}
    (tmp_path / "config.yaml").write_text("web:\n  replicas: 3\n# aggregator: (a comment)\n")
    code = ("import sys; from pathlib import Path; from aggregator.root.config import load_config; "
            f"c = load_config(Path({str(tmp_path)!r})); "
            "print(c.on_failure, 'yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=env, check=True).stdout.split()
    assert out == ["continue", "False"]
    (tmp_path / "config.yaml").unlink()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=env, check=True).stdout.split()
    assert out == ["continue", "False"]  # no config.yaml at all: nothing to parse either
    (tmp_path / "config.yaml").write_text("aggregator:\n  on_failure: stop\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env=env, check=True).stdout.split()
    assert out == ["stop", "True"]
