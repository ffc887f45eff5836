"""The metrics file (journal/metrics.py), read back with prometheus_client's own parser:
what it counts, counters that never go down, the atomic replace."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.journal import metrics
from aggregator.journal.metrics import Values, count, parse, update
from aggregator.journal.show import failed_drivers
from aggregator.journal.store import problem

pytestmark = pytest.mark.unit


def record(status: str = "ok", *, front: str = "adjust", command: str = "adjust",
           failed: tuple[tuple[str, str, str], ...] = (), duration: float = 1.5
           ) -> dict[str, Any]:
    calls = [{"driver": "10web", "status": "ok", "end": "exited", "reason": "success"}]
    calls += [{"driver": driver, "status": "failed", "end": end, "reason": reason}
              for driver, reason, end in failed]
    return {"front_end": front, "command": command, "status": status, "duration": duration,
            "calls": calls}


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            assert sample.timestamp is None  # the textfile collector refuses timestamps
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def by_labels(path: Path, sample: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named `sample` in the file at `path`, by their labels."""
    return {labels: v for (name, labels), v in samples(path).items() if name == sample}


def test_a_run_is_counted_by_front_end_command_and_status(tmp_path: Path) -> None:
    path = tmp_path / "servo_agg.prom"
    assert update(path, record(), 1000.0) is None
    assert update(path, record("failed", failed=(("20db", "timeout", "timeout"),
                                                 ("30x", "canceled", "canceled"))),
                  2000.0) is None
    assert update(path, record(front="measure", command="measure"), 3000.0) is None
    got = samples(path)
    runs = by_labels(path, "servo_agg_runs_total")
    assert runs == {
        (("command", "adjust"), ("front_end", "adjust"), ("status", "ok")): 1.0,
        (("command", "adjust"), ("front_end", "adjust"), ("status", "failed")): 1.0,
        (("command", "measure"), ("front_end", "measure"), ("status", "ok")): 1.0}
    failures = by_labels(path, "servo_agg_driver_failures_total")
    # a driver canceled (because another failed, or by servo) is no failure of its own
    assert failures == {(("driver", "20db"), ("front_end", "adjust"),
                         ("reason", "timeout")): 1.0}
    adjust = (("command", "adjust"), ("front_end", "adjust"))
    assert got[("servo_agg_last_run_end_time_seconds", adjust)] == 2000.0
    assert got[("servo_agg_last_success_time_seconds", adjust)] == 1000.0
    assert got[("servo_agg_last_run_duration_seconds", adjust)] == 1.5
    assert all(name.startswith("servo_agg_") for name, _ in got)


def test_counters_never_go_down_and_the_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "servo_agg.prom"
    totals = []
    for n in range(5):
        failing = n % 2 == 0
        update(path, record("failed" if failing else "ok",
                            failed=(("20db", "boom", "exited"),) if failing else ()), float(n))
        got = samples(path)
        totals.append(sum(v for (name, _), v in got.items() if name.endswith("_total")))
        # only the file and its lock: no temporary left, and none would end in .prom
        assert sorted(os.listdir(tmp_path)) == [".servo_agg.prom.lock", "servo_agg.prom"]
    assert totals == [2.0, 3.0, 5.0, 6.0, 8.0]


def test_a_previous_file_that_cannot_be_read_says_so_and_starts_again(
        tmp_path: Path) -> None:
    path = tmp_path / "servo_agg.prom"
    path.write_text("servo_agg_runs_total{front_end=\"adjust\" this is not the format\n")
    note = update(path, record(), 5.0)
    assert note is not None and "counters start again" in note
    assert samples(path)[("servo_agg_runs_total", (("command", "adjust"),
                                                   ("front_end", "adjust"),
                                                   ("status", "ok")))] == 1.0


