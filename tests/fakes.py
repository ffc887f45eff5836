"""Fake driver processes for supervision tests on trio's MockClock.

A FakeProcess is what supervision sees of a driver (the SupervisedProcess protocol): its
pipes are trio in-memory streams, its exit is an event, and every signal supervision sends
is recorded with the trio time. Behind it runs a scripted "process group": the driver (the
leader) and any descendants it starts, each a task with signal dispositions (default: die
of the signal; ignore; catch) and a hold on the pipes it inherited. A pipe reads end of
file only once every process holding its write end let go of it, as with real pipes, so a
grandchild can keep stdout open after the driver exited.

Every task of a fake runs in the nursery of `open_fake_spawner`, which the test opens:
nothing outlives the test, and on a clean exit the spawner checks that supervision left
nothing behind (every driver exited, was reaped and had its pipes closed; no descendant in
its group alive; no signal sent after the reap).

A script is `async def script(p: FakeMember) -> int | None` (None: exit 0):

    async def driver(p):
        p.ignore(signal.SIGTERM)
        await p.say({"progress": 10})
        await trio.sleep(2)
        await p.say({"status": "ok", "reason": "success"})
        return 0
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import trio
import trio.testing

from aggregator.adjust.apply import adjust
from aggregator.adjust.calls import AdjustJob, Command
from aggregator.measure.calls import MeasureCommand, MeasureJob
from aggregator.process.call_limits import LimitHits
from aggregator.process.resources import ResourceUse
from aggregator.protocol.environment import ServoEnvironment, StderrMode, servo_posts_stderr
from aggregator.protocol.measure import parse_measure_request
from aggregator.protocol.request import parse_request
from aggregator.protocol.vocabulary import Call
from aggregator.root.config import AggregatorConfig, MeasureConfig, parse_section
from aggregator.root.discovery import Driver
from aggregator.root.front_end import FrontEnd
from aggregator.supervision.call import SupervisionPolicy, Supervisor
from aggregator.supervision.control import RunControl
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.output import Output
from aggregator.supervision.run import Run
from aggregator.supervision.session import RunStopped, Session, write_stopped
from aggregator.supervision.signals import deliver
from aggregator.supervision.spec import CallSpec
from aggregator.tools.check import Probe, probe_command
from tests.support import AdjustRun

Script = Callable[["FakeMember"], Awaitable[int | None]]
Disposition = Literal["default", "ignore", "catch"]
PipeName = Literal["stdin", "stdout", "stderr"]
SignalRecord = tuple[float, str, int]  # (trio time, "group" | "leader", signal)


#: The servo root of fake drivers: nothing is ever read from it.
FAKE_ROOT = Path("/fake")


def fake_driver(name: str, folder: str = "adjust.d") -> Driver:
    """A driver that exists only in a FakeSpawner."""
    return Driver(name, FAKE_ROOT / folder / name)


def fake_spec(name: str = "10web", call: Call = Call.ADJUST, stdin: bytes = b"",
              args: tuple[str, ...] = ("app",)) -> CallSpec:
    """A call of a driver that exists only in a FakeSpawner."""
    return CallSpec(fake_driver(name), call, args, stdin)


class _ReadEnd(trio.abc.ReceiveStream):
    """The supervisor's end of a driver's output pipe; counts what it took."""

    def __init__(self, inner: trio.testing.MemoryReceiveStream) -> None:
        self._inner = inner
        self.taken = 0
        self.closed = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = bytes(await self._inner.receive_some(max_bytes))
        self.taken += len(data)
        return data

    async def aclose(self) -> None:
        self.closed = True
        await self._inner.aclose()


class _OutputPipe:
    """A driver's stdout or stderr: one write end shared by the processes holding it."""

    def __init__(self, name: PipeName) -> None:
        self.name = name
        self._send, receive = trio.testing.memory_stream_one_way_pair()
        self.read_end = _ReadEnd(receive)
        self.holders = 0
        self.written = 0
        self._lock = trio.Lock()  # two writers: one send_all at a time, as the stream wants

    @property
    def pending(self) -> int:
        """Bytes written and not yet read (what FIONREAD says of a real pipe)."""
        return self.written - self.read_end.taken

    @property
    def at_eof(self) -> bool:
        return self.holders == 0

    def release(self) -> None:
        self.holders -= 1
        assert self.holders >= 0
        if self.holders == 0:
            self._send.close()  # the reader sees end of file after what is buffered

    async def write(self, data: bytes) -> bool:
        """False when the read end is closed (a real writer would get SIGPIPE)."""
        async with self._lock:
            self.written += len(data)  # counted before the reader can take any of it
            try:
                await self._send.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.written -= len(data)
                return False
            except BaseException:  # cancelled before the data went in
                self.written -= len(data)
                raise
        return True


