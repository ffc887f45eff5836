"""The readers (`--last`, `--show`, `--history`) against a journal they did not write: a
line nested too deep, numbers too large for a float, a directory where the journal's
file goes, a symlink or a file where its directory goes. Each is read past or named in a
note on stderr with exit 1, never a traceback (review 1, defect 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from aggregator.entry.readers import read_journal
from aggregator.journal.reader import Journal, inspect
from aggregator.journal.show import block, full, history
from aggregator.journal.store import JOURNAL_FILE, append, problem
from aggregator.root.config import JournalConfig
from aggregator.root.front_end import FrontEnd

pytestmark = pytest.mark.unit

CONFIG = JournalConfig()
RECORD = {"schema": 1, "run": "20261206T051712.250000Z-abcdef",
          "started": "2026-12-06T05:17:12.250000Z", "front_end": "adjust", "args": ["app"],
          "status": "ok", "exit_code": 0, "duration": 0.5}


def write_journal(root: Path, *lines: bytes) -> None:
    directory = root / CONFIG.dir
    directory.mkdir(exist_ok=True)
    (directory / JOURNAL_FILE).write_bytes(b"".join(line + b"\n" for line in lines))


def test_a_line_nested_too_deep_for_the_parser_is_read_past(tmp_path: Path) -> None:
    write_journal(tmp_path, json.dumps(RECORD).encode(), b"[" * 200_000)
    journal = Journal(tmp_path, CONFIG)
    assert [r["run"] for r in journal.every()] == [RECORD["run"]]
    assert journal.notes == [".servo-agg/journal.jsonl, line 2: not a record (corrupt); "
                             "read past it"]


HUGE = 10 ** 400  # an integer JSON reads, but no float holds


def test_numbers_too_large_for_a_float_are_shown_as_unknown() -> None:
    record: dict[str, Any] = {**RECORD, "duration": HUGE, "signals": [
        {"signal": "SIGTERM", "at": HUGE}], "calls": [{
            "driver": "10web", "call": "adjust", "start": HUGE, "duration": HUGE,
            "end": "exited", "exit_code": 0, "status": "ok",
            "resources": {"source": "rusage", "user_cpu": HUGE, "system_cpu": 0.5,
                          "peak_memory": HUGE}}]}
    assert "0.500 s, ? s  [run" not in block(record)[0]
    assert block(record)[0].endswith("ok, exit 0, ? s  [run 20261206T051712.250000Z-abcdef]")
    assert "  signals: SIGTERM at ? s" in block(record)
    assert "  used      CPU ? s user, 0.500 s system; peak memory ? (rusage)" in full(record)
    assert "? s" in history([record])[0]


def test_memory_is_shown_as_every_size_is() -> None:
    """show_bytes, as --check and the messages show sizes (it was MiB only: 1536.0 MiB)."""
    record = {**RECORD, "calls": [{"driver": "10web", "resources": {
        "source": "cgroup", "user_cpu": 1, "system_cpu": 0, "peak_memory": 3 << 29}}]}
    assert ("  used      CPU 1.000 s user, 0.000 s system; peak memory 1.5 GiB (cgroup)"
            in full(record))


def test_a_symlinked_journal_dir_is_named_a_symlink(tmp_path: Path) -> None:
    """O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR: it read "not a directory"."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / CONFIG.dir).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError) as raised:
        append(tmp_path, CONFIG, b'{"run": "x"}\n')
    assert problem(raised.value) == "a symlink, which servo-agg does not follow"
    assert inspect(tmp_path, CONFIG).why == (".servo-agg: a symlink, which servo-agg does "
                                             "not follow")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def make_dir_a_file(root: Path) -> None:
    (root / CONFIG.dir).write_text("a file\n")


def make_dir_a_symlink(root: Path) -> None:
    (root / "elsewhere").mkdir()
    write_journal(root / "elsewhere", json.dumps(RECORD).encode())  # not to be read
    (root / CONFIG.dir).symlink_to(root / "elsewhere" / CONFIG.dir)


def make_journal_a_directory(root: Path) -> None:
    (root / CONFIG.dir / JOURNAL_FILE).mkdir(parents=True)


def make_journal_a_fifo(root: Path) -> None:
    (root / CONFIG.dir).mkdir()
    os.mkfifo(root / CONFIG.dir / JOURNAL_FILE)


@pytest.mark.parametrize(("make", "why"), [
    (make_dir_a_file, ".servo-agg: not a directory"),
    (make_dir_a_symlink, ".servo-agg: a symlink, which servo-agg does not follow"),
    (make_journal_a_directory, "journal.jsonl is not a regular file"),
    (make_journal_a_fifo, "journal.jsonl is not a regular file"),
])
@pytest.mark.parametrize("argv", [["--last"], ["--history"], ["--show", "2026"]])
def test_a_journal_that_cannot_be_read_is_one_note_and_exit_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        make: Any, why: str, argv: list[str]) -> None:
    make(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert read_journal(argv, FrontEnd.ADJUST) == 1
    out, err = capfd.readouterr()
    assert (out, err) == ("", f"servo-agg: the journal .servo-agg/journal.jsonl cannot be "
                              f"read ({why})\n")


def test_a_last_record_cut_short_is_read_past_with_a_note_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """The disk filled up mid-record: `--last 2` shows the whole record before it, and says
    on stderr what it read past."""
    whole = json.dumps(RECORD).encode()
    write_journal(tmp_path, whole)
    with open(tmp_path / CONFIG.dir / JOURNAL_FILE, "ab") as journal:  # no newline after it
        journal.write(whole[:len(whole) // 2])
    monkeypatch.chdir(tmp_path)
    assert read_journal(["--last", "2"], FrontEnd.ADJUST) == 0
    out, err = capfd.readouterr()
    assert err == ("servo-agg: .servo-agg/journal.jsonl, line 2: a record cut short; "
                   "read past it\n")
    assert out.splitlines()[0].endswith(f"[run {RECORD['run']}]")


class _FullStdout:
    """stdout on /dev/full (or a failing disk): every write fails as the kernel says."""

    def __init__(self, errno_: int) -> None:
        self.errno = errno_

    def write(self, text: str) -> int:
        raise OSError(self.errno, os.strerror(self.errno))

    def flush(self) -> None:
        raise OSError(self.errno, os.strerror(self.errno))


@pytest.mark.parametrize("argv", [["--last"], ["--last", "--json"], ["--history"],
                                  ["--history", "--json"], ["--show", "2026"]])
@pytest.mark.parametrize("errno_", [28, 5])  # ENOSPC (/dev/full), EIO
def test_a_failing_stdout_is_the_note_every_command_gives_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str], errno_: int) -> None:
    write_journal(tmp_path, json.dumps(RECORD).encode())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdout", _FullStdout(errno_))
    assert read_journal(argv, FrontEnd.ADJUST) == 1
    assert capsys.readouterr().err == (f"servo-agg: writing to stdout failed "
                                       f"({os.strerror(errno_)})\n")
