"""`--info`'s version string: the aggregator's version and the drivers it found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aggregator import __version__
from aggregator.entry.info import info_version, print_info
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
