"""The fault driver itself (faults/adjust-fault): how an operator or a test chooses what
goes wrong, and that it is a good driver everywhere else."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fault_support import FAULT_DRIVER
from tests.support import ADJUST, PYTHON_BIN, TAG_VAR

REQUIRED_MODES = (
    "hang", "hang-after-progress", "ignore-sigterm", "grandchild-holds-stdout",
    "setsid-grandchild-holds-stdout", "non-json", "non-object", "partial-line",
    "exit-nonzero-silent", "exit-zero-silent", "ok-then-exit-1", "stderr-flood", "huge-line",
    "progress-flood", "bad-progress", "sigkill-self", "close-stdin", "slow-alive",
    "cancel-aware", "no-cancel-handler", "ignore-sigusr1", "lone-surrogate", "invalid-utf8",
    "non-finite-descriptor", "non-finite-result", "envless-daemon", "envless-daemon-then-ok",
    "nested-aggregator", "loadgen-child-holds-pipes",
)


def fault(root: Path, *args: str, tag: str, stdin: str = "",
          **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    environment.update({"PATH": PYTHON_BIN + os.pathsep + environment.get("PATH", ""),
                        TAG_VAR: tag, **env})
    return subprocess.run([str(FAULT_DRIVER), *args], cwd=root, input=stdin, text=True,
                          capture_output=True, env=environment, timeout=30, check=False)


@pytest.mark.unit
def test_it_is_an_executable_stdlib_script() -> None:
    assert os.access(FAULT_DRIVER, os.X_OK)
    assert FAULT_DRIVER.read_text().startswith("#!/usr/bin/env python3\n")


@pytest.mark.e2e
def test_every_mode_the_matrix_needs_is_there(tmp_path: Path, tag: str) -> None:
    listed = fault(tmp_path, "--modes", tag=tag).stdout
    names = {line.split()[0] for line in listed.split("Modes:\n")[1].splitlines()}
    assert set(REQUIRED_MODES) <= names


@pytest.mark.e2e
def test_elsewhere_than_its_phase_it_is_a_good_driver(tmp_path: Path, tag: str) -> None:
    info = json.loads(fault(tmp_path, "--info", tag=tag, FAULT_MODE="hang").stdout)
    assert info == {"version": "1.0", "has_cancel": True}
    query = json.loads(fault(tmp_path, "--query", "app", tag=tag, FAULT_MODE="hang").stdout)
    assert query["application"]["components"]["fault"]["settings"]["level"]["value"] == 1
    adjusted = fault(tmp_path, "app", tag=tag, stdin="{}", FAULT_MODE="hang",
                     FAULT_PHASE="query")
    assert json.loads(adjusted.stdout.splitlines()[-1])["status"] == "ok"


@pytest.mark.e2e
def test_the_config_section_chooses_and_the_environment_wins(tmp_path: Path,
                                                             tag: str) -> None:
    (tmp_path / "config.yaml").write_text(
        "faulty:\n  mode: hang\n"
        "fault:   # rehearsal\n"
        "  # a comment line\n"
        "  mode: 'exit-nonzero-silent'\n"
        "  exit_code: 5   # why not\n"
        "other:\n  mode: hang\n")
    assert fault(tmp_path, "app", tag=tag, stdin="{}").returncode == 5
    overridden = fault(tmp_path, "app", tag=tag, stdin="{}", FAULT_MODE="ok-then-exit-1")
    assert overridden.returncode == 1
    assert json.loads(overridden.stdout)["status"] == "ok"


@pytest.mark.e2e
def test_an_unknown_mode_says_which_ones_exist(tmp_path: Path, tag: str) -> None:
    done = fault(tmp_path, "app", tag=tag, stdin="{}", FAULT_MODE="explode")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "unknown mode 'explode'" in done.stderr and "non-json" in done.stderr


@pytest.mark.e2e
def test_the_pidfile_lists_each_process_with_its_call_and_role(tmp_path: Path,
                                                               tag: str) -> None:
    pidfile = tmp_path / "pids"
    done = fault(tmp_path, "--query", "app", tag=tag, FAULT_PIDFILE=str(pidfile))
    assert done.returncode == 0
    ((pid, call, role),) = [line.split() for line in pidfile.read_text().splitlines()]
    assert (call, role) == ("query", "driver") and int(pid) > 1


@pytest.mark.e2e
def test_it_runs_on_the_system_python_too(tmp_path: Path, tag: str) -> None:
    """An operator's servo root may only have the system python3 (no venv, no yaml)."""
    system = Path("/usr/bin/python3")
    if not system.exists():
        system = Path(sys.executable)
    done = subprocess.run([str(system), str(FAULT_DRIVER), "--info"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, check=True,
                          env={**os.environ, TAG_VAR: tag})
    assert json.loads(done.stdout)["has_cancel"] is True


@pytest.mark.e2e
def test_the_envless_daemon_has_no_environment_and_a_session_of_its_own(
        tmp_path: Path, tag: str) -> None:
    pidfile = tmp_path / "pids"
    done = fault(tmp_path, "--query", "app", tag=tag, FAULT_MODE="envless-daemon-then-ok",
                 FAULT_PHASE="query", FAULT_PIDFILE=str(pidfile))
    def recorded_daemons(within: float) -> list[int]:
        """The daemon's pid once it recorded itself (it runs after the driver is gone)."""
        deadline = time.monotonic() + within
        while "daemon" not in pidfile.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        return [int(pid) for pid, _, role in
                (line.split() for line in pidfile.read_text().splitlines()) if role == "daemon"]

    daemons = recorded_daemons(10)
    records = [line.split() for line in pidfile.read_text().splitlines()]
    try:
        assert done.returncode == 0 and "application" in json.loads(done.stdout)
        (daemon,) = daemons
        assert Path(f"/proc/{daemon}/environ").read_bytes() == b""
        assert os.getsid(daemon) not in (os.getsid(0), daemon)  # its parent's session
        assert os.getsid(daemon) != int(records[0][0])
    finally:
        # It carries no tag, so the tag check cannot see it: killed here, also when it
        # recorded itself too late for the assertions (a loaded machine).
        for pid in daemons or recorded_daemons(30):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.e2e
def test_the_nested_aggregator_answers_as_the_aggregator_it_becomes(tmp_path: Path,
                                                                    tag: str) -> None:
    done = fault(tmp_path, "--info", tag=tag, FAULT_MODE="nested-aggregator",
                 FAULT_PHASE="info", FAULT_AGGREGATOR=str(ADJUST), FAULT_NESTED_MODE="hang")
    assert json.loads(done.stdout)["version"].startswith("servo-agg "), done.stderr
    assert (tmp_path / "fault-nested" / "adjust.d" / "fault").read_bytes() == \
        FAULT_DRIVER.read_bytes()
    forever = fault(tmp_path, "--info", tag=tag, FAULT_MODE="nested-aggregator",
                    FAULT_PHASE="info", FAULT_NESTED_MODE="nested-aggregator")
    assert forever.returncode == 2 and "nest forever" in forever.stderr


@pytest.mark.e2e
def test_a_measure_fault_driver_nests_the_measure_aggregator(tmp_path: Path, tag: str) -> None:
    done = fault(tmp_path, "--describe", "app", tag=tag, FAULT_KIND="measure",
                 FAULT_MODE="nested-aggregator", FAULT_PHASE="describe",
                 FAULT_AGGREGATOR=str(ADJUST.parent / "measure"), FAULT_NESTED_MODE="ok")
    assert "fault_level" in json.loads(done.stdout.splitlines()[-1])["metrics"], done.stderr
    assert (tmp_path / "fault-nested" / "measure.d" / "fault").exists()
