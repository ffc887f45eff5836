"""Machinery for the hostile-driver tests: a servo root with the fault driver between two
good ones, the processes the fault driver started, and the aggregator's peak memory."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from tests.support import (
    ADJUST,
    PYTHON_SHEBANG,
    REPO,
    AdjustRun,
    json_lines_file,
    run_adjust,
    simple_driver,
    tagged_pids,
    write_driver,
)

FAULT_DRIVER = REPO / "faults" / "adjust-fault"

#: OPTUNE_IO_TIMEOUT in these tests: the aggregator waits T-1 = 2 s for a driver's line.
T = 3.0

#: The aggregator's peak resident memory must stay under this whatever a driver writes:
#: about twice what it needs (~30 MiB), and well under one 50 MB line or 200 MB of stderr.
AGGREGATOR_PEAK_RSS_BOUND = 64 * 1024 * 1024

FAULT = "02fault"
GOOD = ("01good", "03good")

#: An adjust request touching all three drivers.
REQUEST: dict[str, Any] = {
    "application": {"components": {
        "a": {"settings": {"x": {"value": 2}}},
        "fault": {"settings": {"level": {"value": 3}}},
        "b": {"settings": {"y": {"value": 7}}},
    }},
    "control": {"userdata": {"run": "matrix"}},
}


def recording_driver(component: str, setting: str, version: str, root: Path,
                     name: str) -> str:
    """simple_driver that also appends every command line it gets to <name>.calls."""
    calls = shlex.quote(str(root / f"{name}.calls"))
    return simple_driver(component, {setting: {"value": 1, "min": 0, "max": 10}},
                         version=version, log=str(root / f"{name}.log"),
                         prelude=f'printf \'%s\\n\' "$*" >> {calls}')


def install_fault(root: Path, name: str = FAULT, folder: str = "adjust.d") -> Path:
    """A copy of the fault driver, run by this Python without site (PYTHON_SHEBANG) rather
    than by `env python3`: the same stdlib script, started for less. Its own `#!` line is
    tested in test_fault_driver.py."""
    path = root / folder / name
    path.parent.mkdir(exist_ok=True)
    _, body = FAULT_DRIVER.read_text().split("\n", 1)
    path.write_text(f"{PYTHON_SHEBANG}\n{body}")
    path.chmod(0o755)
    return path


def fault_root(root: Path) -> Path:
    """01good (component a), 02fault (component fault), 03good (component b)."""
    write_driver(root, "01good", recording_driver("a", "x", "a-1.0", root, "01good"))
    install_fault(root)
    write_driver(root, "03good", recording_driver("b", "y", "b-1.0", root, "03good"))
    return root


def calls_of(root: Path, name: str) -> list[str]:
    path = root / f"{name}.calls"
    return path.read_text().splitlines() if path.exists() else []


def requests_of(root: Path, name: str, suffix: str = "log") -> list[dict[str, Any]]:
    return json_lines_file(root / f"{name}.{suffix}")


@dataclass(frozen=True)
class Started:
    pid: int
    call: str
    role: str


def started_by_fault(pidfile: Path) -> list[Started]:
    """Every process the fault driver recorded: itself per call, and its children."""
    if not pidfile.exists():
        return []
    found = []
    for line in pidfile.read_text().splitlines():
        pid, call, role = line.split()
        found.append(Started(int(pid), call, role))
    return found



def aggregator_pid(tag: str, program: Path = ADJUST) -> int | None:
    """The running aggregator among the processes carrying `tag`: `program`, or ./adjust
    or ./measure that a wrapper `program` exec'd."""
    wanted = {os.fsencode(str(p)) for p in (program, ADJUST, ADJUST.parent / "measure")}
    for pid in tagged_pids(tag):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted & set(argv[:2]):
            return pid
    return None


def peak_rss(pid: int) -> int | None:
    """VmHWM: the most resident memory the process has had, in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


async def wait_until(predicate: Any, within: float = 15.0, every: float = 0.02) -> bool:
    """Poll `predicate` (a process or file state, which has no event to wait on)."""
    with trio.move_on_after(within):
        while True:
            if predicate():
                return True
            await trio.sleep(every)
    return False


async def run_watched(root: Path, *args: str, tag: str, env: dict[str, str],
                      stdin: bytes | str = b"",
                      signals_after_start: tuple[int, ...] = (),
                      signal_when: Any = None,
                      program: Path = ADJUST) -> tuple[AdjustRun, int]:
    """run_adjust, while sampling the aggregator's peak memory (returned, in bytes).

    With `signals_after_start`, each signal is sent to the aggregator once `signal_when()`
    is true (e.g. once the fault driver's adjust has started), so the tests need no sleeps.
    `adjust` may be a wrapper that execs ./adjust (e.g. with a standard fd closed).
    """
    peak = 0
    done = trio.Event()
    result: list[AdjustRun] = []

    async def run() -> None:
        result.append(await run_adjust(root, *args, tag=tag, env=env, stdin=stdin,
                                       adjust=program))
        done.set()

    async def watch() -> None:
        nonlocal peak
        pid = None
        while not done.is_set():
            pid = pid or aggregator_pid(tag, program)
            if pid is not None:
                peak = max(peak, peak_rss(pid) or 0)
            await trio.sleep(0.02)

    async def send_signals() -> None:
        await wait_until(lambda: signal_when is None or signal_when(), within=30)
        pid = aggregator_pid(tag, program)
        assert pid is not None, "the aggregator is not running"
        for sig in signals_after_start:
            os.kill(pid, sig)
            await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        nursery.start_soon(watch)
        if signals_after_start:
            nursery.start_soon(send_signals)
    return result[0], peak
