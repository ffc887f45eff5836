"""Strict JSON: what servo-agg writes is JSON any parser takes and valid UTF-8, whatever
a driver, a file name or the request carried in; what it reads has no NaN or Infinity."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.protocol.strict_json import (
    LineDecoder,
    NotStrictJson,
    dumps,
    json_string,
    loads_strict,
    utf8,
)
from aggregator.protocol.text import clip_message, scrub

pytestmark = pytest.mark.unit

REPLACEMENT = "\ufffd"


def refuse(token: str) -> None:
    raise AssertionError(f"{token} in the output")


def strictly_parsed(line: str) -> Any:
    """How a strict parser reads a line: ASCII, no NaN/Infinity, no lone surrogate."""
    assert line.isascii(), line
    value = json.loads(line, parse_constant=refuse)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a lone surrogate
    return value


def test_non_finite_numbers_are_never_written_as_tokens_that_are_not_json() -> None:
    line = dumps({"value": math.nan, "min": -math.inf, "max": [math.inf, 1.5]})
    assert strictly_parsed(line) == {"value": None, "min": None, "max": [None, 1.5]}


@pytest.mark.parametrize("text", ["\ud800", "x\udcffy", "\udfff\ud800", "end\udbff"])
def test_a_lone_surrogate_becomes_the_replacement_character(text: str) -> None:
    parsed = strictly_parsed(dumps({"message": text, text: 1}))
    expected = scrub(text)
    assert REPLACEMENT in expected
    assert parsed == {"message": expected, expected: 1}


def test_a_high_and_a_low_surrogate_side_by_side_are_one_character() -> None:
    assert scrub("\ud83d" + "\ude00") == "😀"
    assert scrub("a\udcffb") == f"a{REPLACEMENT}b"


def test_astral_characters_and_backslashes_are_kept_exactly() -> None:
    for value in ({"m": "😀 ok"}, {"m": "\\ud800 is text here"}, {"m": "é\u2028"}):
        assert dumps(value) == json.dumps(value)


def test_json_string_is_what_dumps_writes_for_the_string() -> None:
    for text in ("plain", "é", "😀", "lone \ud800", "\\ud800"):
        assert json_string(text) == dumps(text)
        assert strictly_parsed(json_string(text)) == scrub(text)


@pytest.mark.parametrize("text", ["", "ascii", "é€😀", "\ud800", "a\udc80\udcff"])
def test_utf8_never_fails_and_is_valid_utf8(text: str) -> None:
    assert utf8(text).decode("utf-8") == scrub(text)


def test_a_message_with_a_lone_surrogate_is_clipped_without_an_error() -> None:
    """A failing driver's message (or a driver's file name) in the final line."""
    assert clip_message("x\udcffy: failed") == "x\ufffdy: failed"
    assert clip_message("\ud800" * 100, limit=60).endswith("[... cut at 2 MiB ...]")


#: Text with lone surrogates in it (hypothesis leaves them out unless asked).
HOSTILE_TEXT = st.text(st.characters(categories=["Cs"]) | st.characters())
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=12)


@given(JSONISH)
def test_every_line_dumps_writes_is_strict_json(value: Any) -> None:
    strictly_parsed(dumps(value))


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                  max_size=4),
    max_leaves=12))
def test_ordinary_values_are_written_as_json_dumps_writes_them(value: Any) -> None:
    assert dumps(value) == json.dumps(value)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_reading_refuses_nan_and_the_infinities(token: str) -> None:
    line = f'{{"progress": 10, "x": [{token}]}}'
    with pytest.raises(NotStrictJson, match=token):
        LineDecoder().decode(line)
    with pytest.raises(NotStrictJson, match=token):
        loads_strict(line)


def test_loads_strict_refuses_a_number_that_overflows_to_infinity() -> None:
    with pytest.raises(NotStrictJson, match="1e400"):
        loads_strict('{"value": 1e400}')
    assert loads_strict('{"value": 1.5e300}') == {"value": 1.5e300}


def test_the_line_decoder_notices_a_number_that_overflows_anywhere_in_the_last_value(
        ) -> None:
    decoder = LineDecoder()
    value, end = decoder.decode('{"a": [1, {"b": 1e400}]} ')
    assert decoder.overflowed and end == 24 and value["a"][1]["b"] == math.inf
    assert decoder.decode('{"a": [1, 2.5, {"b": "inf"}], "c": 1.5e300}')[0]["c"] == 1.5e300
    assert not decoder.overflowed  # judged per value
    decoder.decode("-1e999")
    assert decoder.overflowed
