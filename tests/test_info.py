"""`--info`: its version string (the aggregator's version and the drivers it found), and
its answer through cli.main, as the launchers give it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator import __version__
from aggregator.entry.cli import main
from aggregator.entry.info import info_line, info_version, json_string, print_info
from aggregator.protocol.strict_json import dumps as strict_dumps
from aggregator.protocol.strict_json import json_string as strict_json_string
from aggregator.protocol.text import scrub
from aggregator.root.config_probe import mentions
from aggregator.root.front_end import FrontEnd
from tests.support import write_driver

pytestmark = pytest.mark.unit


def test_names_the_drivers_found_in_order(servo_root: Path) -> None:
    write_driver(servo_root, "20cache", "")
    write_driver(servo_root, "10web", "")
    write_driver(servo_root, "notes.txt", "", mode=0o644)
    assert info_version(servo_root) == f"servo-agg {__version__} [10web, 20cache]"


def test_says_when_there_are_no_drivers(servo_root: Path) -> None:
    assert info_version(servo_root) == f"servo-agg {__version__} [no drivers]"


def test_answers_even_without_a_drivers_dir(tmp_path: Path) -> None:
    version = info_version(tmp_path)
    assert version.startswith(f"servo-agg {__version__} [drivers unknown: ")
    assert "does not exist" in version


def test_other_sections_of_config_yaml_do_not_matter(servo_root: Path) -> None:
    write_driver(servo_root, "10web", "")
    (servo_root / "config.yaml").write_text("web:\n  aggregator: not this one\n")
    assert info_version(servo_root) == f"servo-agg {__version__} [10web]"


def test_follows_the_aggregator_section_of_config_yaml(servo_root: Path) -> None:
    other = servo_root / "drivers"
    other.mkdir()
    for name in ("a", "b", "c"):
        (other / name).write_text("#!/bin/sh\n")
        (other / name).chmod(0o755)
    write_driver(servo_root, "10web", "")  # in adjust.d, which is not used now
    (servo_root / "config.yaml").write_text(
        "aggregator:\n  drivers_dir: drivers\n  drivers:\n    b: {enabled: false}\n")
    assert info_version(servo_root) == f"servo-agg {__version__} [a, c]"


def test_a_broken_config_still_gets_an_answer(servo_root: Path) -> None:
    (servo_root / "config.yaml").write_text("aggregator:\n  drivers_dir: [not, a, path]\n")
    version = info_version(servo_root)
    assert version.startswith(f"servo-agg {__version__} [drivers unknown: ")
    assert "drivers_dir" in version


@pytest.mark.parametrize("front", ["adjust", "measure"])
def test_info_names_the_drivers_says_nothing_else_and_starts_none(
        servo_root: Path, front: str, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """cli.main, as the launcher of that name runs it: one JSON line naming the drivers,
    nothing on stderr, and no driver started (a unit test may start no process:
    tests/conftest.py refuses it). Not a word of a data file, nor of a program that lost
    its execute bit, which every command that runs drivers warns of (test_launch.py)."""
    folder = f"{front}.d"
    for name in ("01web", "02cache", "03off"):
        write_driver(servo_root, name, "exit 3\n", shebang="#!/bin/sh", folder=folder)
    (servo_root / folder / "03off").chmod(0o644)
    (servo_root / folder / "notes.txt").write_text("data, not a driver")
    monkeypatch.chdir(servo_root)
    assert main(["--info", "app"], program=front) == 0
    out, err = capfd.readouterr()
    assert json.loads(out) == {"version": f"servo-agg {__version__} [01web, 02cache]",
                               "has_cancel": True}
    assert err == ""


def test_info_without_an_app_id_or_a_drivers_dir_still_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--info"], program="adjust") == 0
    answer = json.loads(capfd.readouterr().out)
    assert answer["has_cancel"] is True
    assert answer["version"].startswith(f"servo-agg {__version__} [drivers unknown: ")


def test_print_info_is_one_json_line(servo_root: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_driver(servo_root, "10web", "")
    monkeypatch.chdir(servo_root)
    assert print_info() == 0
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1
    assert json.loads(out) == {"version": f"servo-agg {__version__} [10web]",
                               "has_cancel": True}


def test_quoted_or_flow_style_section_is_still_read(tmp_path: Path) -> None:
    """The cheap pre-check must not miss an aggregator section written another way."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "01x").write_text("#!/bin/sh\n")
    (tmp_path / "elsewhere" / "01x").chmod(0o755)
    for text in ('"aggregator":\n  drivers_dir: elsewhere\n',
                 '{aggregator: {drivers_dir: elsewhere}}\n'):
        (tmp_path / "config.yaml").write_text(text)
        assert "[01x]" in info_version(tmp_path)


