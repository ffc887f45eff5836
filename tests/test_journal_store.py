"""The journal's files (journal/store.py) and reading them back (journal/reader.py): one
write per record under a lock, rotation within the bound, nothing followed out of the
servo root, records cut short read past; and `--since`."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest

from aggregator.journal.reader import Journal, inspect, parse_since, started_at
from aggregator.journal.store import (
    JOURNAL_FILE,
    append,
    file_bound,
    file_names,
    open_dir,
    problem,
)
from aggregator.limits import JOURNAL_FILES, MIN_JOURNAL_MAX_BYTES
from aggregator.root.config import JournalConfig
from aggregator.root.layout import classify

pytestmark = pytest.mark.unit

SMALL = JournalConfig(max_bytes=MIN_JOURNAL_MAX_BYTES)


def line(number: int, size: int = 1000) -> bytes:
    """A record of about `size` bytes."""
    record = {"schema": 1, "run": f"run-{number:05d}", "started": "2026-12-06T05:00:00Z",
              "pad": "x" * max(0, size - 80)}
    return (json.dumps(record) + "\n").encode()


def journal_dir(root: Path, config: JournalConfig = SMALL) -> Path:
    return root / config.dir


def test_records_are_appended_one_line_each(tmp_path: Path) -> None:
    for n in range(3):
        append(tmp_path, SMALL, line(n))
    lines = (journal_dir(tmp_path) / JOURNAL_FILE).read_bytes().splitlines(keepends=True)
    assert lines == [line(n) for n in range(3)]
    assert journal_dir(tmp_path).stat().st_mode & 0o777 == 0o700


def test_the_files_rotate_and_all_of_them_stay_within_the_bound(tmp_path: Path) -> None:
    written = 200  # ~200 KB of records through a 64 KiB journal
    for n in range(written):
        append(tmp_path, SMALL, line(n))
        sizes = [p.stat().st_size for p in journal_dir(tmp_path).glob(f"{JOURNAL_FILE}*")]
        assert sum(sizes) <= SMALL.max_bytes
        assert max(sizes) <= file_bound(SMALL)
    present = sorted(p.name for p in journal_dir(tmp_path).glob(f"{JOURNAL_FILE}*"))
    assert present == sorted(file_names())  # journal.jsonl and .1 .. .3
    runs = [r["run"] for r in Journal(tmp_path, SMALL).every()]
    assert runs == [f"run-{n:05d}" for n in range(written - len(runs), written)]  # in order
    assert len(runs) > (JOURNAL_FILES - 1) * file_bound(SMALL) // 1000 - JOURNAL_FILES


def test_a_smaller_bound_trims_the_oldest_files_at_the_next_write(tmp_path: Path) -> None:
    big = JournalConfig(max_bytes=4 * MIN_JOURNAL_MAX_BYTES)
    for n in range(250):
        append(tmp_path, big, line(n))
    append(tmp_path, SMALL, line(999))
    total = sum(p.stat().st_size for p in journal_dir(tmp_path).glob(f"{JOURNAL_FILE}*"))
    assert total <= SMALL.max_bytes
    assert Journal(tmp_path, SMALL).last(1)[0]["run"] == "run-00999"


def test_a_record_after_one_cut_short_starts_a_line_of_its_own(tmp_path: Path) -> None:
    append(tmp_path, SMALL, line(1))
    with open(journal_dir(tmp_path) / JOURNAL_FILE, "ab") as file:
        file.write(line(2)[:50])  # the machine stopped mid-write
    append(tmp_path, SMALL, line(3))
    journal = Journal(tmp_path, SMALL)
    assert [r["run"] for r in journal.every()] == ["run-00001", "run-00003"]
    assert journal.notes == [".servo-agg/journal.jsonl, line 2: not a record (corrupt); "
                             "read past it"]


def test_a_last_record_cut_short_is_read_past_with_a_note(tmp_path: Path) -> None:
    append(tmp_path, SMALL, line(1))
    with open(journal_dir(tmp_path) / JOURNAL_FILE, "ab") as file:
        file.write(line(2)[:50])
    journal = Journal(tmp_path, SMALL)
    assert [r["run"] for r in journal.last(5)] == ["run-00001"]
    assert journal.notes == [".servo-agg/journal.jsonl, line 2: a record cut short; "
                             "read past it"]


@pytest.mark.parametrize("place", ["the directory is a file", "the directory is a symlink",
                                   "the journal is a symlink", "the journal is a FIFO"])
def test_what_is_not_the_journal_s_own_is_neither_followed_nor_written(
        tmp_path: Path, place: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = journal_dir(tmp_path)
    if place == "the directory is a file":
        target.write_text("not a directory")
    elif place == "the directory is a symlink":
        target.symlink_to(elsewhere)
    else:
        target.mkdir()
        if place == "the journal is a symlink":
            (target / JOURNAL_FILE).symlink_to(elsewhere / "stolen")
        else:
            os.mkfifo(target / JOURNAL_FILE)
    with pytest.raises(OSError) as raised:
        append(tmp_path, SMALL, line(1))
    assert problem(raised.value) in ("not a directory", "a symlink, which servo-agg does not "
                                     "follow", f"{JOURNAL_FILE} is not a regular file")
    assert list(elsewhere.iterdir()) == []
    state = inspect(tmp_path, SMALL)
    assert not state.writable and state.why


def test_a_lock_held_too_long_costs_a_timeout_not_a_hang(tmp_path: Path) -> None:
    append(tmp_path, SMALL, line(1))
    holder = os.open(journal_dir(tmp_path) / "journal.lock", os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another servo-agg, stopped while writing
        with pytest.raises(TimeoutError):
            append(tmp_path, SMALL, line(2), lock_seconds=0.05)
    finally:
        os.close(holder)
    assert [r["run"] for r in Journal(tmp_path, SMALL).every()] == ["run-00001"]


def test_a_journal_dir_is_made_inside_the_root_only(tmp_path: Path) -> None:
    fd = open_dir(tmp_path, "state/journal", create=True)
    os.close(fd)
    assert (tmp_path / "state" / "journal").is_dir()


def test_inspect_says_where_it_is_whether_it_can_be_written_and_how_large(
        tmp_path: Path) -> None:
    fresh = inspect(tmp_path, SMALL)
    assert (fresh.where, fresh.writable, fresh.size, fresh.files) == (
        ".servo-agg/journal.jsonl", True, 0, 0)
    assert fresh.why == ".servo-agg will be made by the first run"
    assert not journal_dir(tmp_path).exists()  # looking made nothing
    append(tmp_path, SMALL, line(1, 500))
    state = inspect(tmp_path, SMALL)
    assert (state.writable, state.why, state.size, state.files) == (True, None, 500, 1)


def test_the_journal_dir_is_never_a_driver(tmp_path: Path) -> None:
    (tmp_path / ".servo-agg").mkdir()
    entry = next(e for e in os.scandir(tmp_path) if e.name == ".servo-agg")
    assert classify(entry) == (False, "hidden file (name starts with '.')")


def test_a_run_is_found_by_its_id_or_the_start_of_it(tmp_path: Path) -> None:
    for n in range(3):
        append(tmp_path, SMALL, line(n))
    journal = Journal(tmp_path, SMALL)
    assert [r["run"] for r in journal.run("run-00001")] == ["run-00001"]
    assert len(journal.run("run-0000")) == 3
    assert journal.run("run-9") == []


def test_no_journal_is_no_records_and_says_so(tmp_path: Path) -> None:
    journal = Journal(tmp_path, SMALL)
    assert journal.last(1) == [] and not journal.found


NOW = 1796534232.0  # 2026-12-06T05:17:12Z


@pytest.mark.parametrize(("since", "expected"), [
    ("30m", NOW - 1800), ("2h", NOW - 7200), ("1d", NOW - 86400), ("1.5h", NOW - 5400),
    ("45s", NOW - 45), ("1w", NOW - 7 * 86400),
    ("2026-12-06T05:00:00Z", NOW - 1032), ("2026-12-06T06:00:00+01:00", NOW - 1032),
    ("2026-12-06t05:00:00z", NOW - 1032),  # RFC 3339 allows T and Z in lower case
])
def test_since_is_a_duration_back_or_an_rfc3339_time(since: str, expected: float) -> None:
    assert parse_since(since, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("since", ["", "yesterday", "-5m", "5x", "2026-13-01"])
def test_since_refuses_anything_else_saying_what_it_takes(since: str) -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_since(since, NOW)


@pytest.mark.parametrize("since", ["99999999999d", "1e9s", "infh"])
def test_since_calls_a_duration_too_long_out_of_range(since: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_since(since, NOW)


def test_the_start_of_a_record_is_read_back_as_seconds() -> None:
    record: dict[str, Any] = {"started": "2026-12-06T05:17:12.250000Z"}
    assert started_at(record) == NOW + 0.25
    assert started_at({"started": 5}) is None


def test_check_says_where_the_journal_is_whether_it_can_be_written_and_its_size(
        tmp_path: Path) -> None:
    from aggregator.root.config import AggregatorConfig
    from aggregator.tools.check import Report, check_journal

    report = Report()
    check_journal(report, tmp_path, AggregatorConfig(journal=SMALL))
    assert report.lines == ["", "journal", "  [ok]   .servo-agg/journal.jsonl: empty, at most "
                            "64 KiB; each run is recorded there (.servo-agg will be made "
                            "by the first run)"]
    append(tmp_path, SMALL, line(1, 3000))
    report = Report()
    check_journal(report, tmp_path, AggregatorConfig(journal=SMALL,
                                                     metrics_file="servo_agg.prom"))
    assert report.lines[2] == ("  [ok]   .servo-agg/journal.jsonl: 2.9 KiB in 1 file, at most "
                               "64 KiB; each run is recorded there")
    assert report.lines[3] == ("  [note] metrics file: servo_agg.prom, updated by each run")
    journal_dir(tmp_path).rename(tmp_path / "moved")
    journal_dir(tmp_path).write_text("a file")
    report = Report()
    check_journal(report, tmp_path, AggregatorConfig(journal=SMALL))
    assert report.warnings == 1 and report.problems == 0  # servo would still work
    assert "runs cannot be recorded there (.servo-agg: not a directory)" in report.lines[2]


def test_a_fault_of_the_record_s_own_leaves_the_outcome_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    from aggregator.entry import launch

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the journal")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launch, "keep_record", broken)
    assert launch.run(["--bogus"]) == 1  # refused, as it would have been
    out, err = capfd.readouterr()
    assert json.loads(out)["reason"] == "bad-usage"
    assert err.splitlines()[-1] == ("servo-agg: this run was not recorded (RuntimeError: a "
                                    "bug in the journal); the run's outcome stands as "
                                    "reported")


def test_a_record_over_the_bound_is_refused_and_the_history_stays(tmp_path: Path) -> None:
    """It was written after rotating, and trimming to a room below zero deleted every
    older file (review 1.4); record.encode never makes one, so this is the last guard."""
    for n in range(60):
        append(tmp_path, SMALL, line(n))
    before = {p.name: p.read_bytes() for p in journal_dir(tmp_path).glob(f"{JOURNAL_FILE}*")}
    assert len(before) > 2
    oversized = line(999, SMALL.max_bytes + 1000)
    with pytest.raises(OSError) as raised:
        append(tmp_path, SMALL, oversized)
    assert problem(raised.value) == (f"a record of {len(oversized)} bytes is over "
                                     f"the {file_bound(SMALL)} bytes one file may hold")
    after = {p.name: p.read_bytes() for p in journal_dir(tmp_path).glob(f"{JOURNAL_FILE}*")}
    assert after == before


@pytest.mark.parametrize("broken", ["journal", "metrics file"])
def test_each_sink_s_fault_is_its_own_and_said_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str], broken: str) -> None:
    """A metrics file that failed (bad bytes in it, a driver name prometheus_client could
    not encode) fell to the catch-all: "this run was not recorded", though the journal
    had the record (review 1.6). Each sink now has its own note, and the other is kept."""
    from aggregator.entry import launch
    from aggregator.journal import metrics, store

    def fault(*args: object) -> None:
        raise UnicodeError("a fault of its own")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("aggregator:\n  metrics_file: m.prom\n")
    monkeypatch.setattr(store if broken == "journal" else metrics,
                        "append" if broken == "journal" else "update", fault)
    assert launch.run(["--bogus"]) == 1
    out, err = capfd.readouterr()
    assert json.loads(out)["reason"] == "bad-usage"
    assert err.splitlines()[-1] == {
        "journal": "servo-agg: this run was not recorded: the journal "
                   ".servo-agg/journal.jsonl cannot be written (UnicodeError: a fault of "
                   "its own); the run's outcome stands as reported",
        "metrics file": f"servo-agg: the metrics file {tmp_path / 'm.prom'} was not "
                        "updated (UnicodeError: a fault of its own); the run's outcome "
                        "stands as reported"}[broken]
    if broken == "journal":
        assert "servo_agg_runs_total" in (tmp_path / "m.prom").read_text()
    else:
        assert [r["command"] for r in Journal(tmp_path, JournalConfig()).every()] == [None]


def test_a_run_refused_before_its_command_line_was_understood_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """As every refused run, at the journal's default place, with no command (a refusal
    whose config.yaml could not be read: the next test)."""
    from aggregator.entry import launch

    monkeypatch.chdir(tmp_path)
    assert launch.run(["--bogus"]) == 1
    assert json.loads(capfd.readouterr().out)["reason"] == "bad-usage"
    [record] = Journal(tmp_path, JournalConfig()).every()
    assert (record["command"], record["status"], record["reason"], record["calls"],
            record["args"]) == (None, "failed", "bad-usage", [], ["--bogus"])


def test_a_run_refused_for_its_config_yaml_is_recorded_at_the_default_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """config.yaml cannot be read, nor where it puts the journal: the default place, and
    nothing made where it would have gone; with the notes stderr got. (A refused run's
    record through ./adjust: test_stdio_e2e.py's closed stdout.)"""
    from aggregator.entry import launch

    (tmp_path / "adjust.d").mkdir()
    (tmp_path / "config.yaml").write_text("aggregator:\n  journal: {dir: elsewhere\n")
    monkeypatch.chdir(tmp_path)
    assert launch.run(["app"]) == 1
    out, err = capfd.readouterr()
    final = json.loads(out)
    assert final["reason"] == "bad-config"
    [record] = Journal(tmp_path, JournalConfig()).every()
    assert (record["command"], record["status"], record["reason"], record["calls"]) == (
        "adjust", "failed", "bad-config", [])
    assert record["request"] is None  # refused before the request was read
    assert record["message"] == final["message"]
    assert err == f"servo-agg: error (bad-config): {final['message']}\n"
    assert record["notes"] == [f"error (bad-config): {final['message']}"]
    assert not (tmp_path / "elsewhere").exists()


def test_help_leaves_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capfd: pytest.CaptureFixture[str]) -> None:
    """As the README and docs/journal.md say: --help (like --info and the readers) is
    not a run of servo's and adds nothing to the journal."""
    from aggregator.entry import launch

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as done:
        launch.run(["--help"], program="adjust")
    assert done.value.code == 0 and "usage: adjust" in capfd.readouterr().out
    assert not (tmp_path / ".servo-agg").exists()


def test_info_leaves_no_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capfd: pytest.CaptureFixture[str]) -> None:
    """Nor --info, which servo runs before every command: cli.py answers it before the
    launch, which keeps the record."""
    from aggregator.entry.cli import main

    (tmp_path / "adjust.d").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["--info", "app"], program="adjust") == 0
    assert json.loads(capfd.readouterr().out)["has_cancel"] is True
    assert not (tmp_path / ".servo-agg").exists()