class _InputPipe:
    """A driver's stdin: the supervisor writes and closes; the holders may read.

    In lockstep (a pipe with no room at all): a write waits until the driver side read it,
    so a request nobody reads blocks the supervisor's feed, as a large one would."""

    def __init__(self) -> None:
        self.write_end, self._receive = trio.testing.lockstep_stream_one_way_pair()
        self.holders = 0
        self.received = bytearray()  # what the driver side read
        self.eof = False

    def release(self) -> None:
        self.holders -= 1
        assert self.holders >= 0
        if self.holders == 0:
            # The supervisor's write breaks (EPIPE). Lockstep streams close synchronously.
            cast(Any, self._receive).close()

    async def read_all(self) -> bytes:
        while chunk := await self._receive.receive_some():
            self.received += chunk
        self.eof = True
        return bytes(self.received)


class FakeMember:
    """One process of a fake driver's group: the driver itself, or a descendant of it.

    The script's side of it: say/write to the pipes it holds, read the request, choose
    what signals do, start descendants, close stdout, exit.
    """

    def __init__(self, proc: FakeProcess, name: str, script: Script | None,
                 holds: set[PipeName], *, own_session: bool = False) -> None:
        self.proc = proc
        self.name = name
        self._script = script
        self.holds = set(holds)
        self.own_session = own_session  # setsid(): group signals no longer reach it
        self.dispositions: dict[int, Disposition] = {}
        self.exit_code: int | None = None  # negative: died of that signal
        self.ended_at: float | None = None
        self.ended = trio.Event()
        self._scope = trio.CancelScope()
        self._caught_send, self._caught = trio.open_memory_channel[int](math.inf)
        self._in_kernel = False  # uninterruptible sleep: signals wait until it is over
        self._deferred: list[int] = []
        for pipe in self.holds:
            self.proc._pipe(pipe).holders += 1

    @property
    def alive(self) -> bool:
        return self.exit_code is None

    # -- what the script does ------------------------------------------------------
    def ignore(self, *sigs: int) -> None:
        for sig in sigs:
            self.dispositions[sig] = "ignore"

    def catch(self, *sigs: int) -> None:
        """These signals are queued for next_signal() instead of acting."""
        for sig in sigs:
            self.dispositions[sig] = "catch"

    async def next_signal(self) -> int:
        return await self._caught.receive()

    async def write(self, data: bytes | str, pipe: PipeName = "stdout") -> None:
        """Write to stdout or stderr, which this process must hold."""
        assert pipe in self.holds, f"{self.name} does not hold {pipe}"
        raw = data.encode() if isinstance(data, str) else data
        target = self.proc._pipe(pipe)
        assert isinstance(target, _OutputPipe)
        if not await target.write(raw):
            self._end(-signal.SIGPIPE)
            await trio.lowlevel.checkpoint()  # cancelled: this process is gone

    async def say(self, message: dict[str, Any]) -> None:
        """One protocol line (a JSON object and a newline) on stdout."""
        await self.write(json.dumps(message) + "\n")

    async def complain(self, text: str) -> None:
        await self.write(text, "stderr")

    async def read_request(self) -> bytes:
        """All of stdin, to its end."""
        assert "stdin" in self.holds, f"{self.name} does not hold stdin"
        return await self.proc._stdin.read_all()

    def close(self, pipe: PipeName) -> None:
        """Close this process's copy of a pipe (close(1) for stdout)."""
        assert pipe in self.holds
        self.holds.discard(pipe)
        self.proc._pipe(pipe).release()

    def spawn(self, script: Script | None = None, *, name: str | None = None,
              holds: set[PipeName] | None = None, own_session: bool = False) -> FakeMember:
        """A child of this process; it inherits the pipes this one holds (or `holds`).
        Without a script it sleeps until killed."""
        inherited = set(self.holds) if holds is None else holds
        assert inherited <= self.holds
        child = FakeMember(self.proc, name or f"{self.name}.child", script, inherited,
                           own_session=own_session)
        self.proc.members.append(child)
        self.proc._nursery.start_soon(child._run)
        return child

    async def in_kernel(self, seconds: float) -> None:
        """Uninterruptible sleep (D state): even SIGKILL waits until it is over."""
        self._in_kernel = True
        try:
            with trio.CancelScope(shield=True):
                await trio.sleep(seconds)
        finally:
            self._in_kernel = False
        deferred, self._deferred = self._deferred, []
        for sig in deferred:
            self.deliver(sig)
        await trio.lowlevel.checkpoint()

    # -- what the kernel does ------------------------------------------------------
    def deliver(self, sig: int) -> None:
        if not self.alive:
            return  # a zombie: signals do nothing
        if self._in_kernel:
            self._deferred.append(sig)
            return
        how = "default" if sig == signal.SIGKILL else self.dispositions.get(sig, "default")
        if how == "ignore":
            return
        if how == "catch":
            self._caught_send.send_nowait(sig)
            return
        self._end(-sig)  # SIGTERM, SIGKILL, SIGUSR1, SIGPIPE: all terminate by default

    def _end(self, code: int) -> None:
        """Exit (or die): every pipe it holds is closed, and its task stops."""
        if not self.alive:
            return
        self.exit_code = code
        self.ended_at = trio.current_time()
        self._scope.cancel()  # first: a read blocked on a pipe closed below is cancelled
        for pipe in sorted(self.holds):
            self.proc._pipe(pipe).release()
        self.holds.clear()
        self.ended.set()

    async def _run(self) -> None:
        with self._scope:
            if self._script is None:
                await trio.sleep_forever()
            code = await self._script(self)
            self._end(0 if code is None else code)