# -- the line, written without json (which would load re) ------------------------------------

#: Every code point, lone surrogates included (hypothesis leaves those out by default).
ANY_TEXT = st.text(st.characters(exclude_categories=()))


@given(ANY_TEXT)
def test_json_string_is_exactly_what_every_stdout_line_holds(text: str) -> None:
    """The same bytes as strict_json.json_string, the one rule for stdout: json.dumps's
    ASCII escapes, each lone surrogate replaced."""
    written = json_string(text)
    assert written == strict_json_string(text)
    assert written.isascii() and written.isprintable()  # one line, valid UTF-8 as it is
    assert json.loads(written) == scrub(text)


@pytest.mark.parametrize("text", ["", "plain", 'a "quoted" \\ back', "tab\tnew\nline\r",
                                  "\x00\x1f\x7f", "héllo", "日本", "🎉", "\ud800", "\udfff x"])
def test_json_string_edge_cases(text: str) -> None:
    assert json_string(text) == strict_json_string(text)
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert json_string(text) == json.dumps(text)


@given(ANY_TEXT)
def test_info_line_is_what_every_other_stdout_line_would_be(name: str) -> None:
    version = f"servo-agg {__version__} [{name}]"
    line = f'{{"version": {json_string(version)}, "has_cancel": true}}'
    assert line == strict_dumps({"version": version, "has_cancel": True})


def test_info_line_names_the_drivers(servo_root: Path) -> None:
    write_driver(servo_root, "10wéb\n", "")  # a name json must escape
    assert info_line(servo_root) == json.dumps(
        {"version": f"servo-agg {__version__} [10wéb\n]", "has_cancel": True})


def test_measure_info_reads_measure_d(tmp_path: Path) -> None:
    write_driver(tmp_path, "01load", "", folder="measure.d")
    write_driver(tmp_path, "01web", "")
    assert info_version(tmp_path, "measure") == f"servo-agg {__version__} [01load]"
    assert info_version(tmp_path, FrontEnd.MEASURE) == f"servo-agg {__version__} [01load]"


# -- the cheap look at config.yaml, without re ------------------------------------------------

#: What the look was before it went without re: a mention on a line, before any '#'.
MENTION = {word: re.compile(rf"^[^#\n]*{word}", re.MULTILINE)
           for word in ("aggregator", "drivers")}


@given(st.text(st.sampled_from(list("agregtorsdiv #\n\r\t:'\"{}x")), max_size=60),
       st.sampled_from(sorted(MENTION)))
def test_mentions_is_the_multiline_regex_it_replaced(text: str, word: str) -> None:
    assert mentions(text, word) == bool(MENTION[word].search(text))


@pytest.mark.parametrize(("text", "found"), [
    ("aggregator:\n", True), ("# aggregator:\n", False), ("web: 1 # aggregator\n", False),
    ("web:\n  x: 1\n'aggregator': {}\n", True), ("#\naggregator", True),
    ("a: 1\r# aggregator\n", False),  # \r does not end a line for the look (nor did it)
])
def test_mentions_outside_comments_only(text: str, found: bool) -> None:
    assert mentions(text, "aggregator") is found
