"""User data in messages: bounded however big it is, and on one line where it must be."""

from __future__ import annotations

import time
from typing import Any

import pytest

from aggregator.limits import MAX_SHOWN_CHARS
from aggregator.protocol.text import brief, clip, one_line, signal_name, visible


@pytest.mark.unit
def test_clip_keeps_short_text_and_marks_a_cut() -> None:
    assert clip("short") == "short"
    cut = clip("x" * 1000)
    assert len(cut) == MAX_SHOWN_CHARS and cut.endswith("...")
    assert clip("abcdef", 5) == "ab..."


@pytest.mark.unit
def test_driver_text_cannot_drive_a_terminal() -> None:
    assert visible("\x1b[2J\x1b]0;pwned\x07 \x9b") == "\\x1b[2J\\x1b]0;pwned\\x07 \\x9b"
    assert visible("tab\tand\nnewline, é ✓") == "tab\tand\nnewline, é ✓"


@pytest.mark.unit
def test_a_signal_is_named_or_numbered() -> None:
    assert signal_name(9) == "SIGKILL"
    assert signal_name(200) == "signal 200"


@pytest.mark.unit
def test_brief_is_repr_when_small() -> None:
    assert brief("web") == "'web'"
    assert brief([1, 2]) == "[1, 2]"
    assert brief(None) == "None"


@pytest.mark.unit
def test_brief_does_not_walk_a_huge_shared_structure() -> None:
    """An alias-shared YAML value: 9**9 elements as nested lists; a plain repr of it is
    gigabytes and takes a minute."""
    value: Any = ["x"] * 9
    for _ in range(8):
        value = [value] * 9
    started = time.monotonic()
    shown = brief(value)
    assert time.monotonic() - started < 0.1
    assert len(shown) <= MAX_SHOWN_CHARS and shown.startswith("[[[")


@pytest.mark.unit
def test_brief_never_fails() -> None:
    assert brief(10 ** 5000) == "<int>"  # str() of it raises ValueError since 3.11


@pytest.mark.unit
def test_one_line() -> None:
    assert one_line("1.2.3") == "1.2.3"
    assert one_line("") == ""
    assert one_line("1.2\n") == "1.2"
    assert one_line("1.2\nbuild 7\r\nextra\u2028x") == "1.2 build 7 extra x"


@pytest.mark.unit
def test_a_line_of_a_report_stays_one_line() -> None:
    assert visible("10-a\nb \x1b[31m\tc", newlines=False) == "10-a\\x0ab \\x1b[31m\tc"