def test_the_values_come_back_as_they_went_out(tmp_path: Path) -> None:
    values = count(count(Values(), record(), 7.0), record("failed", failed=(
        ("20db", 'a "quoted"\nreason', "exited"),)), 8.0)
    registry_text = tmp_path / "m.prom"
    update(registry_text, record(), 9.0)  # a file written by the real thing
    again = parse(registry_text.read_text())
    assert again.families[metrics.RUNS] == {("adjust", "adjust", "ok"): 1.0}
    round_trip = tmp_path / "round.prom"
    from prometheus_client import CollectorRegistry, write_to_textfile

    registry = CollectorRegistry(auto_describe=False)
    registry.register(values)
    write_to_textfile(str(round_trip), registry)
    assert parse(round_trip.read_text()).families == values.families


@contextlib.contextmanager
def no_hang(seconds: float = 10.0) -> Iterator[None]:
    """A test that would block for good (an open of a FIFO) ends the test process instead,
    with every thread's stack: no signal, since the code under test uses SIGALRM."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_what_is_not_a_regular_file_is_neither_read_nor_replaced(
        tmp_path: Path, kind: str) -> None:
    """A FIFO there blocked the read for good, the metrics lock held (review 1.2); a
    symlink was followed. Both are now refused, as the journal refuses them, and left."""
    path = tmp_path / "servo_agg.prom"
    elsewhere = tmp_path / "elsewhere.prom"
    elsewhere.write_text("# not servo-agg's\n")
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(elsewhere)
    with no_hang(), pytest.raises(OSError) as raised:
        update(path, record(), 1.0)
    assert problem(raised.value) == {"fifo": "servo_agg.prom is not a regular file",
                                     "symlink": "a symlink, which servo-agg does not "
                                                "follow"}[kind]
    assert stat.S_ISFIFO(path.lstat().st_mode) if kind == "fifo" else path.is_symlink()
    assert elsewhere.read_text() == "# not servo-agg's\n"
    assert sorted(os.listdir(tmp_path)) == [".servo_agg.prom.lock", "elsewhere.prom",
                                            "servo_agg.prom"]  # no temporary left


def test_bytes_that_are_not_utf8_do_not_lose_the_counters(tmp_path: Path) -> None:
    """The file was decoded outside the try: 0xFF in it raised, and it was never
    replaced again (review 1.6)."""
    path = tmp_path / "servo_agg.prom"
    update(path, record(), 1.0)
    path.write_bytes(path.read_bytes().replace(b"Runs of servo-agg", b"Runs \xff of"))
    assert update(path, record(), 2.0) is None
    assert samples(path)[("servo_agg_runs_total", (("command", "adjust"),
                                                   ("front_end", "adjust"),
                                                   ("status", "ok")))] == 2.0


def test_a_driver_name_that_is_not_utf8_is_counted_under_a_name_that_is(
        tmp_path: Path) -> None:
    """os.listdir gives such a name surrogate-escaped; prometheus_client could not encode
    it, so no file was written at all (review 1.6)."""
    path = tmp_path / "servo_agg.prom"
    for end in (2.0, 3.0):
        assert update(path, record("failed", failed=(("20d\udcffb", "boom", "exited"),)),
                      end) is None
    failures = by_labels(path, "servo_agg_driver_failures_total")
    assert failures == {(("driver", "20d\ufffdb"), ("front_end", "adjust"),
                         ("reason", "boom")): 2.0}


def test_a_driver_that_could_not_be_started_failed_on_its_own_account(
        tmp_path: Path) -> None:
    """spawn-failed calls end not-started, and were dropped with those a stopping run
    never started (review 1.7); the metrics file and --history count them alike."""
    path = tmp_path / "servo_agg.prom"
    run = record("failed", failed=(("20gone", "spawn-failed", "not-started"),
                                   ("30late", "terminated", "not-started"),
                                   ("40late", "canceled", "not-started"),
                                   ("50stopped", "terminated", "stopped"),
                                   ("60sibling", "driver-failed", "canceled")))
    update(path, run, 1.0)
    failures = by_labels(path, "servo_agg_driver_failures_total")
    assert failures == {(("driver", "20gone"), ("front_end", "adjust"),
                         ("reason", "spawn-failed")): 1.0}
    assert failed_drivers(run) == ["20gone"]
