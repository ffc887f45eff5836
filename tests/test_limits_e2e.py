"""servo-agg within the process's limits, end to end: many drivers under a low `ulimit -n`
are all asked (not all at once) instead of a traceback; running out of descriptors is a
spawn-failed error that names the limit; a descriptor of tens of MB gets through."""

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
from tests.support import AGGREGATOR, TAG_VAR, adjust_env, real_supervisor, run_adjust, write_driver

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


def with_ulimit(root: Path, limit: int) -> Path:
    """./adjust started under `ulimit -n limit`."""
    wrapper = root / f"adjust-ulimit-{limit}"
    wrapper.write_text(f'#!/bin/sh\nulimit -n {limit} || exit 97\n'
                       f'exec {Path(__file__).resolve().parent.parent / "adjust"} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


#: More drivers than fit under the limit at once: (96 - the ~15 descriptors servo-agg
#: holds - the 32 it keeps in reserve) / 4 per driver is about 12 at a time.
DRIVERS, ULIMIT = 60, 96


@pytest.mark.parametrize("command", [("--query", "app"), ("--version",)])
async def test_many_drivers_in_parallel_under_a_low_ulimit_are_all_asked(
        servo_root: Path, tag: str, command: tuple[str, ...]) -> None:
    """The parallel queries (an adjust's first step is the same --query) and the --info
    calls --version makes all at once: two ways of starting drivers together."""
    names = [f"d{i:03}" for i in range(DRIVERS)]
    for name in names:
        write_driver(servo_root, name, sh_driver(name), shebang="#!/bin/sh")
    (servo_root / "config.yaml").write_text("aggregator:\n  parallel_queries: true\n")
    run = await run_adjust(servo_root, *command, tag=tag, adjust=with_ulimit(servo_root, ULIMIT),
                           timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    if command[0] == "--query":
        assert sorted(run.final["application"]["components"]) == names
    else:
        assert run.lines == [f"{AGGREGATOR} ({', '.join(['1'] * DRIVERS)})"]


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