class FakeProcess:
    """A fake driver as supervision sees it (implements SupervisedProcess)."""

    def __init__(self, nursery: trio.Nursery, spec: CallSpec, script: Script, pid: int) -> None:
        self._nursery = nursery
        self.spec = spec
        self.pid = pid
        self.started_at = trio.current_time()
        self._age_at_open = 0.0
        self._stdin = _InputPipe()
        self._stdout = _OutputPipe("stdout")
        self._stderr = _OutputPipe("stderr")
        self.signals: list[SignalRecord] = []
        self.reaped = False
        self.reaped_at: float | None = None
        #: what the kernel would report for it once reaped (a test may set it)
        self.resource_use: ResourceUse | None = None
        self.pipes_closed = False
        self.violations: list[str] = []  # what supervision did that it must not
        self.hits = LimitHits()  # how often its cgroup saw it hit a limit (set by scripts)
        self.leader = FakeMember(self, spec.driver.name, script, {"stdin", "stdout", "stderr"})
        self.members: list[FakeMember] = [self.leader]

    def _pipe(self, name: PipeName) -> _InputPipe | _OutputPipe:
        if name == "stdin":
            return self._stdin
        return self._stdout if name == "stdout" else self._stderr

    def _start(self) -> None:
        self._nursery.start_soon(self.leader._run)

    # -- for tests -------------------------------------------------------------------
    @property
    def exit_code(self) -> int | None:
        return self.leader.exit_code

    @property
    def exited_at(self) -> float | None:
        return self.leader.ended_at

    @property
    def request(self) -> bytes:
        """What the driver side read from stdin."""
        return bytes(self._stdin.received)

    def sent(self, sig: int) -> list[SignalRecord]:
        return [record for record in self.signals if record[2] == sig]

    def problems(self) -> list[str]:
        """What supervision left behind or did wrong with this process."""
        found = list(self.violations)
        if self.leader.alive:
            found.append(f"{self.leader.name} still running")
        elif not self.reaped:
            found.append(f"{self.leader.name} exited but was never reaped")
        if not self.pipes_closed:
            found.append(f"{self.leader.name}: pipes not closed")
        found += [f"{m.name} (in the driver's group) still running"
                  for m in self.members[1:] if m.alive and not m.own_session]
        return found

    # -- SupervisedProcess -----------------------------------------------------------
    @property
    def stdin(self) -> trio.abc.SendStream:
        return self._stdin.write_end

    @property
    def stdout(self) -> trio.abc.ReceiveStream:
        return self._stdout.read_end

    @property
    def stderr(self) -> trio.abc.ReceiveStream:
        return self._stderr.read_end

    @property
    def age_at_open(self) -> float:
        return self._age_at_open

    async def wait_exited(self) -> None:
        await self.leader.ended.wait()

    def has_exited(self) -> bool:
        return not self.leader.alive

    def stdout_pending(self) -> int:
        return self._stdout.pending

    def _record(self, target: str, sig: int) -> None:
        self.signals.append((trio.current_time(), target, signal.Signals(sig)))
        if self.reaped:
            self.violations.append(f"{signal.Signals(sig).name} to the {target} after the reap "
                                   "(its pid may belong to another process by now)")

    def signal_group(self, sig: int) -> None:
        self._record("group", sig)
        if self.reaped:
            return
        for member in list(self.members):
            if not member.own_session:
                member.deliver(sig)

    def signal_leader(self, sig: int) -> None:
        self._record("leader", sig)
        if not self.reaped:
            self.leader.deliver(sig)

    def reap(self) -> int | None:
        if self.leader.alive:
            return None
        if not self.reaped:
            self.reaped = True
            self.reaped_at = trio.current_time()
        return self.leader.exit_code

    def limit_hits(self) -> LimitHits:
        return self.hits

    async def aclose_pipes(self) -> None:
        self.pipes_closed = True
        await self._stdin.write_end.aclose()
        await self._stdout.read_end.aclose()
        await self._stderr.read_end.aclose()


