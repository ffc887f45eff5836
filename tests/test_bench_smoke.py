"""bench/run.py must not rot: its smoke mode runs every row against ./adjust (nothing is
asserted on time), and the arithmetic behind the table is checked on made-up samples."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import (
    FLOOR,
    RELAY_DRIVERS,
    SMOKE,
    Aggregator,
    BenchFailure,
    Results,
    analyse_relay,
    parse_args,
    percentile,
    rows,
    table,
)
from tests.support import REPO, adjust_env


@pytest.mark.e2e
def test_smoke_runs_every_row_and_prints_the_table(tmp_path: Path, tag: str) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    report = tmp_path / "bench.json"
    env = adjust_env(tag, TMPDIR=str(scratch))
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--json", str(report)],
        env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    expected = rows(SMOKE)
    got = json.loads(report.read_text())["rows"]
    assert [r["key"] for r in got] == [r.key for r in expected]
    for row in got:
        assert not row["error"], row
        for column, median in row["median"].items():
            # Finite, but no sign asserted: one noisy round can put a cycle under its floor.
            assert median is not None and math.isfinite(median), (row, column)
    by_key = {r["key"]: r["median"] for r in got}
    # A flood is relayed at a bounded rate, the newest state within one interval.
    assert 1 <= by_key["relay.out"]["A"] < RELAY_DRIVERS * SMOKE.relay_lines
    assert by_key["relay.cpu"]["A"] > 0  # the aggregator's own CPU time was read
    assert by_key["rss.stderr"]["A"] > 1  # the aggregator's VmHWM was really sampled
    assert by_key["rss.series"]["A"] > 1  # and ./measure's, its time series all relayed
    assert by_key["describe.seq.floor"][FLOOR] > 0

    lines = proc.stdout.splitlines()
    assert lines[1].startswith("machine: ") and "Python" in lines[1]
    for row in expected:
        assert any(line.startswith(row.label) for line in lines), row.label
    assert list(scratch.iterdir()) == []  # the throw-away servo roots are gone


@pytest.mark.unit
def test_relay_analysis_times_each_write_until_servo_sees_it_or_a_newer_state() -> None:
    def line(arrived: float, stamp: float, driver: int, i: int) -> tuple[float, bytes]:
        text = json.dumps({"progress": i, "message": f"0{driver}flood: {stamp:.6f} d{driver} {i}"})
        return arrived, text.encode()

    written = {1: [10.000, 10.001, 10.002], 2: [20.000, 20.010, 20.020]}
    lines = [
        line(10.002, 10.000, 1, 0),
        # 1's lines 1 and 2 were replaced by its end
        (10.300, b'{"progress": 50, "message": "01flood: done"}'),
        line(20.010, 20.000, 2, 0), line(20.030, 20.020, 2, 2),  # 2's line 1: replaced by 2
        (20.040, b'{"status": "ok", "reason": "success"}'),
    ]
    relay = analyse_relay(lines, written)
    assert relay.out == 4  # progress lines, stamped or not
    assert relay.read == pytest.approx(0.002 + 0.020)
    assert relay.wall == pytest.approx(0.300 + 0.030)
    assert relay.delays == pytest.approx([0.002, 0.299, 0.298, 0.010, 0.020, 0.010])


@pytest.mark.unit
def test_relay_analysis_refuses_a_write_servo_never_saw() -> None:
    lines = [(1.0, b'{"progress": 1, "message": "01flood: 0.500000 d1 0"}')]
    with pytest.raises(BenchFailure, match="never saw line 1 of driver 1"):
        analyse_relay(lines, {1: [0.5, 0.6]})


@pytest.mark.unit
def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3
    assert math.isnan(percentile([], 50))


@pytest.mark.unit
def test_table_shows_ratios_against_the_first_aggregator_and_judges_targets() -> None:
    aggs = [Aggregator("A", Path("/a/adjust")), Aggregator("B", Path("/b/adjust"))]
    results = Results()
    results.add(FLOOR, {"startup.python": 20.0})
    results.add("A", {"startup.info": 40.0, "startup.info.over": 2.0})
    results.add("B", {"startup.info": 80.0, "startup.info.over": 60.0})
    results.errors[("rss.line", "B")] = "boom"
    text = table(SMOKE, aggs, results)
    info = next(line for line in text if line.startswith("(a) adjust --info app "))
    assert "40.0 ms" in info and "80.0 ms" in info and "2.00" in info
    over = next(line for line in text if line.startswith("    overhead (− python3"))
    assert over.split()[-2:] == ["pass", "FAIL"]
    assert "error" in next(line for line in text if line.startswith("(e) peak RSS, a driver "
                                                                      "writes a"))


@pytest.mark.unit
def test_fewer_than_five_runs_are_refused_outside_smoke_mode() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--runs", "3"])
    assert parse_args(["--smoke", "--runs", "1"]).runs == 1
