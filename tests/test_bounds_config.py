"""config.yaml's bounds on every driver: `io_timeout` (T where servo sets none), and the
one value for T the rest of servo-agg uses, with where it came from."""

from __future__ import annotations

from typing import Any

import pytest

from aggregator.protocol.environment import (
    CONFIG_IO_TIMEOUT,
    IO_TIMEOUT_VAR,
    ServoEnvironment,
    read_environment,
)
from aggregator.protocol.errors import AggregatorError
from aggregator.root.config import (
    AggregatorConfig,
    DriverBounds,
    ResourceLimits,
    RunBounds,
    parse_section,
)

pytestmark = pytest.mark.unit


def bad_config(section: dict[str, Any]) -> str:
    with pytest.raises(AggregatorError) as caught:
        parse_section(section)
    assert caught.value.reason == "bad-config"
    return caught.value.message


# -- io_timeout ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [(5, 5.0), (1.5, 1.5), (604800, 604800.0),
                                                (0, None), (None, None)])
def test_io_timeout_takes_seconds_as_optune_io_timeout_does(value: Any,
                                                            seconds: float | None) -> None:
    assert parse_section({"io_timeout": value}).io_timeout == seconds
    assert AggregatorConfig().io_timeout is None  # off unless set


@pytest.mark.parametrize("value", [-1, 604801, 1e400, float("nan"), "5", True, [5]])
def test_a_bad_io_timeout_is_bad_config_naming_the_key(value: Any) -> None:
    message = bad_config({"io_timeout": value})
    assert message.startswith("config.yaml: aggregator.io_timeout: must be a ")


def test_servos_timeout_wins_and_config_stands_in_only_where_servo_sets_none() -> None:
    servo = read_environment({"OPTUNE_IO_TIMEOUT": "10"})
    assert servo.with_fallback(3.0, CONFIG_IO_TIMEOUT) == servo
    assert servo.io_timeout_source == IO_TIMEOUT_VAR
    for unset in ({}, {"OPTUNE_IO_TIMEOUT": ""}, {"OPTUNE_IO_TIMEOUT": "0"}):
        fallen = read_environment(unset).with_fallback(3.0, CONFIG_IO_TIMEOUT)
        assert (fallen.io_timeout, fallen.line_limit, fallen.io_timeout_source) == (
            3.0, 2.0, CONFIG_IO_TIMEOUT)
    none = ServoEnvironment(None, "all")
    assert none.with_fallback(None, CONFIG_IO_TIMEOUT) == none


# -- limits ---------------------------------------------------------------------------------

MIB = 1 << 20


@pytest.mark.parametrize(("memory", "size"), [
    ("512M", 512 * MIB), ("64m", 64 * MIB), ("2G", 2 << 30), ("4096K", 4 * MIB),
    (" 1G ", 1 << 30), (1048576, MIB), ("1048576", MIB), ("1024G", 1 << 40),
])
def test_memory_is_bytes_with_an_optional_binary_suffix(memory: Any, size: int) -> None:
    assert parse_section({"limits": {"memory": memory}}).limits == ResourceLimits(memory=size)


@pytest.mark.parametrize("memory", ["1.5G", "512MB", "512 M", "1T", "-1M", "M", "", "1023K",
                                    1048575, "1025G", True, 5.0, "9" * 4000, [512],
                                    "4096\u212a"])  # the Kelvin sign, a K to IGNORECASE
def test_a_bad_memory_limit_is_bad_config_naming_the_key(memory: Any) -> None:
    message = bad_config({"limits": {"memory": memory}})
    assert message.startswith("config.yaml: aggregator.limits.memory: must be a number of "
                              "bytes with an optional K, M or G (binary: 512M is 512 MiB), "
                              "from 1M to 1024G, not ")


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("pids", 0, "must be a whole number of processes from 1 to 4194304, not 0"),
    ("pids", 4194305, "must be a whole number of processes from 1 to 4194304"),
    ("pids", 1.5, "must be a whole number of processes"),
    ("pids", "512", "must be a whole number of processes"),
    ("pids", True, "must be a whole number of processes"),
    ("cpu", 0, "must be a number of CPUs from 0.01 to 1024 (1.5 is one and a half), not 0"),
    ("cpu", 0.001, "must be a number of CPUs from 0.01 to 1024"),
    ("cpu", 1025, "must be a number of CPUs"),
    ("cpu", float("nan"), "must be a number of CPUs"),
    ("cpu", "1.5", "must be a number of CPUs"),
    ("cpu", False, "must be a number of CPUs"),
])
def test_bad_pids_and_cpu_limits_are_bad_config_naming_the_key(key: str, value: Any,
                                                               problem: str) -> None:
    assert bad_config({"limits": {key: value}}).startswith(
        f"config.yaml: aggregator.limits.{key}: {problem}")


