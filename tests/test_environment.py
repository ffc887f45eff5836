"""servo's environment: OPTUNE_IO_TIMEOUT and OPTUNE_VERBOSE_STDERR."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.protocol.environment import (
    line_limit_for,
    parse_io_timeout,
    parse_stderr_mode,
    read_environment,
)
from aggregator.protocol.errors import AggregatorError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("raw", [None, "", "   ", "0", "0.0", " 0 ", "-0"])
def test_unset_empty_or_zero_timeout_is_no_limit(raw: str | None) -> None:
    assert parse_io_timeout(raw) is None
    assert line_limit_for(parse_io_timeout(raw)) is None


@pytest.mark.parametrize(("raw", "limit"), [
    ("0.5", 0.25), ("1", 0.5), ("1.5", 0.75), ("2", 1.0),  # 0 < T <= 2: T/2
    ("2.5", 1.5), ("3", 2.0), (" 10 ", 9.0), ("600", 599.0), ("1e3", 999.0),  # else T-1
])
def test_line_limit_is_t_minus_1_or_half_of_a_short_t(raw: str, limit: float) -> None:
    timeout = parse_io_timeout(raw)
    assert timeout == float(raw)
    assert line_limit_for(timeout) == pytest.approx(limit)


@pytest.mark.parametrize("raw", ["abc", "3s", "-1", "-0.5", "nan", "NaN", "inf", "-inf",
                                 "Infinity", "1e400", "0x10", "1,5", "3 4"])
def test_anything_not_a_non_negative_number_is_a_bad_env_error(raw: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_io_timeout(raw)
    assert caught.value.reason == "bad-env"
    assert "OPTUNE_IO_TIMEOUT" in caught.value.message
    assert repr(raw) in caught.value.message


@pytest.mark.parametrize("raw", ["604801", "1e10", "1e300", "9" * 20])
def test_a_timeout_over_a_week_is_a_bad_env_error(raw: str) -> None:
    """1e10 was an OverflowError traceback from select() while reading the request."""
    with pytest.raises(AggregatorError) as caught:
        parse_io_timeout(raw)
    assert caught.value.reason == "bad-env"
    assert "is over the 604800 s (7 days) servo-agg accepts" in caught.value.message
    assert len(caught.value.message) < 400


def test_a_timeout_of_a_week_is_accepted() -> None:
    assert parse_io_timeout("604800") == 604800.0


def test_a_huge_bad_value_is_quoted_clipped() -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_io_timeout("x" * 100_000)
    assert len(caught.value.message) < 400
    with pytest.raises(AggregatorError) as caught:
        parse_stderr_mode("x" * 100_000)
    assert len(caught.value.message) < 400


@given(st.floats(min_value=1e-3, max_value=1e9))
def test_the_line_limit_is_always_positive_and_leaves_servo_time(timeout: float) -> None:
    limit = line_limit_for(timeout)
    assert limit is not None
    assert 0 < limit < timeout
    assert timeout - limit >= min(1.0, timeout / 2) * (1 - 1e-9)


@pytest.mark.parametrize(("raw", "mode"), [(None, "all"), ("", "all"), ("all", "all"),
                                           ("minimal", "minimal"), (" NONE ", "none"),
                                           ("Minimal", "minimal")])
def test_stderr_mode(raw: str | None, mode: str) -> None:
    assert parse_stderr_mode(raw) == mode


def test_unknown_stderr_mode_is_a_bad_env_error() -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_stderr_mode("some")
    assert caught.value.reason == "bad-env"
    assert "OPTUNE_VERBOSE_STDERR" in caught.value.message


def test_read_environment() -> None:
    env = read_environment({"OPTUNE_IO_TIMEOUT": "5", "OPTUNE_VERBOSE_STDERR": "none",
                            "OTHER": "x"})
    assert (env.io_timeout, env.line_limit, env.stderr_mode) == (5.0, 4.0, "none")
    env = read_environment({})
    assert (env.io_timeout, env.line_limit, env.stderr_mode) == (None, None, "all")
    assert read_environment({"OPTUNE_IO_TIMEOUT": "2"}).line_limit == 1.0
