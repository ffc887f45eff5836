"""Every line servo-agg writes to stdout is valid UTF-8, and every JSON line is strict JSON
(no NaN or Infinity, no lone surrogate), for every command, whatever a driver's file name
or a driver's text holds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import ADJUST, adjust_env, simple_driver, write_driver

pytestmark = pytest.mark.e2e

#: A file name that is not UTF-8: os.listdir hands it over as "1\udcffweb".
NOT_UTF8 = "1\udcffweb"
REQUEST = json.dumps({"application": {"components": {"web": {"settings": {
    "cpu": {"value": 2}}}}}})

#: argv, whether stdout is JSON, and what it shows of the driver (its name or version)
COMMANDS: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "adjust": (("app",), True, "1\ufffdweb: done"),
    "query": (("--query", "app"), True, '"cpu"'),
    "version": (("--version",), False, "(1\ufffdweb 1.0\ufffd)"),
    "info": (("--info", "app"), True, "[1\ufffdweb]"),
    "check": (("--check", "app"), False, "1\ufffdweb"),
    "dry-run": (("--dry-run", "app"), False, "1\ufffdweb"),
    "dry-run-json": (("--dry-run", "--json", "app"), True, '"driver": "1\ufffdweb"'),
}


def refuse(token: str) -> None:
    raise AssertionError(f"{token} on stdout")


def strict_lines(data: bytes, is_json: bool) -> list[Any]:
    text = data.decode("utf-8")  # raises if not valid UTF-8
    lines = text.splitlines()
    if not is_json:
        return lines
    parsed = [json.loads(line, parse_constant=refuse) for line in lines]
    for value in parsed:  # a lone surrogate, even escaped, fails to encode here
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    return parsed


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_driver_file_name_that_is_not_utf8_never_breaks_stdout(
        command: str, servo_root: Path, tag: str) -> None:
    write_driver(servo_root, NOT_UTF8, simple_driver("web", {"cpu": {
        "value": 1, "min": 0, "max": 4}}, version="1.0\ud800"))
    argv, is_json, says = COMMANDS[command]
    done = subprocess.run([str(ADJUST), *argv], cwd=servo_root, env=adjust_env(tag),
                          input=REQUEST.encode(), capture_output=True, timeout=60)
    assert b"Traceback" not in done.stderr, done.stderr.decode("utf-8", "replace")
    lines = strict_lines(done.stdout, is_json)
    assert lines, done.stderr
    shown = "\n".join(json.dumps(x, ensure_ascii=False) if is_json else x for x in lines)
    assert says in shown, shown
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
