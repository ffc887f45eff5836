"""What --check says of the bounds on every driver: where T comes from, which driver
could hang forever, and how each resource limit is enforced on this host."""

from __future__ import annotations

import pytest

from aggregator.protocol.environment import CONFIG_IO_TIMEOUT, IO_TIMEOUT_VAR
from aggregator.tools.check import Report, check_environment

pytestmark = pytest.mark.unit


def line_with(report: Report, *parts: str) -> str:
    for line in report.lines:
        if all(p in line for p in parts):
            return line
    raise AssertionError(f"no line with {parts!r} in:\n" + "\n".join(report.lines))


def test_io_timeout_from_config_is_named_as_t_where_servo_sets_none() -> None:
    report = Report()
    environment = check_environment(report, {}, 3.0, io_timeout=3.0)
    assert (environment.io_timeout, environment.io_timeout_source) == (3.0, CONFIG_IO_TIMEOUT)
    assert line_with(report, "[note]", "io_timeout=3 (config.yaml: servo sets no "
                     "OPTUNE_IO_TIMEOUT here): servo-agg waits at most 2 s for each line",
                     "0.5 s grace")


def test_servos_t_wins_over_io_timeout() -> None:
    report = Report()
    environment = check_environment(report, {"OPTUNE_IO_TIMEOUT": "10"}, 0.5, io_timeout=3.0)
    assert (environment.io_timeout, environment.io_timeout_source) == (10.0, IO_TIMEOUT_VAR)
    assert line_with(report, "[note]", "OPTUNE_IO_TIMEOUT=10: servo-agg waits at most 9 s")


def test_a_short_io_timeout_is_warned_of_as_servos_would_be() -> None:
    report = Report()
    check_environment(report, {}, 0.5, io_timeout=1.5)
    assert line_with(report, "[warn]", "io_timeout=1.5", "is very short")
