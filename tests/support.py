"""Shared test machinery: servo roots with written drivers, running ./adjust as servo does,
the launch before trio in the test's own process, and finding every process a test started
(by a tag in their environment)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
import trio

from aggregator import PRODUCT, __version__
from aggregator.entry import launch
from aggregator.limits import MAX_REQUEST_BYTES
from aggregator.process.fork import child_environment
from aggregator.process.headstart import Headstart
from aggregator.root.front_end import FrontEnd
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.control import RunControl
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.output import Output
from aggregator.supervision.signals import EarlySignals, StoppedEarly
from aggregator.supervision.spawner import DriverSpawner
from aggregator.supervision.spec import CallSpec

REPO = Path(__file__).resolve().parent.parent
#: How the aggregator names itself in --version and --info.
AGGREGATOR = f"{PRODUCT} {__version__}"
ADJUST = REPO / "adjust"
TAG_VAR = "SERVO_AGG_TEST_TAG"
PYTHON_BIN = str(Path(sys.executable).parent)
#: The `#!` line of a Python driver a test writes: this Python without `site` (-S), which
#: a driver of the stdlib alone does not need. A third of such a driver's start-up is the
#: venv's site-packages and the editable install's import hook (22 ms of CPU instead of 33).
PYTHON_SHEBANG = f"#!{sys.executable} -S"

#: The settings of the two-driver servo root that the adjust commands are tested on, over
#: fakes and through ./adjust alike: 01web's cpu and replicas, 02cache's size and policy.
CPU = {"type": "range", "value": 1.0, "min": 0.5, "max": 4, "step": 0.5}
REPLICAS = {"type": "range", "value": 2, "min": 1, "max": 10, "step": 1}
SIZE = {"type": "range", "value": 64, "min": 16, "max": 256, "step": 16}
POLICY = {"type": "enum", "value": "lru", "values": ["lru", "lfu"]}


def real_supervisor(root: Path, env: dict[str, str], *, io_timeout: float | None = None,
                    kill_grace: float = 0.5, cancel_grace: float = 1.0,
                    control: RunControl | None = None,
                    headstart: Headstart[CallSpec] | None = None) -> Supervisor:
    """A supervisor of real driver processes started from `root` with `env`."""
    return Supervisor(SupervisionPolicy(io_timeout, kill_grace, cancel_grace),
                      DriverSpawner(root, child_environment(env, root), headstart),
                      control or RunControl())


def write_driver(root: Path, name: str, body: str, *, shebang: str | None = None,
                 mode: int = 0o755, folder: str = "adjust.d") -> Path:
    """A driver script in root/adjust.d (or `folder`); `body` is Python (stdlib only: see
    PYTHON_SHEBANG) unless a shebang is given or the body starts with its own `#!` line
    (simple_driver's)."""
    drivers = root / folder
    drivers.mkdir(exist_ok=True)
    path = drivers / name
    text = textwrap.dedent(body).lstrip("\n")
    if shebang is not None or not text.startswith("#!"):
        text = (shebang if shebang is not None else PYTHON_SHEBANG) + "\n" + text
    path.write_text(text)
    path.chmod(mode)
    return path


def simple_driver(component: str, settings: dict[str, Any], *, version: str = "1.0",
                  progress_steps: int = 2, log: str | None = None, prelude: str = "",
                  adjust: str | None = None) -> str:
    """A well-behaved driver owning `component` with `settings`, whole with its `#!` line.

    It records each adjust request it receives in `log` (a file name in the servo root,
    one line each). In sh, since what it says is fixed when it is written: its language is
    never what a test is about, and sh starts in a tenth of Python's CPU (tests/README.md).
    `prelude` (sh) runs first, on every call. `adjust` (sh), when given, is its adjust
    once the request is read, in place of the progress steps and the ok line: whatever
    the test's driver does instead (hang, chatter, fail, take its time), and its own final
    line if it has one.
    """
    def say(message: object) -> str:
        return f"printf '%s\\n' {shlex.quote(json.dumps(message))}"

    descriptor = {"application": {"components": {component: {"settings": settings}}}}
    if adjust is None:
        adjust = "\n".join([*(say({"progress": (i + 1) * 100 // (progress_steps + 1),
                                    "message": f"step {i}"}) for i in range(progress_steps)),
                             say({"status": "ok", "reason": "success"})])
    record = (f"request=$(cat)\nprintf '%s\\n' \"$request\" >> {shlex.quote(log)}" if log
              else "cat > /dev/null")
    return f"""#!/bin/sh
{prelude}
for arg do
    case $arg in --info) {say({"version": version, "has_cancel": False})}; exit 0;; esac
done
for arg do
    case $arg in --query|--describe) {say(descriptor)}; exit 0;; esac
done
{record}
{adjust}
"""


class _HasLines(Protocol):
    @property
    def lines(self) -> list[str]: ...


def _json_objects(lines: list[str]) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in lines]
    assert all(isinstance(p, dict) for p in parsed), parsed
    return parsed


