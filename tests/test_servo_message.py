"""The text servo posts for a failed command holds each fact once, in every
OPTUNE_VERBOSE_STDERR mode (#16 point 8): servo appends our stderr to the final line's
message, so the readable error line on stderr must not repeat that message."""

from __future__ import annotations

import io
import json
import os
import shlex
from pathlib import Path

import pytest
from trio.testing import MockClock

from aggregator.adjust.calls import Command
from aggregator.protocol.environment import parse_stderr_mode, servo_posts_stderr
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.vocabulary import Call
from aggregator.supervision.output import POSTED_POINTER, Output
from tests.fakes import FakeMember, Script, adjust_job, run_command, simple_script
from tests.servo_model import chunks, posted_message
from tests.support import adjust_env, run_adjust, simple_driver, write_driver

MODES = [None, "all", "minimal", "none"]


@pytest.mark.unit
@pytest.mark.parametrize(("raw", "posts"), [
    (None, True), ("all", True), ("minimal", True), ("none", False),
    ("ALL", False), ("", False), ("loud", False)])  # servo compares the value as it is
def test_when_servo_posts_our_stderr(raw: str | None, posts: bool) -> None:
    assert servo_posts_stderr(raw) is posts


def _posted(raw: str | None, err: AggregatorError) -> tuple[str, str]:
    """What servo would post, and what a person would read on stderr, for `err`."""
    r, w = os.pipe()
    people = io.StringIO()
    Output(w, people, stderr_posted=servo_posts_stderr(raw)).error(err)
    os.close(w)
    final = json.loads(os.read(r, 1 << 16))
    os.close(r)
    return posted_message(final, 1, chunks(people.getvalue()), raw), people.getvalue()


@pytest.mark.unit
@pytest.mark.parametrize("raw", MODES)
def test_an_error_is_posted_once_in_every_mode(raw: str | None) -> None:
    fact = "request: not JSON (line 1, column 1); no driver was run"
    posted, stderr = _posted(raw, AggregatorError("bad-input", fact))
    assert posted.count(fact) == 1, posted
    assert stderr.startswith("servo-agg: error (bad-input): ")  # always a line for people


@pytest.mark.unit
def test_a_person_reading_stderr_gets_the_whole_error() -> None:
    """A terminal or a file (not servo's pipe), or OPTUNE_VERBOSE_STDERR=none."""
    people = io.StringIO()
    r, w = os.pipe()
    Output(w, people, stderr_posted=False).error(AggregatorError("bad-input", "it is wrong"))
    os.close(w)
    os.close(r)
    assert people.getvalue() == "servo-agg: error (bad-input): it is wrong\n"


@pytest.mark.unit
def test_servo_gone_the_line_for_people_says_it_all() -> None:
    """Once stdout is lost nothing reaches servo: stderr is all anyone gets."""
    people = io.StringIO()
    r, w = os.pipe()
    os.close(r)
    out = Output(w, people, stderr_posted=True)
    out.lose("servo's end of stdout was closed (EPIPE)")
    out.error(AggregatorError("bad-input", "it is wrong"))
    os.close(w)
    assert "servo-agg: error (bad-input): it is wrong\n" in people.getvalue()
    assert POSTED_POINTER not in people.getvalue()


CACHE = {"application": {"components": {"cache": {"settings": {
    "size": {"value": 64, "min": 64, "max": 4096}}}}}}
REQUEST = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}},
                                          "cache": {"settings": {"size": {"value": 8192}}}}}}
FAILURE = "20-cache: rejected: adjust: size=8192 outside 64..4096 (exit code 1)"
EXCERPT = "cache: size 8192 is over the node's memory"


async def rejecting_cache(p: FakeMember) -> int:
    """20-cache: describes its size; refuses 8192, saying why on stderr too."""
    if p.proc.spec.call is Call.QUERY:
        await p.say(CACHE)
        return 0
    await p.read_request()
    await p.complain(EXCERPT + "\n")
    await p.say({"status": "rejected", "reason": "out-of-range",
                 "message": "size=8192 outside 64..4096"})
    return 1


@pytest.mark.supervision
@pytest.mark.parametrize("raw", MODES)
async def test_a_failed_adjust_is_posted_once_and_named_in_every_mode(
        raw: str | None, autojump_clock: MockClock) -> None:
    drivers: dict[str, Script] = {
        "10-web": simple_script("web", {"cpu": {"value": 1, "min": 0, "max": 4}}),
        "20-cache": rejecting_cache}
    run = await run_command(adjust_job(Command.ADJUST, list(drivers), REQUEST), drivers,
                            stderr_mode=parse_stderr_mode(raw))
    assert run.returncode == 1
    posted = posted_message(run.final, run.returncode, chunks(run.stderr), raw)
    assert posted.count(FAILURE) == 1, posted  # names the driver and why, once
    assert run.final["failed_drivers"] == ["20-cache"]
    assert posted.count(EXCERPT) == (0 if raw == "none" else 1), posted
    assert "servo-agg: error (out-of-range): " in run.stderr  # a line for people


@pytest.mark.e2e
async def test_servo_s_mode_is_read_from_its_environment(servo_root: Path, tag: str) -> None:
    """The mode in which servo posts nothing of our stderr, through a real ./adjust: no
    excerpt in the message, and the whole failure on stderr for whoever reads it."""
    write_driver(servo_root, "10-web", simple_driver("web", {"cpu": {"value": 1, "min": 0,
                                                                     "max": 4}}))
    rejected = {"status": "rejected", "reason": "out-of-range",
                "message": "size=8192 outside 64..4096"}
    write_driver(servo_root, "20-cache", f"""
        case "$1" in --query) echo {shlex.quote(json.dumps(CACHE))}; exit 0;; esac
        echo {shlex.quote(EXCERPT)} >&2
        echo {shlex.quote(json.dumps(rejected))}
        exit 1
        """, shebang="#!/bin/sh")
    run = await run_adjust(servo_root, "app", tag=tag, stdin=json.dumps(REQUEST),
                           env=adjust_env(tag, OPTUNE_VERBOSE_STDERR="none"))
    assert run.returncode == 1
    posted = posted_message(run.final, run.returncode, chunks(run.stderr), "none")
    assert posted.count(FAILURE) == 1, posted
    assert run.final["failed_drivers"] == ["20-cache"]
    assert EXCERPT not in posted, posted
    assert f"servo-agg: error (out-of-range): {run.final['message']}" in run.stderr
