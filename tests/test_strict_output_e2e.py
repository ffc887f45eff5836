"""Every line servo-agg writes to stdout is valid UTF-8, and every JSON line is strict JSON
(no NaN or Infinity, no lone surrogate), for every command, whatever a driver's file name
or a driver's text holds. Through ./adjust for each way stdout is written (servo's channel
under trio, --check's report after the run, --info before trio); the other commands, which
write through the channel as an adjust does, over fake drivers named as os.listdir names
the file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from tests.fakes import adjust_job, run_command, simple_script
from tests.support import ADJUST, adjust_env, simple_driver, write_driver

#: A file name that is not UTF-8: os.listdir hands it over as "1\udcffweb".
NOT_UTF8 = "1\udcffweb"
REQUEST = json.dumps({"application": {"components": {"web": {"settings": {
    "cpu": {"value": 2}}}}}})

#: argv, whether stdout is JSON, and what it shows of the driver (its name or version)
COMMANDS: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "adjust": (("app",), True, "1\ufffdweb: done"),
    "info": (("--info", "app"), True, "[1\ufffdweb]"),
    "check": (("--check", "app"), False, "1\ufffdweb"),
}
#: the commands that write through servo's channel as an adjust does: the command, --json,
#: whether stdout is JSON, and what it shows of the driver
CHANNEL_COMMANDS: dict[str, tuple[Command, bool, bool, str]] = {
    "query": (Command.QUERY, False, True, '"cpu"'),
    "version": (Command.VERSION, False, False, "(1\ufffdweb 1.0\ufffd)"),
    "dry-run": (Command.DRY_RUN, False, False, "1\ufffdweb"),
    "dry-run-json": (Command.DRY_RUN, True, True, '"driver": "1\ufffdweb"'),
}
SETTINGS = {"cpu": {"value": 1, "min": 0, "max": 4}}


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


@pytest.mark.e2e
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_driver_file_name_that_is_not_utf8_never_breaks_stdout(
        command: str, servo_root: Path, tag: str) -> None:
    write_driver(servo_root, NOT_UTF8, simple_driver("web", SETTINGS, version="1.0\ud800"))
    argv, is_json, says = COMMANDS[command]
    done = subprocess.run([str(ADJUST), *argv], cwd=servo_root, env=adjust_env(tag),
                          input=REQUEST.encode(), capture_output=True, timeout=60)
    assert b"Traceback" not in done.stderr, done.stderr.decode("utf-8", "replace")
    lines = strict_lines(done.stdout, is_json)
    assert lines, done.stderr
    shown = "\n".join(json.dumps(x, ensure_ascii=False) if is_json else x for x in lines)
    assert says in shown, shown
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")


@pytest.mark.supervision
@pytest.mark.parametrize("command", list(CHANNEL_COMMANDS))
async def test_the_other_commands_write_a_name_that_is_not_utf8_as_strictly(
        command: str, autojump_clock: MockClock) -> None:
    which, as_json, is_json, says = CHANNEL_COMMANDS[command]
    job = adjust_job(which, [NOT_UTF8], json.loads(REQUEST), as_json=as_json)
    run = await run_command(job, {NOT_UTF8: simple_script("web", SETTINGS,
                                                          version="1.0\ud800")})
    # RecordingOutput decodes each write as UTF-8, strictly: here, again, as bytes
    lines = strict_lines("\n".join(run.lines).encode("utf-8"), is_json)
    assert lines
    shown = "\n".join(json.dumps(x, ensure_ascii=False) if is_json else x for x in lines)
    assert says in shown, shown
    assert run.returncode == 0, run.stderr
