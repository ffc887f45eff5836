"""Supervised driver calls: the only place driver processes live.

Every wait for the driver's next stdout line is bounded by `line_limit` seconds from its
last line (one cancel scope whose deadline moves with each burst of lines, so a flood
costs no scope per line). When it expires, when the output breaks the protocol, or when
servo cancels or terminates us, the kill cascade runs (shielded, so nothing can interrupt
it): SIGTERM to the driver's process group, `kill_grace` seconds, SIGKILL to the group,
reap. Only that driver is touched. Processes come from a Spawner (the seam tests use);
the only clock is trio's.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import trio

from aggregator.limits import (
    EXIT_DRAIN_MAX_SECONDS,
    EXIT_DRAIN_SECONDS,
    JOURNAL_RESULT_BYTES,
    MAX_LINE_BYTES,
    MAX_RESULT_LINE_BYTES,
    READ_CHUNK_BYTES,
    REAP_LIMIT_SECONDS,
)
from aggregator.process.fork import descriptor_limit, drivers_that_fit
from aggregator.process.orphans import OrphanSweeper
from aggregator.protocol.environment import (
    IO_TIMEOUT_VAR,
    cancel_grace_for,
    kill_grace_for,
    line_limit_for,
)
from aggregator.protocol.result import speaks_for_itself
from aggregator.protocol.strict_json import LineDecoder, NotStrictJson
from aggregator.protocol.validation import show
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.root.config import DriverBounds, RunBounds
from aggregator.supervision.bounds import describe_use, out_of_memory, pids_reached
from aggregator.supervision.control import RunControl
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.reader import LineReader, LineTooLong, PartialLastLine
from aggregator.supervision.spawner import Spawner, SpawnError, SupervisedProcess
from aggregator.supervision.spec import CallEnd, CallOutcome, CallSpec, Problem, TimeLimit

ProgressHandler = Callable[[dict[str, Any]], None]
TraceHandler = Callable[[str, str], None]  # (driver name, text)
LifeHandler = Callable[[], None]  # the driver showed life (a byte on stdout or stderr)


class SupervisionPolicy(NamedTuple):
    """The timing every driver call of one run is held to."""

    io_timeout: float | None
    kill_grace: float
    cancel_grace: float
    #: where io_timeout (T) came from, named in every message about the line limit
    io_timeout_source: str = IO_TIMEOUT_VAR

    @property
    def line_limit(self) -> float | None:
        return line_limit_for(self.io_timeout)

    @property
    def effective_kill_grace(self) -> float:
        return kill_grace_for(self.io_timeout, self.kill_grace)

    @property
    def effective_cancel_grace(self) -> float:
        return cancel_grace_for(self.io_timeout, self.cancel_grace)


#: Calls that answer with data servo keeps (an adjust descriptor, a measure description,
#: a measure result with its time series): their answer line may be up to
#: MAX_RESULT_LINE_BYTES. Every other line, of every call, is held to MAX_LINE_BYTES.
LARGE_ANSWER_CALLS = frozenset({Call.QUERY, Call.DESCRIBE, Call.MEASURE})


def line_cap(call: Call) -> int:
    """The longest stdout line a call of this kind may read."""
    return MAX_RESULT_LINE_BYTES if call in LARGE_ANSWER_CALLS else MAX_LINE_BYTES


def _excerpt(data: bytes | str, limit: int = 120) -> str:
    text = data[:limit] if isinstance(data, str) else data[:limit].decode("utf-8", "replace")
    return repr(text) + ("..." if len(data) > limit else "")


class _DriverCall:
    """The state of one running call; RunControl reaches it through request_*."""

    def __init__(self, sup: Supervisor, spec: CallSpec, proc: SupervisedProcess,
                 outcome: CallOutcome, on_progress: ProgressHandler | None,
                 on_life: LifeHandler | None, deadline: float | None,
                 deadline_detail: str | None = None, *, started: float,
                 limit: TimeLimit | None = None) -> None:
        self.policy = sup.policy
        self.trace = sup.trace
        self.deadline = deadline
        self.started = started  # the driver's own start (trio time)
        self.limit = limit
        self.deadline_detail = deadline_detail or ("did not answer within the time servo "
                                                   "allows this command; killed")
        self.spec = spec
        self.name = spec.driver.name
        self.proc = proc
        self.outcome = outcome
        self.on_progress = on_progress
        self.on_life = on_life
        self.scope = trio.CancelScope()  # the whole call: cancel grace, terminate
        self.stdout_scope = trio.CancelScope()  # the wait for the next line
        self.stderr_scope = trio.CancelScope()
        self.stdin_scope = trio.CancelScope()
        self.exit_wait = trio.CancelScope()  # stdout closed, the driver not yet exited
        self.exited = trio.Event()
        self.exited_at: float | None = None
        self.reader = LineReader(proc.stdout, line_cap(spec.call))
        self.decoder = LineDecoder()
        self.result_overflowed = False  # the result holds a number that reads as infinity
        self.patience = math.inf if self.policy.line_limit is None else self.policy.line_limit
        self.last_life = trio.current_time()  # the driver's last byte on stdout or stderr
        self.backlog_end = 0  # self.reader.received once all it wrote before exiting is read
        self.canceled = False
        self.terminated = False
        self.finishing = False  # the kill cascade or the reap is under way

    def _alive(self) -> None:
        self.last_life = trio.current_time()
        if self.on_life is not None:
            self.on_life()

    # -- requests from RunControl -------------------------------------------------
    def request_cancel(self) -> None:
        if self.canceled or self.terminated or self.finishing:
            return
        self.canceled = True
        self.proc.signal_leader(signal.SIGUSR1)
        self.scope.deadline = min(self.scope.deadline,
                                  trio.current_time() + self.policy.effective_cancel_grace)

    def request_terminate(self) -> None:
        self.terminated = True
        self.scope.cancel()

    # -- the call -----------------------------------------------------------------
    def _fail(self, reason: Reason, detail: str) -> None:
        if self.outcome.problem is None:
            self.outcome.problem = Problem(reason, detail)

    def _trace(self, text: str) -> None:
        if self.trace is not None:
            self.trace(self.spec.driver.name, text)

    def _kill_times(self) -> tuple[float, float]:
        """When the cascade starts for the answer deadline (it must be over by then) and
        for the time limit (it starts then)."""
        answer = (math.inf if self.deadline is None
                  else self.deadline - self.policy.effective_kill_grace)
        limit = math.inf if self.limit is None else self.started + self.limit.seconds
        return answer, limit

    def _timeout_detail(self) -> str:
        answer, limit = self._kill_times()
        if self.limit is not None and limit <= answer:
            return self.limit.detail(trio.current_time() - self.started)
        return self.deadline_detail

    async def run(self) -> None:
        # A cancel may have come before (the control was stopping as the call attached):
        # its grace stands. Every bound here is a min, never a reset.
        self.scope.deadline = min(self.scope.deadline, *self._kill_times())
        with self.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._feed_stdin)
                nursery.start_soon(self._drain_stderr)
                nursery.start_soon(self._watch_exit)
                if not await self._read_stdout():
                    nursery.cancel_scope.cancel()
        if self.outcome.result is not None and self.result_overflowed:  # (the last wins)
            self._fail(Reason.BAD_OUTPUT, "its result holds a number out of range (it reads "
                                          "as infinity, which JSON cannot carry)")
        if self.terminated:
            self._fail(Reason.TERMINATED, "killed because servo-agg was told to terminate")
        elif self.canceled and not self.proc.has_exited():
            self._fail(Reason.CANCELED,
                       "did not finish within the cancel grace after SIGUSR1; killed")
        elif self.scope.cancelled_caught and not self.proc.has_exited():
            self._fail(Reason.TIMEOUT, self._timeout_detail())

    async def _feed_stdin(self) -> None:
        """Write the request; stopped once the driver exited (a child of it may hold its
        stdin open without reading)."""
        try:
            with self.stdin_scope:
                if self.spec.stdin:
                    await self.proc.stdin.send_all(self.spec.stdin)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the driver closed stdin; it fails or succeeds on its own
        finally:
            with trio.CancelScope(shield=True):
                await self.proc.stdin.aclose()

    def _drain_deadline(self) -> float:
        """After the driver exited, a pipe is read on while data keeps coming, but a
        descendant holding it open cannot keep the call alive."""
        assert self.exited_at is not None
        cap = EXIT_DRAIN_MAX_SECONDS
        if self.policy.line_limit is not None:
            cap = min(cap, self.policy.line_limit)
        return min(trio.current_time() + EXIT_DRAIN_SECONDS,
                   self.exited_at + max(EXIT_DRAIN_SECONDS, cap))

    def _stdout_deadline(self) -> float:
        """The per-line limit; after the exit, once what the driver wrote is read, the drain."""
        if self.exited_at is None or self.reader.received < self.backlog_end:
            return self.last_life + self.patience
        return self._drain_deadline()

    async def _watch_exit(self) -> None:
        await self.proc.wait_exited()
        self.exited_at = trio.current_time()
        # Whatever the driver wrote before it exited is read whole, however slowly we go.
        self.backlog_end = self.reader.received + self.proc.stdout_pending()
        self.exited.set()
        self.stdin_scope.cancel()
        self.stdout_scope.deadline = min(self.stdout_scope.deadline, self._stdout_deadline())
        self.stderr_scope.deadline = min(self.stderr_scope.deadline, self._drain_deadline())

    async def _drain_stderr(self) -> None:
        """Keep stderr, bounded; after the exit, only as long as data keeps coming."""
        with self.stderr_scope:
            receive = self.proc.stderr.receive_some
            while chunk := await receive(READ_CHUNK_BYTES):
                self.outcome.stderr.feed(chunk)
                if self.exited_at is not None:
                    self.stderr_scope.deadline = self._drain_deadline()
                else:  # servo's rule: a byte on stderr is life as much as one on stdout
                    self._alive()
                    self.stdout_scope.deadline = self._stdout_deadline()
                    self.exit_wait.deadline = self.last_life + self.patience

    async def _read_stdout(self) -> bool:
        """Read lines until EOF and exit; False when the call must be ended by force.

        A burst of lines is handled under one deadline (the line limit counts from the
        driver's last sign of life), so a flood costs no cancel scope per line.
        """
        reader = self.reader
        limit = self.policy.line_limit
        self.last_life = trio.current_time()
        burst = False
        wait = self.stdout_scope
        with wait:
            while True:
                try:
                    size = reader.next_size()
                except LineTooLong as exc:
                    self._fail(Reason.BAD_OUTPUT, f"{exc}; a protocol line must be one JSON object")
                    return False
                if size is None:
                    if burst:  # the line limit counts from the last line of a burst
                        self._alive()
                        burst = False
                    if reader.at_eof:
                        partial = reader.leftover()
                        if partial is not None:
                            return self._partial(partial)
                        break
                    # Recomputed after every chunk: the driver may have exited meanwhile.
                    wait.deadline = self._stdout_deadline()
                    await reader.receive()
                    if not reader.at_eof:
                        self._alive()  # any byte, even of an unfinished line
                    continue
                burst = True
                # The line is handed over, never held here: its bytes can go once decoded.
                if size > MAX_LINE_BYTES:
                    if not self._take_long_line(size):
                        return False
                elif not self._take_line(reader.take_line()):
                    return False
        if wait.cancelled_caught:
            if self.exited_at is None:
                silent = trio.current_time() - self.last_life
                self._fail(Reason.TIMEOUT, f"sent nothing for {silent:.1f} s on stdout "
                                           f"or stderr (limit {limit:g} s from "
                                           f"{self.policy.io_timeout_source}); killed")
                return False
            # It exited, but something it started still holds stdout: done all the same.
            partial = reader.leftover()
            return True if partial is None else self._partial(partial)
        # Closing stdout is no sign of life: the line limit still counts from the last one.
        with self.exit_wait:
            self.exit_wait.deadline = self.last_life + self.patience
            await self.exited.wait()
        if self.exit_wait.cancelled_caught:
            self._fail(Reason.TIMEOUT, f"closed stdout but did not exit within {limit:g} s "
                                       "of its last sign of life (the line limit, from "
                                       f"{self.policy.io_timeout_source}); killed")
            return False
        return True

    def _take_long_line(self, size: int) -> bool:
        """The next line, over MAX_LINE_BYTES (only a large answer's call reads one): an
        answer, or bad output if it turns out to be progress."""
        relay = self.on_progress
        progress: list[dict[str, Any]] = []
        self.on_progress = progress.append
        try:
            taken = self._take_line(self.reader.take_line())
        finally:
            self.on_progress = relay
        if taken and progress:
            self._fail(Reason.BAD_OUTPUT, f"printed a progress line of {size} bytes; "
                                          f"a progress line may be at most {MAX_LINE_BYTES} bytes")
            return False
        return taken

    def _partial(self, exc: PartialLastLine) -> bool:
        self._fail(Reason.BAD_OUTPUT, f"output ended without a newline: {_excerpt(exc.fragment)}")
        return False

    def _take_line(self, raw: bytes) -> bool:
        """One line, handed over: its bytes are let go once decoded, so a line of tens of
        MB is held as text and value, not also as bytes."""
        if self.trace is not None:  # checked first: this runs for every line of a flood
            self._trace(f"<- {raw[:500].decode('utf-8', 'replace')}")
        stripped = raw.strip()
        del raw
        if not stripped:
            return True  # blank lines carry nothing; servo skips them too
        try:
            text = stripped.decode("utf-8")
        except ValueError:  # UnicodeDecodeError
            self._fail(Reason.BAD_OUTPUT, f"printed a line that is not JSON: {_excerpt(stripped)}")
            return False
        # The record keeps only the start of a line: its bytes go before the value is built.
        head, size = stripped[:JOURNAL_RESULT_BYTES], len(stripped)
        del stripped
        try:
            message, end = self.decoder.decode(text)  # json.loads minus its whitespace passes
            if end != len(text):
                raise ValueError("extra data after the JSON value")
        except NotStrictJson as exc:
            self._fail(Reason.BAD_OUTPUT, f"printed {exc.token}, which is not a JSON value "
                                          f"(only Python reads it): {_excerpt(text)}")
            return False
        except (ValueError, RecursionError):
            self._fail(Reason.BAD_OUTPUT, f"printed a line that is not JSON: {_excerpt(text)}")
            return False
        if not isinstance(message, dict):
            self._fail(Reason.BAD_OUTPUT,
                       f"printed JSON that is not an object: {_excerpt(text)}")
            return False
        outcome = self.outcome
        if "progress" in message:
            outcome.progress_count += 1
            if outcome.first_progress is None:
                outcome.first_progress = head
            outcome.last_progress = head
            if self.on_progress is not None:
                self.on_progress(message)
        else:
            outcome.result = message
            outcome.result_line = head
            outcome.result_bytes = size
            self.result_overflowed = self.decoder.overflowed
        return True

    async def finish(self) -> None:
        """The kill cascade if needed, then reap and close: runs whatever was cancelled."""
        self.finishing = True
        killed = False
        with trio.CancelScope(shield=True):
            if not self.proc.has_exited():
                killed = True
                self.proc.signal_group(signal.SIGTERM)
                with trio.move_on_after(self.policy.effective_kill_grace):
                    await self.proc.wait_exited()
                self.proc.signal_group(signal.SIGKILL)
                with trio.move_on_after(REAP_LIMIT_SECONDS):
                    await self.proc.wait_exited()
            else:
                # The leader is gone but is not reaped yet, so its group id cannot have been
                # reused: whatever is left of the group (a grandchild on our pipes) goes.
                self.proc.signal_group(signal.SIGKILL)
            self.outcome.exit_code = self.proc.reap()
            self.outcome.resource_use = self.proc.resource_use
            self.outcome.end = self._end(killed)
            await self.proc.aclose_pipes()

    def _end(self, killed: bool) -> CallEnd:
        """How the call ended, for the record: what servo-agg did to it first."""
        problem = self.outcome.problem
        if problem is not None and problem.reason == Reason.TIMEOUT:
            return CallEnd.TIMEOUT
        if self.terminated:
            return CallEnd.STOPPED
        if self.canceled:
            return CallEnd.CANCELED
        if killed:
            return CallEnd.KILLED
        code = self.outcome.exit_code
        return CallEnd.SIGNALED if code is not None and code < 0 else CallEnd.EXITED


def deadline_of(bounds: DriverBounds) -> TimeLimit | None:
    """A driver's `deadline` as the time limit of each of its calls, whatever the call."""
    if bounds.deadline is None:
        return None
    return TimeLimit(bounds.deadline, f"its deadline of {show(bounds.deadline)} s")


def earlier(a: TimeLimit | None, b: TimeLimit | None) -> TimeLimit | None:
    """The time limit that runs out first (both count from the driver's own start)."""
    if a is None or b is None:
        return a if b is None else b
    return a if a.seconds <= b.seconds else b


class Supervisor:
    """Runs one run's driver calls: each supervised, each attached to the run's control,
    and orphans swept whenever no call is left running."""

    def __init__(self, policy: SupervisionPolicy, spawner: Spawner,
                 control: RunControl | None = None, *, sweeper: OrphanSweeper | None = None,
                 trace: TraceHandler | None = None, bounds: RunBounds | None = None,
                 facts: RunFacts | None = None) -> None:
        self.policy = policy
        self.spawner = spawner
        self.control = control if control is not None else RunControl()
        self.sweeper = sweeper
        self.trace = trace
        self.bounds = bounds or RunBounds()
        #: the run's record: every call is added as it ends, started or not
        self.facts = facts if facts is not None else RunFacts()
        #: calls whose driver may be forked but is not attached yet: no orphan sweep then
        #: (the sweep takes every child of ours that no running call holds)
        self._starting = 0
        #: set while an orphan sweep runs: no driver is started until it is over
        self._sweeping: trio.Event | None = None

    def _judge_limits(self, outcome: CallOutcome, proc: SupervisedProcess) -> None:
        """A call its memory limit stopped is out-of-memory, unless supervision had
        stopped it for another reason already, or the driver printed its own failed or
        rejected result: its status and reason stand, and the memory limit is only said
        in its failure, as a pids limit reached is."""
        limits = self.bounds.of(outcome.driver.name).limits
        hits = proc.limit_hits()
        notes: list[str | None] = []
        if outcome.problem is None:
            use = outcome.resource_use
            starved = out_of_memory(limits.memory, hits, outcome.exit_code,
                                    outcome.stderr.text(), answered=outcome.result is not None,
                                    peak=None if use is None else use.peak_memory)
            if starved is not None and speaks_for_itself(outcome.result, outcome.exit_code):
                notes.append(starved)
            elif starved is not None:
                outcome.problem = Problem(Reason.OUT_OF_MEMORY, starved)
        notes.append(pids_reached(limits.pids, hits))
        outcome.limit_note = "; ".join(note for note in notes if note) or None

    async def call(self, spec: CallSpec, on_progress: ProgressHandler | None = None, *,
                   on_life: LifeHandler | None = None,
                   deadline: float | None = None, deadline_detail: str | None = None,
                   limit: TimeLimit | None = None,
                   group: RunControl | None = None) -> CallOutcome:
        """Run one driver call to the end; never raises for anything the driver does.

        Two bounds, either or both. `deadline` (trio time) is when the answer must be in:
        the call ends by then, kill cascade included, because a one-line answer such as
        --version cannot send keep-alive lines, so its calls share one budget
        (`deadline_detail` says why, when it is another budget). `limit` is how long the
        driver may run from its own start: the cascade starts when it runs out, never
        sooner; the driver's own `deadline` (its bounds) is one too, and of the two the
        earlier applies. `group` is a control of some calls only (e.g. the siblings a
        failing measure driver cancels): the call obeys it as well as the run's.
        """
        limit = earlier(limit, deadline_of(self.bounds.of(spec.driver.name)))
        outcome = CallOutcome(spec)
        control = self.control
        # A head start already runs: it is stopped like any running driver (and named).
        if control.stopping and not self.spawner.is_running(spec):
            outcome.problem = Problem(
                Reason.TERMINATED if control.terminated_by is not None else Reason.CANCELED,
                "not started: servo-agg was stopping",
            )
            self.facts.call_ended(outcome)
            return outcome
        trace = self.trace
        if trace is not None:
            shown = spec.stdin[:500].decode("utf-8", "replace").rstrip()
            trace(spec.driver.name, f"$ {' '.join(spec.argv)}" + (
                f"  (stdin: {shown})" if spec.stdin else ""))
        while self._sweeping is not None:  # a sibling's sweep would take it for an orphan
            await self._sweeping.wait()
        self._starting += 1
        try:
            proc = await self.spawner.start(spec)
        except OSError as exc:
            detail = str(exc) if isinstance(exc, SpawnError) else f"could not be started: {exc}"
            outcome.problem = Problem(Reason.SPAWN_FAILED, detail)
            self.facts.call_ended(outcome)
            self._starting -= 1
            await self._sweep_if_idle()  # a sibling that ended meanwhile left it to us
            return outcome
        except BaseException:
            self._starting -= 1
            raise
        # Attached before the next checkpoint, so no sweep can come in between.
        self._starting -= 1
        # The driver's own start: a head start counts from its real start.
        started = trio.current_time() - proc.age_at_open
        call = _DriverCall(self, spec, proc, outcome, on_progress, on_life, deadline,
                           deadline_detail, started=started, limit=limit)
        control.attach(call)
        if group is not None:
            group.attach(call)
        try:
            await call.run()
        finally:
            try:
                await call.finish()
            finally:
                # Only now: until it is reaped, a sibling's orphan sweep must not take it.
                control.detach(call)
                if group is not None:
                    group.detach(call)
            if (call.canceled and outcome.problem is None
                    and outcome.exit_code == -signal.SIGUSR1):
                outcome.problem = Problem(Reason.CANCELED, "ended by servo's cancel (SIGUSR1, "
                                                           "which it does not handle)")
            self._judge_limits(outcome, proc)
            outcome.elapsed = trio.current_time() - started
            self.facts.call_ended(outcome)
            await self._sweep_if_idle()
            if trace is not None:
                trace(spec.driver.name, f"exit {outcome.exit_code} after {outcome.elapsed:.3f} s"
                      f"; {describe_use(outcome.resource_use)}"
                      + (f" ({outcome.problem.reason}: {outcome.problem.detail})"
                         if outcome.problem else "")
                      + (f" ({outcome.limit_note})" if outcome.limit_note else ""))
        return outcome

    async def _sweep_if_idle(self) -> None:
        """Sweep orphans once no call runs and none is starting (a driver forked for a
        call that is not attached yet is no orphan); calls wait to start until it is over.
        Shielded, as it runs when a call ends: what a driver left behind goes with it."""
        if (self.sweeper is None or self.control.running_count or self._starting
                or self._sweeping is not None):
            return
        self._sweeping = trio.Event()
        try:
            await self.sweeper.sweep(keep=self.spawner.early_pids)
        finally:
            self._sweeping.set()
            self._sweeping = None

    async def call_all(self, specs: Sequence[CallSpec], *, parallel: bool,
                       between: Callable[[CallSpec], None] | None = None,
                       deadline: float | None = None,
                       on_life: Callable[[CallSpec], LifeHandler | None] | None = None,
                       on_progress: Callable[[CallSpec], ProgressHandler | None] | None = None,
                       ) -> list[CallOutcome]:
        """Each call, in order, or all at once; outcomes in the order of `specs`.

        `between` runs after each call of a sequential run (e.g. a keep-alive line);
        `on_life` and `on_progress` give each call its life and progress handlers. All at
        once means as many at once as the descriptors left allow
        (process.fork.drivers_that_fit), head starts first, the others as turns come free;
        a call still waiting for its turn when `deadline` leaves no time for it is not
        started.
        """
        def life(spec: CallSpec) -> LifeHandler | None:
            return None if on_life is None else on_life(spec)

        def progress(spec: CallSpec) -> ProgressHandler | None:
            return None if on_progress is None else on_progress(spec)

        if not parallel:
            outcomes = []
            for spec in specs:
                outcomes.append(await self.call(spec, progress(spec), on_life=life(spec),
                                                deadline=deadline))
                if between is not None:
                    between(spec)
            return outcomes
        slots: list[CallOutcome | None] = [None] * len(specs)
        # A head start holds its descriptors already: its turn is taken before any other.
        at_once = max(1, len(self.spawner.early_pids) + drivers_that_fit())
        turns = trio.CapacityLimiter(at_once)
        tokens = [object() for _ in specs]
        early = {i for i, spec in enumerate(specs) if self.spawner.is_running(spec)}
        for i in early:
            turns.acquire_on_behalf_of_nowait(tokens[i])
        # Once a call would be cut off before its kill grace, it is not worth starting.
        last_start = (math.inf if deadline is None
                      else deadline - self.policy.effective_kill_grace)

        async def one(i: int, spec: CallSpec) -> None:
            if i not in early:
                with trio.move_on_at(last_start) as waiting:
                    await turns.acquire_on_behalf_of(tokens[i])
                if waiting.cancelled_caught:
                    unstarted = slots[i] = CallOutcome(spec, problem=Problem(Reason.TIMEOUT, (
                        f"not started in time: at most {at_once} drivers run at once "
                        f"here, for want of descriptors (the limit is {descriptor_limit()}, "
                        "ulimit -n)")))
                    self.facts.call_ended(unstarted)
                    return
            try:
                slots[i] = await self.call(spec, progress(spec), on_life=life(spec),
                                           deadline=deadline)
            finally:
                turns.release_on_behalf_of(tokens[i])

        async with trio.open_nursery() as nursery:
            for i, spec in enumerate(specs):
                nursery.start_soon(one, i, spec)
        return [o for o in slots if o is not None]