class ServoStdout:
    """stdout read as servo reads it, one JSON object a line: the same for a run of
    ./adjust (AdjustRun) as for a launch that ended before trio (BeforeTrio), each of
    which has its own `lines`."""

    @property
    def json_lines(self: _HasLines) -> list[dict[str, Any]]:
        return _json_objects(self.lines)

    @property
    def final(self: _HasLines) -> dict[str, Any]:
        return _json_objects(self.lines)[-1]

    @property
    def error(self: _HasLines) -> dict[str, Any]:
        """The final line of a command that ended before it wrote anything else: alone
        on stdout, and not ok."""
        objects = _json_objects(self.lines)
        assert len(objects) == 1 and objects[0].get("status") != "ok", self.lines
        return objects[0]


@dataclass
class AdjustRun(ServoStdout):
    """What servo would have seen from one ./adjust call."""

    returncode: int
    stdout_lines: list[tuple[float, str]]  # (seconds since start, line)
    stderr: str
    elapsed: float
    pid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return [line for _, line in self.stdout_lines]

    @property
    def stdout_text(self) -> str:
        return "\n".join(self.lines)

    @property
    def progress(self) -> list[dict[str, Any]]:
        return [line for line in self.json_lines if "progress" in line]

    def max_gap(self) -> float:
        """Longest silence on stdout, counting from the start and to the exit."""
        times = [0.0] + [t for t, _ in self.stdout_lines] + [self.elapsed]
        return max(b - a for a, b in itertools.pairwise(times))


