"""What --check says of the bounds on every driver: where T comes from, which driver
could hang forever, and how each resource limit is enforced on this host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aggregator.process.confine import Confinement
from aggregator.protocol.environment import CONFIG_IO_TIMEOUT, IO_TIMEOUT_VAR, ServoEnvironment
from aggregator.root.config import DriverBounds, ResourceLimits, RunBounds
from aggregator.tools.check import Report, check_bounds, check_environment

pytestmark = pytest.mark.unit


def line_with(report: Report, *parts: str) -> str:
    for line in report.lines:
        if all(p in line for p in parts):
            return line
    raise AssertionError(f"no line with {parts!r} in:\n" + "\n".join(report.lines))


def test_io_timeout_from_config_is_named_as_t_where_servo_sets_none() -> None:
    report = Report()
    environment = check_environment(report, {}, 3.0, io_timeout=3.0)
    assert (environment.io_timeout, environment.io_timeout_source) == (3.0, CONFIG_IO_TIMEOUT)
    assert line_with(report, "[note]", "io_timeout=3 (config.yaml: servo sets no "
                     "OPTUNE_IO_TIMEOUT here): servo-agg waits at most 2 s for each line",
                     "0.5 s grace")


def test_servos_t_wins_over_io_timeout() -> None:
    report = Report()
    environment = check_environment(report, {"OPTUNE_IO_TIMEOUT": "10"}, 0.5, io_timeout=3.0)
    assert (environment.io_timeout, environment.io_timeout_source) == (10.0, IO_TIMEOUT_VAR)
    assert line_with(report, "[note]", "OPTUNE_IO_TIMEOUT=10: servo-agg waits at most 9 s")


def test_a_short_io_timeout_is_warned_of_as_servos_would_be() -> None:
    report = Report()
    check_environment(report, {}, 0.5, io_timeout=1.5)
    assert line_with(report, "[warn]", "io_timeout=1.5", "is very short")


# -- the bounds section ---------------------------------------------------------------------

def bounds_report(bounds: dict[str, DriverBounds], environment: ServoEnvironment,
                  confinement: Confinement | None = None) -> Report:
    report = Report()
    check_bounds(report, RunBounds(bounds), environment, confinement or Confinement())
    return report


NONE = ServoEnvironment(None, "all")


def test_drivers_that_could_hang_forever_are_a_warning() -> None:
    report = bounds_report({"10-web": DriverBounds(), "20-db": DriverBounds()}, NONE)
    assert line_with(report, "[warn]", "10-web, 20-db could each hang forever, and servo "
                     "with them: servo sets no OPTUNE_IO_TIMEOUT here, and config.yaml no "
                     "io_timeout, nor a deadline for them (set one)")
    assert report.warnings == 1
    one = bounds_report({"10-web": DriverBounds()}, NONE)
    assert line_with(one, "[warn]", "10-web could hang forever, and servo with it")


def test_a_driver_with_a_deadline_cannot_hang_forever() -> None:
    report = bounds_report({"10-web": DriverBounds(deadline=30.0), "20-db": DriverBounds()},
                           NONE)
    assert line_with(report, "[warn]", "20-db could hang forever, and servo with it",
                     "nor a deadline for it")
    assert "10-web" not in line_with(report, "[warn]")
    assert line_with(report, "[ok]", "deadline of each call: 30 s (10-web), none (20-db)")
    every = bounds_report({"10-web": DriverBounds(deadline=30.0)}, NONE)
    assert every.warnings == 0
    assert line_with(every, "[ok]", "deadline of each call: 30 s for every driver")


def test_with_t_from_anywhere_no_driver_could_hang_forever() -> None:
    for environment in (NONE.with_fallback(3.0, CONFIG_IO_TIMEOUT),
                        ServoEnvironment(10.0, "all")):
        report = bounds_report({"10-web": DriverBounds()}, environment)
        assert report.warnings == 0
        assert line_with(report, "[ok]", "each driver's lines: within",
                         environment.io_timeout_source)


MIB = 1 << 20


def test_each_limit_says_how_it_is_enforced_here_and_warns_where_it_is_not(
        tmp_path: Path) -> None:
    bounds = {"10-web": DriverBounds(ResourceLimits(memory=512 * MIB, cpu=1.5)),
              "20-db": DriverBounds(ResourceLimits(memory=1 << 30, cpu=1.5)),
              "30-x": DriverBounds(ResourceLimits(cpu=1.0))}
    environment = ServoEnvironment(10.0, "all")
    fallback = bounds_report(bounds, environment)  # no cgroup v2 controller here
    assert line_with(fallback, "[ok]", "limits.memory 512 MiB (10-web), 1 GiB (20-db), none "
                     "(30-x): RLIMIT_DATA of each process")
    assert line_with(fallback, "[warn]", "limits.cpu 1.5 CPUs (10-web, 20-db), 1 CPU (30-x): "
                     "not enforced: it needs the cgroup v2 cpu controller")
    assert line_with(fallback, "[note]", "no limits.pids")
    assert fallback.warnings == 1
    cgroups = bounds_report(bounds, environment, Confinement(tmp_path, {"memory", "cpu"}))
    assert line_with(cgroups, "[ok]", "limits.memory", "memory.max of each call's own cgroup")
    assert line_with(cgroups, "[ok]", "limits.cpu", "cpu.max of each call's own cgroup")
    assert cgroups.warnings == 0


def test_a_pids_limit_under_rlimit_nproc_warns_where_it_binds_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = {"10-web": DriverBounds(ResourceLimits(pids=64))}
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    as_root = bounds_report(bounds, ServoEnvironment(10.0, "all"))
    assert line_with(as_root, "[warn]", "limits.pids 64 for every driver: RLIMIT_NPROC",
                     "not enforced, since drivers run as root")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    as_user = bounds_report(bounds, ServoEnvironment(10.0, "all"))
    assert line_with(as_user, "[ok]", "limits.pids 64 for every driver: RLIMIT_NPROC",
                     "counts every process of the driver's user")
    assert "root" not in line_with(as_user, "limits.pids")


def test_no_limits_at_all_is_a_note() -> None:
    report = bounds_report({"10-web": DriverBounds()}, ServoEnvironment(10.0, "all"))
    assert line_with(report, "[note]", "no limits.memory, limits.pids, limits.cpu: a driver "
                     "may take all of it that servo-agg may")