class FakeSpawner:
    """Hands supervision scripted FakeProcesses (implements Spawner).

    Scripts are registered per CallSpec or per driver name (the spec wins); a registered
    OSError is raised instead, as when a driver cannot be executed.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._plans: dict[CallSpec | str, Script | OSError] = {}
        self._ignoring: dict[CallSpec | str, tuple[int, ...]] = {}
        self._early: dict[CallSpec, FakeProcess] = {}
        self._pids = itertools.count(4001)
        self.started: list[FakeProcess] = []
        self.spawn_seconds = 0.0  # how long each start takes (fork + exec)
        #: per driver: how long its start goes on once its process exists (the real
        #: spawner forks, then yields to trio before supervision holds the process), or
        #: before a start that fails fails
        self.after_fork_seconds: dict[str, float] = {}
        self.check_on_exit = True

    def script(self, key: CallSpec | str, script: Script, *,
               ignoring: tuple[int, ...] = ()) -> None:
        """`ignoring`: signals its process ignores from its first instruction (SIG_IGN is
        inherited across exec), before its script can run."""
        self._plans[key] = script
        self._ignoring[key] = ignoring

    def fail(self, key: CallSpec | str, error: OSError) -> None:
        self._plans[key] = error

    def _plan(self, spec: CallSpec) -> Script | OSError:
        for key in (spec, spec.driver.name):
            if key in self._plans:
                return self._plans[key]
        raise AssertionError(f"no script for {spec.driver.name} {spec.call}")

    def _new(self, spec: CallSpec, script: Script) -> FakeProcess:
        proc = FakeProcess(self._nursery, spec, script, next(self._pids))
        self.started.append(proc)
        proc._start()
        return proc

    def head_start(self, spec: CallSpec, script: Script) -> FakeProcess:
        """Start the process of `spec` now, before supervision asks for it."""
        proc = self._new(spec, script)
        self._early[spec] = proc
        return proc

    def process(self, name: str) -> FakeProcess:
        """The one process started for driver `name`."""
        found = [p for p in self.started if p.spec.driver.name == name]
        assert len(found) == 1, f"{len(found)} processes of {name}"
        return found[0]

    def problems(self) -> list[str]:
        found = [f"head start of {s.driver.name} never taken" for s in self._early]
        for proc in self.started:
            found += proc.problems()
        return found

    # -- Spawner ---------------------------------------------------------------------
    def is_running(self, spec: CallSpec) -> bool:
        return spec in self._early

    @property
    def early_pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self._early.values())

    async def start(self, spec: CallSpec) -> FakeProcess:
        await trio.sleep(self.spawn_seconds)
        early = self._early.pop(spec, None)
        if early is not None:
            early._age_at_open = trio.current_time() - early.started_at
            return early
        plan = self._plan(spec)
        after_fork = self.after_fork_seconds.get(spec.driver.name, 0.0)
        if isinstance(plan, OSError):
            await trio.sleep(after_fork)
            raise plan
        proc = self._new(spec, plan)
        proc.leader.ignore(*self._ignoring.get(spec, self._ignoring.get(spec.driver.name, ())))
        await trio.sleep(after_fork)
        return proc


@asynccontextmanager
async def open_fake_spawner() -> AsyncIterator[FakeSpawner]:
    """A FakeSpawner whose processes run in a nursery of the test's.

    When the block ends without an error, supervision must have left nothing behind
    (unless the test set `check_on_exit = False`); what escaped the driver's group
    (own_session descendants, reaped by the orphan sweep in real runs) is then cancelled.
    """
    async with trio.open_nursery() as nursery:
        spawner = FakeSpawner(nursery)
        yield spawner
        if spawner.check_on_exit:
            assert not spawner.problems(), spawner.problems()
        nursery.cancel_scope.cancel()


class RecordingOutput(Output):
    """servo's channel, kept in memory: each stdout line with the trio time it was written."""

    def __init__(self, stdout_fd: int = -1, *, stderr_posted: bool = False) -> None:
        """`stdout_fd`: what servo's channel watches under a Run (/dev/null: a reader that
        never goes away); nothing is written to it. `stderr_posted`: servo adds the notes
        to the message it posts for a failed command (Output's)."""
        self.stderr = io.StringIO()  # the notes, for people
        super().__init__(stdout_fd=stdout_fd, stderr=self.stderr, clock=trio.current_time,
                         stderr_posted=stderr_posted)
        self.last_write = trio.current_time()  # servo's patience starts with the test
        self.lines: list[tuple[float, str]] = []
        self.writes: list[str] = []  # each write_line, as written

    def transmit(self, data: bytes, progress: bool) -> None:
        text = data.decode().removesuffix("\n")  # whole lines, each with its newline
        self.writes.append(text)
        # One write may carry several whole lines (the progress relay's): each is a line.
        self.lines += [(self.last_write, line) for line in text.split("\n")]

    @property
    def notes(self) -> str:
        """What was written to stderr (people's notes)."""
        stream = self._stderr
        assert isinstance(stream, io.StringIO)
        return stream.getvalue()

    def gaps(self, since: float = 0.0) -> list[float]:
        """servo's waits for each line, from `since`."""
        times = [since] + [t for t, _ in self.lines]
        return [b - a for a, b in itertools.pairwise(times)]


