"""servo-agg within the process's limits, end to end: its soft `ulimit -n` raised to the
hard limit while each driver gets the one it would have had; drivers that must run at
once but cannot all fit refused before any starts, naming the limit; many --info calls
under a low limit all asked (not all at once); running out of descriptors a spawn-failed
error that names the limit; a descriptor of tens of MB gets through."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from aggregator.protocol.vocabulary import Call, Reason
from aggregator.root.discovery import Driver
from aggregator.supervision.spec import CallSpec
from tests.fault_support import run_watched
from tests.support import (
    ADJUST,
    AGGREGATOR,
    TAG_VAR,
    AdjustRun,
    adjust_env,
    real_supervisor,
    run_adjust,
    write_driver,
)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")]

MIB = 1024 * 1024

def sh_driver(name: str) -> str:
    """A driver in sh, so that many of them start quickly: its query, an ok for its adjust."""
    descriptor = {"application": {"components": {name: {"settings": {"x": {"value": 1}}}}}}
    return (f'case "$1" in\n'
            f"  --info) echo '{{\"version\": \"1\"}}' ;;\n"
            f"  --query) echo '{json.dumps(descriptor)}' ;;\n"
            f"  *) cat > /dev/null; echo '{json.dumps({'status': 'ok', 'reason': 'success'})}' ;;\n"
            "esac\n")


def with_ulimit(root: Path, soft: int, hard: int | None = None,
                program: Path = ADJUST) -> Path:
    """`program` (./adjust) started with the soft `ulimit -n` `soft` and the hard one
    `hard` (the same by default): only the child gets them."""
    wrapper = root / f"{program.name}-ulimit-{soft}-{hard}"
    wrapper.write_text(f"#!/bin/sh\nulimit -Sn {soft} && ulimit -Hn {hard or soft} || exit 97\n"
                       f'exec {program} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


#: More drivers than fit under the limit at once: (96 - the ~15 descriptors servo-agg
#: holds - the 32 it keeps in reserve) / 4 per driver is about 12 at a time.
DRIVERS, ULIMIT = 60, 96


async def test_many_drivers_under_a_low_ulimit_are_all_asked_their_version(
        servo_root: Path, tag: str) -> None:
    names = [f"d{i:03}" for i in range(DRIVERS)]
    for name in names:
        write_driver(servo_root, name, sh_driver(name), shebang="#!/bin/sh")
    run = await run_adjust(servo_root, "--version", tag=tag,
                           adjust=with_ulimit(servo_root, ULIMIT), timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert run.lines == [f"{AGGREGATOR} ({', '.join(f'{n} 1' for n in names)})"]


def nofile_driver(name: str) -> str:
    """A measure driver in sh: describes one metric, and measures it recording its own
    soft `ulimit -n` and its parent's (servo-agg's) limits."""
    result = {"status": "ok", "metrics": {name: {"value": 1}}}
    return (f'echo "$1" >> {name}.called\n'
            f'case "$1" in\n'
            f"  --describe) echo '{json.dumps({'metrics': {name: {}}})}' ;;\n"
            f"  *) ulimit -Sn > {name}.nofile\n"
            f'     grep "open files" /proc/$PPID/limits > {name}.parent\n'
            f"     cat > /dev/null; echo '{json.dumps(result)}' ;;\n"
            "esac\n")


MEASURE_PROGRAM = Path(__file__).resolve().parent.parent / "measure"


async def measure_under(root: Path, tag: str, soft: int, hard: int) -> AdjustRun:
    names = [f"m{i:02}" for i in range(12)]
    for name in names:
        write_driver(root, name, nofile_driver(name), shebang="#!/bin/sh",
                     folder="measure.d")
    return await run_adjust(root, "app", tag=tag, stdin=json.dumps({"metrics": names}),
                            adjust=with_ulimit(root, soft, hard, MEASURE_PROGRAM))


async def test_measure_raises_its_descriptor_limit_and_gives_each_driver_its_own(
        servo_root: Path, tag: str) -> None:
    """12 drivers at once do not fit in a soft limit of 64, but do in the hard one (128):
    servo-agg raises its own, and each driver still gets 64."""
    run = await measure_under(servo_root, tag, 64, 128)
    assert run.final["status"] == "ok", run.final
    assert len(run.final["metrics"]) == 12
    for i in range(12):
        assert (servo_root / f"m{i:02}.nofile").read_text().split() == ["64"]
        assert (servo_root / f"m{i:02}.parent").read_text().split()[3:5] == ["128", "128"]


async def test_measure_drivers_that_cannot_all_run_at_once_are_refused_before_any_starts(
        servo_root: Path, tag: str) -> None:
    """A measurement, the command that bit: the launch asks every command's Run for the
    room its job needs before any head start (test_launch.py), how many each command
    needs is the job's (test_descriptor_budget.py), and why it needs them is said as
    --check says it (test_check_probe.py's parallel_queries)."""
    run = await measure_under(servo_root, tag, 64, 64)
    assert (run.final["status"], run.final["reason"]) == ("failed", "too-many-drivers")
    message = run.final["message"]
    assert message.startswith("12 drivers must run at once (")
    assert "the limit is 64 (ulimit -n)" in message and "no driver was started" in message
    # servo posts our stderr after the message: the line for people only points at it
    assert "servo-agg: error (too-many-drivers): the final line on stdout says" in run.stderr
    assert not [p for p in os.listdir(servo_root) if p.endswith(".called")]  # none ran


@contextlib.contextmanager
def descriptors_left(count: int) -> Iterator[None]:
    """This process may open only `count` more descriptors inside the block. The gaps
    below the highest open descriptor are filled first: a new descriptor takes the
    lowest free number, and the limit counts numbers, not open descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    fillers: list[int] = []
    while (fd := os.open(os.devnull, os.O_RDONLY)) < highest:
        fillers.append(fd)
    os.close(fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1 + count, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for held in fillers:
            os.close(held)


async def test_running_out_of_descriptors_is_spawn_failed_naming_the_limit(
        servo_root: Path, tag: str) -> None:
    path = write_driver(servo_root, "10any", "print('{}')")
    supervisor = real_supervisor(servo_root, {**os.environ, TAG_VAR: tag})
    spec = CallSpec(Driver("10any", path), Call.ADJUST, ("app",))
    with descriptors_left(2):  # fewer than the three pipes a driver needs
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        outcome = await supervisor.call(spec)
    assert outcome.problem is not None and outcome.problem.reason == Reason.SPAWN_FAILED
    assert outcome.problem.detail == (
        f"could not be started: too many open files: the limit is {limit} (ulimit -n)")


BIG_DESCRIPTOR = """
    import json, sys
    if "--query" not in sys.argv:
        print(json.dumps({"version": "1"}))
        sys.exit(0)
    out = sys.stdout.buffer
    out.write(b'{"application": {"components": {"big": {"settings": {"x": {"value": 1, "d": "')
    block = b"d" * (1 << 20)
    for _ in range(SIZE):
        out.write(block)
    out.write(b'"}}}}}}\\n')
"""


async def test_a_descriptor_of_50_mb_reaches_servo(servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "10big", BIG_DESCRIPTOR.replace("SIZE", "50"))
    with trio.fail_after(60):
        run, peak = await run_watched(servo_root, "--query", "app", tag=tag,
                                      env=adjust_env(tag))
    assert run.returncode == 0, run.stderr[-2000:]
    described = run.final["application"]["components"]["big"]["settings"]["x"]
    assert described["d"] == "d" * 50 * MIB
    assert peak < 6 * 50 * MIB, f"peak RSS {peak // MIB} MiB"
