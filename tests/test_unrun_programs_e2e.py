"""A measure or adjust driver that lost its execute bit is named where a person looks
(#16 point 1): on stderr of every command that runs drivers, and as a [warn] in --check,
with the fix (test_check.py's test_a_program_without_its_execute_bit_is_a_warning_with_the_fix,
which reads the root alone). Before, ./measure returned ok without its metrics and --check
listed it as data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.measure_support import MEASURE, measure_driver
from tests.support import run_adjust

pytestmark = pytest.mark.e2e


def root_with_a_driver_gone_data(root: Path) -> None:
    measure_driver(root, "10-ab", {"throughput": {"unit": "rpm"}}, window=0.1)
    measure_driver(root, "20-prom", {"p99_latency": {"unit": "ms"}}, window=0.1)
    (root / "measure.d" / "20-prom").chmod(0o644)
    (root / "measure.d" / "prom.yaml").write_text("url: http://prom\n")  # data: no word


async def test_every_command_that_runs_drivers_says_so(servo_root: Path, tag: str) -> None:
    """A measurement, the command that bit. Every other command that runs drivers builds
    its job where this one does (launch.py's _job, which warns before the command is
    known), and what the warning says is test_discovery.py's."""
    root_with_a_driver_gone_data(servo_root)
    run = await run_adjust(servo_root, "app", tag=tag, adjust=MEASURE,
                           stdin='{"metrics": ["throughput"], "control": {"duration": 0}}')
    assert run.returncode == 0, run.stderr
    assert ("servo-agg: warning: measure.d/20-prom is not executable, though it starts "
            "with #!") in run.stderr
    assert "chmod +x measure.d/20-prom" in run.stderr
    assert "prom.yaml" not in run.stderr


async def test_info_stays_quiet(servo_root: Path, tag: str) -> None:
    root_with_a_driver_gone_data(servo_root)
    run = await run_adjust(servo_root, "--info", tag=tag, adjust=MEASURE)
    assert run.returncode == 0 and run.stderr == ""
