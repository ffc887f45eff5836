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
from aggregator.root.config import AggregatorConfig, parse_section

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