# -- a whole command over fake drivers ----------------------------------------------------

def simple_script(component: str, settings: dict[str, Any], *, version: str = "1.0",
                  progress_steps: int = 2) -> Script:
    """tests/support.simple_driver as a fake: a well-behaved driver owning `component`
    with `settings`; what it was asked is in its FakeProcess (spec, request)."""
    descriptor = {"application": {"components": {component: {"settings": settings}}}}

    async def script(p: FakeMember) -> None:
        call = p.proc.spec.call
        if call is Call.INFO:
            await p.say({"version": version, "has_cancel": False})
        elif call in (Call.QUERY, Call.DESCRIBE):
            await p.say(descriptor)
        else:
            json.loads(await p.read_request())
            for i in range(progress_steps):
                await p.say({"progress": (i + 1) * 100 // (progress_steps + 1),
                             "message": f"step {i}"})
            await p.say({"status": "ok", "reason": "success"})

    return script


async def hangs(p: FakeMember) -> None:
    """A driver that says nothing and never ends: only a signal ends it."""
    await trio.sleep_forever()


async def hangs_deaf_to_sigterm(p: FakeMember) -> None:
    """hangs, ignoring SIGTERM: only SIGKILL ends it."""
    p.ignore(signal.SIGTERM)
    await trio.sleep_forever()


