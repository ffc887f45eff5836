"""The metrics file (journal/metrics.py), read back with prometheus_client's own parser:
what it counts, counters that never go down, the atomic replace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aggregator.journal import metrics
from aggregator.journal.metrics import Values, count, parse, update

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


def test_a_run_is_counted_by_front_end_command_and_status(tmp_path: Path) -> None:
    path = tmp_path / "servo_agg.prom"
    assert update(path, record(), 1000.0) is None
    assert update(path, record("failed", failed=(("20db", "timeout", "timeout"),
                                                 ("30x", "canceled", "canceled"))),
                  2000.0) is None
    assert update(path, record(front="measure", command="measure"), 3000.0) is None
    got = samples(path)
    runs = {labels: v for (name, labels), v in got.items() if name == "servo_agg_runs_total"}
    assert runs == {
        (("command", "adjust"), ("front_end", "adjust"), ("status", "ok")): 1.0,
        (("command", "adjust"), ("front_end", "adjust"), ("status", "failed")): 1.0,
        (("command", "measure"), ("front_end", "measure"), ("status", "ok")): 1.0}
    failures = {labels: v for (name, labels), v in got.items()
                if name == "servo_agg_driver_failures_total"}
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