@pytest.mark.parametrize(("section", "key", "problem"), [
    ({"limits": {"memroy": "1G"}}, "aggregator.limits.memroy",
     "unknown key (known: memory, pids, cpu)"),
    ({"limits": "512M"}, "aggregator.limits", "must be a mapping with optional memory, "
                                              "pids, cpu"),
    ({"drivers": {"10-web": {"limits": {"pids": 0}}}}, "aggregator.drivers.10-web.limits.pids",
     "must be a whole number"),
    ({"measure": {"drivers": {"10-ab": {"limits": {"cpu": -1}}}}},
     "aggregator.measure.drivers.10-ab.limits.cpu", "must be a number of CPUs"),
    ({"measure": {"limits": {"cpu": 1}}}, "aggregator.measure.limits", "unknown key"),
])
def test_limits_are_checked_wherever_they_are_set(section: dict[str, Any], key: str,
                                                  problem: str) -> None:
    assert bad_config(section).startswith(f"config.yaml: {key}: {problem}")


def test_limits_are_off_unless_set() -> None:
    config = AggregatorConfig()
    assert config.bounds("10-web") == DriverBounds()
    assert config.measure.bounds("10-ab") == DriverBounds()
    assert DriverBounds().limits.limited == ()


def test_a_drivers_own_limits_replace_the_global_ones_key_by_key_in_both_front_ends() -> None:
    config = parse_section({
        "limits": {"memory": "512M", "pids": 512, "cpu": 1.5},
        "drivers": {"10-web": {"limits": {"memory": "1G"}}, "20-db": {"weight": 2}},
        "measure": {"drivers": {"10-ab": {"limits": {"cpu": 4, "pids": 64}}}},
    })
    everyone = ResourceLimits(memory=512 * MIB, pids=512, cpu=1.5)
    assert config.bounds("10-web").limits == ResourceLimits(memory=1 << 30, pids=512, cpu=1.5)
    assert config.bounds("20-db").limits == everyone  # a policy without limits of its own
    assert config.bounds("30-other").limits == everyone  # no policy at all
    assert config.measure.bounds("10-ab").limits == ResourceLimits(memory=512 * MIB, pids=64,
                                                                   cpu=4.0)
    assert config.measure.bounds("20-prom").limits == everyone  # the global is for both
    assert config.measure.bounds("10-web").limits == everyone  # adjust's policy is not its
    assert everyone.limited == ("memory", "pids", "cpu")


# -- deadline -------------------------------------------------------------------------------

def test_a_deadline_is_off_unless_set_and_a_drivers_own_replaces_the_global_one() -> None:
    assert AggregatorConfig().bounds("10-web").deadline is None
    config = parse_section({"deadline": 600,
                            "drivers": {"10-web": {"deadline": 30}, "20-db": {"weight": 2}},
                            "measure": {"drivers": {"10-ab": {"deadline": 1.5}}}})
    assert config.bounds("10-web").deadline == 30.0
    assert config.bounds("20-db").deadline == 600.0
    assert config.measure.bounds("10-ab").deadline == 1.5
    assert config.measure.bounds("20-prom").deadline == 600.0  # the global is for both
    assert parse_section({"drivers": {"10-web": {"deadline": 30}}}).bounds("20-db") == (
        DriverBounds())


@pytest.mark.parametrize("key", ["deadline", "drivers.10-web.deadline",
                                 "measure.drivers.10-ab.deadline"])
@pytest.mark.parametrize("value", [0, -1, 604801, float("nan"), float("inf"), "30", True])
def test_a_bad_deadline_is_bad_config_naming_the_key(key: str, value: Any) -> None:
    section: dict[str, Any] = {"deadline": value}
    if key.startswith("drivers."):
        section = {"drivers": {"10-web": {"deadline": value}}}
    elif key.startswith("measure."):
        section = {"measure": {"drivers": {"10-ab": {"deadline": value}}}}
    assert bad_config(section).startswith(
        f"config.yaml: aggregator.{key}: must be a number of seconds above 0 and up to "
        "604800 (absent: no deadline), not ")


def test_a_runs_bounds_name_the_limits_some_driver_has_and_default_to_none() -> None:
    config = parse_section({"drivers": {"10-web": {"limits": {"cpu": 2}}},
                            "measure": {"drivers": {"10-ab": {"limits": {"memory": "1G"}}}}})
    bounds = config.run_bounds(["10-web", "20-db"])
    assert bounds.limited == ("cpu",)
    assert bounds.of("10-web").limits.cpu == 2.0
    assert bounds.of("30-not-in-the-run") == DriverBounds()
    assert config.measure.run_bounds(["10-ab"]).limited == ("memory",)
    assert RunBounds().limited == ()