async def hangs_on_query(p: FakeMember) -> None:
    """A driver that answers --info at once (version 1) and hangs in --query until killed."""
    if p.proc.spec.call is Call.QUERY:
        await trio.sleep_forever()
    await p.say({"version": "1", "has_cancel": False})


#: Seconds of trio time any command over fakes may take: a hang fails the test at once.
TRIO_TIME_BOUND = 600.0


def adjust_job(command: Command, drivers: Sequence[str], request: Mapping[str, Any] | None = None,
               *, config: AggregatorConfig | None = None, app: str = "app",
               as_json: bool = False) -> AdjustJob:
    """The job ./adjust would build for `command` over the fake drivers `drivers` (in
    order), with the request as servo would send it (and --json, for --dry-run)."""
    return AdjustJob(command, app, config or AggregatorConfig(),
                     tuple(fake_driver(name) for name in drivers),
                     None if request is None else parse_request(json.dumps(request).encode()),
                     as_json=as_json)


def measure_job(command: MeasureCommand, drivers: Sequence[str],
                request: Mapping[str, Any] | None = None, *,
                config: MeasureConfig | None = None, app: str = "app",
                as_json: bool = False) -> MeasureJob:
    """The job ./measure would build for `command` over the fake drivers `drivers` (in
    measure.d, in order), with the request as servo would send it."""
    parsed = None if request is None else parse_measure_request(json.dumps(request).encode(),
                                                                 drivers)
    return MeasureJob(command, app, config or MeasureConfig(),
                      tuple(fake_driver(name, "measure.d") for name in drivers), parsed,
                      as_json=as_json)


def measure_script(metrics: dict[str, Any], *, window: float = 1.0,
                   returns: dict[str, Any] | None = None,
                   annotations: dict[str, Any] | None = None) -> Script:
    """tests/measure_support.measure_driver as a fake: describes `metrics`; measures for
    `window` seconds (progress every 0.25 s), then returns `returns` (a value for each
    metric it was asked by default); on SIGUSR1 it says canceled and exits 3. What it was
    asked is in its FakeProcesses."""
    async def script(p: FakeMember) -> int:
        call = p.proc.spec.call
        if call is Call.INFO:
            await p.say({"version": f"{p.proc.spec.driver.name}-1.0", "has_cancel": True})
            return 0
        if call is Call.DESCRIBE:
            await p.say({"status": "ok", "metrics": metrics})
            return 0
        request = json.loads(await p.read_request())
        p.catch(signal.SIGUSR1)
        canceled = False
        with trio.move_on_after(window) as measuring:
            async with trio.open_nursery() as nursery:
                async def on_cancel() -> None:
                    nonlocal canceled
                    await p.next_signal()
                    canceled = True
                    measuring.cancel()

                nursery.start_soon(on_cancel)
                started = trio.current_time()
                while True:
                    done = int((trio.current_time() - started) * 100 / window)
                    await p.say({"progress": done, "message": "measuring"})
                    await trio.sleep(0.25)
        if canceled:
            await p.say({"status": "canceled", "reason": "canceled",
                         "message": f"{p.proc.spec.driver.name} stopped"})
            return 3
        result: dict[str, Any] = {"status": "ok", "metrics": returns if returns is not None
                                  else {m: {"value": 1} for m in request["metrics"]}}
        if annotations:
            result["annotations"] = annotations
        await p.say(result)
        return 0

    return script


@dataclass
class FakeRun(AdjustRun):
    """What servo saw of one command over fake drivers (AdjustRun's shape: every line with
    its trio time, the exit code, stderr), and the spawner, which holds every process."""

    spawner: FakeSpawner | None = field(default=None, repr=False)
    #: what the run kept for its record (journal.record.build makes the record of it)
    facts: RunFacts | None = field(default=None, repr=False)

    def calls(self, name: str) -> list[FakeProcess]:
        """Every process started for driver `name`, in order."""
        assert self.spawner is not None
        return [p for p in self.spawner.started if p.spec.driver.name == name]