def adjust_env(tag: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = PYTHON_BIN + os.pathsep + env.get("PATH", "")
    env[TAG_VAR] = tag
    for key in ("OPTUNE_IO_TIMEOUT", "OPTUNE_VERBOSE_STDERR"):
        env.pop(key, None)
    env.update(extra)
    return env


async def run_adjust(
    root: Path, *args: str, tag: str, stdin: bytes | str = b"", env: dict[str, str] | None = None,
    timeout: float = 60.0,  # noqa: ASYNC109 - a whole-run guard, like subprocess.run's
    adjust: Path = ADJUST,
    answer: Callable[[float, str], int | None] | None = None,
) -> AdjustRun:
    """Run ./adjust from `root` exactly as servo does: executable, cwd = servo root.

    `answer` stands in for servo's reply to each stdout line (seconds after start, the
    line): a signal it returns is sent to the aggregator at once, as servo sends SIGUSR1
    when the optimizer answers a progress post with cancel. (servo's other signals:
    fault_support.run_watched sends them once the run is in the state they are for, never
    after a guessed time.)
    """
    data = stdin.encode() if isinstance(stdin, str) else stdin
    environment = env if env is not None else adjust_env(tag)
    environment.setdefault(TAG_VAR, tag)
    proc = await trio.lowlevel.open_process(
        [str(adjust), *args], cwd=root, env=environment,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdin and proc.stdout and proc.stderr
    started = time.monotonic()
    lines: list[tuple[float, str]] = []
    err = bytearray()

    async def feed() -> None:
        try:
            if data:
                await proc.stdin.send_all(data)  # type: ignore[union-attr]
        except trio.BrokenResourceError:
            pass
        finally:
            await proc.stdin.aclose()  # type: ignore[union-attr]

    async def read_out() -> None:
        buffer = bytearray()
        while chunk := await proc.stdout.receive_some(1 << 16):  # type: ignore[union-attr]
            buffer += chunk
            while (i := buffer.find(b"\n")) >= 0:
                lines.append((time.monotonic() - started, buffer[:i].decode()))
                del buffer[: i + 1]
                sig = None if answer is None else answer(*lines[-1])
                if sig is not None and proc.returncode is None:
                    proc.send_signal(sig)
        if buffer:
            lines.append((time.monotonic() - started, buffer.decode() + "<no newline>"))

    async def read_err() -> None:
        while chunk := await proc.stderr.receive_some(1 << 16):  # type: ignore[union-attr]
            if len(err) < 4 << 20:
                err.extend(chunk)

    try:
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(feed)
                nursery.start_soon(read_out)
                nursery.start_soon(read_err)
                await proc.wait()
                # The aggregator is gone; its pipes close with it (bounded all the same).
                nursery.cancel_scope.deadline = trio.current_time() + 5
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
    elapsed = time.monotonic() - started
    assert proc.returncode is not None
    return AdjustRun(proc.returncode, lines, err.decode("utf-8", "replace"), elapsed, proc.pid)


def json_lines_file(path: Path) -> list[dict[str, Any]]:
    """A file of one JSON object a line (a journal, a driver's log of its requests), parsed
    line by line; none when it does not exist."""
    return _json_objects(path.read_text().splitlines()) if path.exists() else []


def journal_records(root: Path, name: str = "journal.jsonl") -> list[dict[str, Any]]:
    """The records the runs left in `root`'s journal (at its default place), parsed here,
    not by the journal's own reader; none without it."""
    return json_lines_file(root / ".servo-agg" / name)


def assert_refused_for_closed_stdout(root: Path, stderr: str, front: FrontEnd,
                                     command: str) -> None:
    """`command` found stdout closed at start (cli.py's finding): it ran nothing, said so
    on stderr, and left the record of any refused run, but --info, which writes none.
    (Each command in the launch: test_launch.py; through ./adjust: test_stdio_e2e.py.)"""
    # (messages of their own: pytest rewrites the asserts of test modules, not this one's)
    assert stderr == ("servo-agg: error (bad-stdio): stdout was closed at start, so "
                      "nothing could reach servo; nothing was run\n"), stderr
    records = journal_records(root)
    assert len(records) == (0 if command == "info" else 1), records
    for record in records:
        assert (record["front_end"], record["command"], record["status"], record["reason"],
                record["exit_code"]) == (str(front), command, "failed", "bad-stdio", 1), record
        assert record["final"] is None, record
        assert record["servo_gone"] == "stdout was closed at start", record
        assert record["calls"] == [] and record["request"] is None, record


@dataclass
class BeforeTrio(ServoStdout):
    """What the launch did before its Run started anything (launch_before_trio's); its
    stdout read as servo reads it, as an AdjustRun's."""

    code: int  # its exit code when it ended before the Run, -1 once the Run was to start
    lines: list[str]  # stdout
    stderr: str
    facts: RunFacts
    job: launch.Job | None  # the job built, which the Run would run
    #: each read of stdin: (line limit, the front-end its errors name, the cap)
    reads: list[tuple[float | None, str, int]]
    run: dict[str, Any] | None  # how the Run was made (its keyword arguments)
    room: tuple[int, str] | None  # the drivers the Run was asked to find room for at once


class _Started(Exception):
    """The Run was made and asked for room: it would start the drivers now."""


class _RunBeforeItStarts:
    """launch.Run, as far as the launch uses it before any driver starts: it keeps how it
    was made and the room it was asked for, then ends the launch (_Started)."""

    def __init__(self, made: list[_RunBeforeItStarts], **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.room: tuple[int, str] | None = None
        made.append(self)

    def __enter__(self) -> _RunBeforeItStarts:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def require_room(self, at_once: int, why: str) -> None:
        self.room = (at_once, why)
        raise _Started

    def start_early(self, calls: object) -> None:
        raise AssertionError("a head start before the room for the drivers was judged")

    def execute(self, command: object) -> int:
        raise AssertionError("the command run before the room for the drivers was judged")


def launch_before_trio(root: Path, argv: list[str], front: FrontEnd = FrontEnd.ADJUST,
                       request: bytes | StoppedEarly = b"", *, stdin_closed: bool = False,
                       drivers_dirs: bool = True) -> BeforeTrio:
    """launch._run in this process, until its Run would start the first driver (no
    process starts): what every command decides before trio (the arguments, config.yaml,
    the drivers, the request, how its Run is made, the room its drivers need at once)
    for the cost of a unit test. stdin holds `request` (or the read is stopped by that
    signal); `stdin_closed`: fd 0 was closed at start (cli.py's finding); `drivers_dirs`:
    adjust.d and measure.d are made in `root` first."""
    if drivers_dirs:
        (root / "adjust.d").mkdir(exist_ok=True)
        (root / "measure.d").mkdir(exist_ok=True)
    out_path = root / "stdout"
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT)
    err = io.StringIO()
    facts = RunFacts()
    reads: list[tuple[float | None, str, int]] = []
    built: list[launch.Job] = []
    made: list[_RunBeforeItStarts] = []

    def read_request(timeout: float | None, kind: str, limit: int = MAX_REQUEST_BYTES,
                     **_: object) -> bytes:
        reads.append((timeout, str(kind), limit))
        if isinstance(request, StoppedEarly):
            raise request
        return request

    real_job = launch._job

    def job(*args: Any, **kwargs: Any) -> tuple[launch.Job, Any]:
        made_job, job_command = real_job(*args, **kwargs)
        built.append(made_job)
        assert str(made_job.command) == facts.command  # the record names the job's
        return made_job, job_command

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(launch, "read_request", read_request)
        patch.setattr(launch, "_job", job)
        patch.setattr(launch, "Run", lambda **kwargs: _RunBeforeItStarts(made, **kwargs))
        try:
            code, _ = launch._run(argv, front, EarlySignals(), Output(fd, err), stdin_closed,
                                  facts, root)
        except _Started:
            code = -1
        finally:
            os.close(fd)
    return BeforeTrio(code, out_path.read_text().splitlines(), err.getvalue(), facts,
                      built[0] if built else None, reads,
                      made[0].kwargs if made else None, made[0].room if made else None)


def alive(pid: int) -> bool:
    """Running: a zombie has finished running and only waits to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()  # its name need not be UTF-8
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[0] != b"Z"


def tagged_pids(tag: str) -> list[int]:
    """Every live process whose environment carries `tag` (drivers, their children, ...)."""
    needle = f"{TAG_VAR}={tag}".encode()
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
            # Bytes: any process on the machine is looked at, and its name (in stat) may
            # be anything, not UTF-8 (another job's, another xdist worker's).
            state = (entry / "stat").read_bytes().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        if state != b"Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def leftover_processes(tag: str, settle: float = 3.0) -> list[int]:
    """Tagged processes still alive after `settle` seconds (killed, so tests stay isolated)."""
    deadline = time.monotonic() + settle
    while (pids := tagged_pids(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids
