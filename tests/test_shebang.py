"""A driver that cannot be started says why: its #! interpreter, not a bare ENOENT."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.root.shebang import interpreter_of, spawn_failure
from aggregator.supervision.spec import CallSpec
from tests.support import TAG_VAR, real_supervisor


def script(root: Path, head: bytes, name: str = "01x", mode: int = 0o755) -> Path:
    """A file whose first bytes are `head` (then a shell line, unless head has no newline)."""
    path = root / name
    path.write_bytes(head + (b"echo hi\n" if b"\n" in head else b""))
    path.chmod(mode)
    return path


def exec_error(path: Path, cwd: Path, tag: str) -> OSError:
    """What the system really raises when `path` is started."""
    with pytest.raises(OSError) as caught:
        subprocess.run([str(path)], cwd=cwd, check=False,
                       env={**os.environ, TAG_VAR: tag})
    return caught.value


@pytest.mark.unit
@pytest.mark.parametrize(("head", "interpreter"), [
    (b"#!/bin/sh\n", "/bin/sh"),
    (b"#! /usr/bin/env python3 -u\n", "/usr/bin/env"),
    (b"#!\t/bin/sh\t-e\n", "/bin/sh"),
    (b"#!/bin/sh\r\n", "/bin/sh\r"),  # Windows line endings: the kernel keeps the \r
    (b"#!/bin/sh", "/bin/sh"),  # no newline at all
    (b"#!\n", None),
    (b"echo no shebang\n", None),
    (b"\x7fELF\x02\x01", None),
])
def test_interpreter_of(tmp_path: Path, head: bytes, interpreter: str | None) -> None:
    assert interpreter_of(script(tmp_path, head)) == interpreter


@pytest.mark.unit
def test_interpreter_of_what_is_no_regular_file(tmp_path: Path) -> None:
    assert interpreter_of(tmp_path / "missing") is None
    os.mkfifo(tmp_path / "fifo")  # must not block
    assert interpreter_of(tmp_path / "fifo") is None


@pytest.mark.e2e
def test_a_missing_interpreter_is_named(tmp_path: Path, tag: str) -> None:
    path = script(tmp_path, b"#!/nonexistent/python3\n")
    exc = exec_error(path, tmp_path, tag)
    assert exc.errno == errno.ENOENT  # what the system says: "no such file" (the driver)
    assert spawn_failure(path, exc, tmp_path) == (
        "could not be started: its #! line names the interpreter '/nonexistent/python3', "
        "which does not exist")


@pytest.mark.e2e
def test_windows_line_endings_are_pointed_out(tmp_path: Path, tag: str) -> None:
    path = script(tmp_path, b"#!/bin/sh\r\n")
    message = spawn_failure(path, exec_error(path, tmp_path, tag), tmp_path)
    assert "the interpreter '/bin/sh\\r', which does not exist" in message
    assert "Windows line endings" in message


@pytest.mark.e2e
def test_a_relative_interpreter_is_looked_for_where_the_driver_runs(tmp_path: Path,
                                                                   tag: str) -> None:
    (tmp_path / "adjust.d").mkdir()
    path = script(tmp_path / "adjust.d", b"#!bin/python\n")
    message = spawn_failure(path, exec_error(path, tmp_path, tag), tmp_path)
    assert "'bin/python', which does not exist" in message


@pytest.mark.e2e
def test_an_interpreter_that_is_not_executable_is_named(tmp_path: Path, tag: str) -> None:
    script(tmp_path, b"", name="data.txt", mode=0o644)
    path = script(tmp_path, f"#!{tmp_path}/data.txt\n".encode())
    exc = exec_error(path, tmp_path, tag)
    assert exc.errno == errno.EACCES
    assert spawn_failure(path, exc, tmp_path).endswith(
        "/data.txt', which is not an executable file")


@pytest.mark.unit
def test_other_failures_keep_the_systems_words(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", str(gone))
    assert spawn_failure(gone, missing, tmp_path) == f"could not be started: {missing}"
    path = script(tmp_path, b"#!/bin/sh\n")
    too_long = OSError(errno.E2BIG, "Argument list too long")
    assert spawn_failure(path, too_long, tmp_path) == f"could not be started: {too_long}"


@pytest.mark.unit
def test_a_huge_interpreter_name_is_clipped(tmp_path: Path) -> None:
    path = script(tmp_path, b"#!/" + b"x" * 1000 + b"\n")
    exc = FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    assert len(spawn_failure(path, exc, tmp_path)) < 300


@pytest.mark.e2e
async def test_a_supervised_call_names_the_missing_interpreter(tmp_path: Path,
                                                               tag: str) -> None:
    """The message servo sees, through run_call (it was a bare ENOENT naming the driver)."""
    path = script(tmp_path, b"#!/opt/python9/bin/python9\n")
    sup = real_supervisor(tmp_path, {**os.environ, TAG_VAR: tag})
    outcome = await sup.call(CallSpec(Driver("01x", path), Call.QUERY, ("--query",)))
    assert outcome.problem is not None
    assert outcome.problem.reason == "spawn-failed"
    assert outcome.problem.detail == (
        "could not be started: its #! line names the interpreter "
        "'/opt/python9/bin/python9', which does not exist")