async def run_command(job: AdjustJob | MeasureJob, drivers: Mapping[str, Script], *,
                      io_timeout: float | None = 10.0, stderr_mode: StderrMode = "all",
                      heartbeat: bool | None = None,
                      signals: Sequence[tuple[float, int]] = ()) -> FakeRun:
    """`job` run the way ./adjust or ./measure runs it (a Run's trio side: servo's channel,
    the heartbeat, signals, the command, the stopped-run line, the final flush), over fake
    drivers: `drivers` maps each driver's name to the script of all its calls. servo's
    `signals` arrive at the given trio times. The heartbeat is on except for --dry-run,
    as the launch has it; stderr is servo's pipe, which it posts after a failed command's
    message where `stderr_mode` (OPTUNE_VERBOSE_STDERR) says so, as under servo. The cheap
    layer for what a command decides (tests/README.md): milliseconds, where ./adjust with
    real drivers costs ~0.3 s of CPU."""
    assert trio.current_time() == 0
    if heartbeat is None:
        heartbeat = job.command not in (Command.DRY_RUN, MeasureCommand.DRY_RUN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        output = RecordingOutput(devnull, stderr_posted=servo_posts_stderr(stderr_mode))
        return await _run_command(job, drivers, io_timeout, stderr_mode, heartbeat, signals,
                                  output)
    finally:
        os.close(devnull)


async def _run_command(job: AdjustJob | MeasureJob, drivers: Mapping[str, Script],
                       io_timeout: float | None, stderr_mode: StderrMode, heartbeat: bool,
                       signals: Sequence[tuple[float, int]], output: RecordingOutput) -> FakeRun:
    from aggregator.adjust.commands import run_job
    from aggregator.measure.commands import run_measure_job

    run = Run(servo_root=FAKE_ROOT, env={}, environment=ServoEnvironment(io_timeout, stderr_mode),
              kill_grace=job.config.kill_grace, cancel_grace=job.config.cancel_grace,
              output=output, heartbeat=heartbeat)
    started = trio.Event()
    sessions: list[Session] = []

    async def command(session: Session) -> int:
        sessions.append(session)
        started.set()
        if isinstance(job, MeasureJob):
            return await run_measure_job(job, session)
        return await run_job(job, session, FAKE_ROOT)

    async def servo_sends(when: float, signum: int) -> None:
        await started.wait()
        await trio.sleep_until(when)
        deliver(signum, sessions[0].control)

    with trio.fail_after(TRIO_TIME_BOUND):
        async with open_fake_spawner() as spawner:
            for name, script in drivers.items():
                spawner.script(name, script)
            async with trio.open_nursery() as nursery:
                for when, signum in signals:
                    nursery.start_soon(servo_sends, when, signum)
                code = await run.supervised(command, spawner)
                nursery.cancel_scope.cancel()
            ended = trio.current_time()
    return FakeRun(code, output.lines, output.stderr.getvalue(), ended, spawner=spawner,
                   facts=run.facts)


# -- the adjust itself over fakes, stopped at a given moment -------------------------------

@dataclass
class Adjusted:
    final: dict[str, Any]
    code: int
    processes: list[FakeProcess]
    output: RecordingOutput

    def calls(self, call: Call) -> dict[str, FakeProcess]:
        return {p.spec.driver.name: p for p in self.processes if p.spec.call is call}

    def span(self, name: str, call: Call = Call.ADJUST) -> tuple[float, float]:
        proc = self.calls(call)[name]
        assert proc.exited_at is not None
        return proc.started_at, proc.exited_at

    def progress(self) -> list[tuple[int, str]]:
        found = [json.loads(line) for _, line in self.output.lines]
        return [(m["progress"], m["message"]) for m in found if "progress" in m]


async def adjust_over_fakes(drivers: dict[str, Script], section: dict[str, Any], *,
                         stop_at: float | None = None,
                         stop: Callable[[RunControl], None] | None = None,
                         io_timeout: float = 10.0,
                         trace: list[tuple[str, str]] | None = None) -> Adjusted:
    """The real adjust over fake drivers (each driver named `NNx` adjusts component `x`),
    config.yaml's aggregator section as `section`; `stop` done to the run's control at
    `stop_at` (a cancel or a terminate, as servo's signals do it)."""
    output = RecordingOutput()
    request = {"application": {"components": {name[2:]: {"settings": {"x": {"value": 5}}}
                                              for name in drivers}}}
    async with open_fake_spawner() as spawner:
        for name, script in drivers.items():
            spawner.script(name, script)
        tracer = None if trace is None else (lambda who, text: trace.append((who, text)))
        session = Session(Supervisor(SupervisionPolicy(io_timeout, 0.5, 3.0), spawner,
                                     trace=tracer),
                          output, ServoEnvironment(io_timeout, "all"))
        job = AdjustJob(Command.ADJUST, "app", parse_section(section),
                        tuple(fake_spec(name).driver for name in drivers),
                        parse_request(json.dumps(request).encode()))

        async def stopper() -> None:
            assert stop is not None and stop_at is not None
            await trio.sleep(stop_at)
            stop(session.control)

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                if stop is not None:
                    nursery.start_soon(stopper)
                try:
                    code = await adjust(job, session)
                except RunStopped as stopped:
                    code = write_stopped(session, stopped)
                nursery.cancel_scope.cancel()
        processes = list(spawner.started)
    return Adjusted(json.loads(output.lines[-1][1]), code, processes, output)


def timed_script(component: str, *, takes: float = 1.0, reports: int = 1,
                 silent: bool = False, result: dict[str, Any] | None = None, code: int = 0,
                 query_takes: float = 0.0, query_code: int = 0,
                 rollback_takes: float = 0.5) -> Script:
    """A driver for adjust_over_fakes, owning `component`.x, that takes the time it is
    told. --query: after `query_takes` s, its setting (or, with `query_code`, a line of
    stderr and that exit). Adjust: `reports` progress lines spread over `takes` s (none,
    and no end, when `silent`), then `result` (ok unless given) and exit `code`.
    Rollback: `rollback_takes` s, then ok."""
    async def script(p: FakeMember) -> int:
        if p.proc.spec.call is Call.QUERY:
            await trio.sleep(query_takes)
            if query_code:
                await p.complain("cannot reach the api")
                return query_code
            await p.say({"application": {"components": {component: {"settings": {
                "x": {"value": 1, "min": 0, "max": 9}}}}}})
            return 0
        await p.read_request()
        if p.proc.spec.call is Call.ROLLBACK:
            await trio.sleep(rollback_takes)
            await p.say({"status": "ok", "reason": "success"})
            return 0
        if silent:
            await trio.sleep_forever()
        for step in range(reports):
            await p.say({"progress": 100 * step // reports, "message": f"step {step}"})
            await trio.sleep(takes / reports)
        await p.say({"status": "ok", "reason": "success"} if result is None else result)
        return code
    return script


# -- --check's questions over fakes --------------------------------------------------------

async def probe_fakes(scripts: Mapping[str, Script], environment: ServoEnvironment, *,
                      app: str = "app", front: FrontEnd = FrontEnd.ADJUST,
                      parallel: bool = False) -> tuple[list[Probe], list[FakeProcess]]:
    """--check's probes (probe_command) of the fake drivers `scripts`, under the
    supervision --check runs them with in `environment`; and the processes it started."""
    folder = "measure.d" if front is FrontEnd.MEASURE else "adjust.d"
    drivers = [fake_driver(name, folder) for name in scripts]
    probes: list[Probe] = []
    async with open_fake_spawner() as spawner:
        for name, script in scripts.items():
            spawner.script(name, script)
        policy = SupervisionPolicy(environment.io_timeout, 0.5, 3.0,
                                   environment.io_timeout_source)
        session = Session(Supervisor(policy, spawner), RecordingOutput(), environment)
        with trio.fail_after(TRIO_TIME_BOUND):
            assert await probe_command(drivers, app, probes, front,
                                       parallel=parallel)(session) == 0
        started = list(spawner.started)
    return probes, started
