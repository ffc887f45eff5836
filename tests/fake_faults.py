"""The fault driver (faults/adjust-fault) as fake driver scripts, mode by mode: the fault
matrices on trio's MockClock run the real commands over these in milliseconds.
test_fault_driver.py holds each mode to the real driver: the same stdout and stderr, the
same exit.

Each script answers every call as the fault driver does, as an adjust driver or (its
calls --describe and the measurement) a measure driver: the mode in the call of its
phase, a good driver's answer in the others.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from aggregator.protocol.vocabulary import Call
from tests.fakes import FakeMember, Script

#: What faults/adjust-fault says to --info; a good result of an adjust.
FAULT_VERSION = "1.0"
MIB = 1024 * 1024
OK = {"status": "ok", "reason": "success"}

Mode = Callable[["FaultCall"], Awaitable[int | None]]


class FaultCall:
    """One call of the fake fault driver: its settings, and the helpers its modes share
    (the real driver's class Fault)."""

    def __init__(self, p: FakeMember, component: str, metric: str, io_timeout: float | None,
                 interval: float | None, duration: float | None, size: int) -> None:
        self.p = p
        self.call = p.proc.spec.call
        self.component = component
        self.metric = metric
        self.io_timeout = io_timeout or 0.0
        self.interval = interval
        self.duration = duration
        self.size = size

    async def emit(self, obj: dict[str, Any]) -> None:
        await self.p.say(obj)

    async def progress(self, percent: Any, message: str) -> None:
        await self.emit({"progress": percent, "message": message})

    async def read_request(self) -> None:
        """Only an adjust or a measurement reads its stdin (a question's is empty)."""
        if self.call in (Call.ADJUST, Call.MEASURE):
            data = await self.p.read_request()
            if data.strip():
                json.loads(data)

    async def ok(self) -> None:
        """A good result: of an adjust, or of a measurement of its one metric."""
        if self.call is Call.MEASURE:
            await self.emit({"status": "ok", "metrics": {self.metric: {"value": 1}}})
        else:
            await self.emit(OK)

    async def good_answer(self) -> None:
        if self.call is Call.INFO:
            await self.emit({"version": FAULT_VERSION, "has_cancel": True})
        elif self.call is Call.QUERY:
            await self.emit(self.descriptor({"type": "range", "value": 1, "min": 0,
                                             "max": 10, "step": 1}))
        elif self.call is Call.DESCRIBE:
            await self.emit({"status": "ok", "metrics": {self.metric: {"unit": "count"}}})
        else:
            await self.read_request()
            await self.progress(50, "measuring" if self.call is Call.MEASURE else "adjusting")
            await self.ok()

    def descriptor(self, level: dict[str, Any], name: str = "level") -> dict[str, Any]:
        return {"application": {"components": {self.component: {"settings": {name: level}}}}}

    def timed(self, interval: float, duration: float) -> tuple[float, float]:
        return (self.interval if self.interval is not None else interval,
                self.duration if self.duration is not None else duration)

    async def hang(self) -> None:
        await trio.sleep_forever()


# -- the modes, as faults/adjust-fault has them -------------------------------------------

async def hang(f: FaultCall) -> None:
    await f.read_request()
    await f.hang()


async def hang_after_progress(f: FaultCall) -> None:
    await f.read_request()
    await f.progress(10, "started, about to hang")
    await f.hang()


async def ignore_sigterm(f: FaultCall) -> None:
    f.p.ignore(signal.SIGTERM)
    await f.read_request()
    await f.hang()


async def ok_then_linger(f: FaultCall) -> None:
    await f.read_request()
    await f.ok()
    f.p.close("stdout")
    await f.hang()


def writes_then_hangs(data: bytes) -> Mode:
    async def mode(f: FaultCall) -> None:
        await f.read_request()
        await f.p.write(data)
        await f.hang()
    return mode


async def partial_line(f: FaultCall) -> int:
    await f.read_request()
    await f.p.write('{"status": "ok", "reason": "succ')
    return 0


async def non_finite_result(f: FaultCall) -> None:
    if f.call is Call.INFO:
        await f.emit({"version": FAULT_VERSION, "has_cancel": True, "uptime": float("-inf")})
        return
    await f.read_request()
    await f.emit({"status": "ok", "reason": "success", "took": float("inf")})


async def lone_surrogate(f: FaultCall) -> int | None:
    if f.call is Call.INFO:
        await f.emit({"version": FAULT_VERSION + " \ud800", "has_cancel": True})
    elif f.call is Call.QUERY:
        await f.emit(f.descriptor({"type": "range", "value": 1, "min": 0, "max": 10},
                                  "lev\udcffel"))
    else:
        await f.read_request()
        await f.progress(50, "half \ud800 done")
        await f.emit({"status": "failed", "reason": "fault-injected",
                      "message": "failed on purpose \udcff"})
        return 1
    return None


def reads_then(result: dict[str, Any] | None, code: int) -> Mode:
    """Reads the request, prints `result` (if any; OK: its good result) and exits with
    `code`."""
    async def mode(f: FaultCall) -> int:
        await f.read_request()
        if result is OK:
            await f.ok()
        elif result is not None:
            await f.emit(result)
        return code
    return mode


async def bad_progress(f: FaultCall) -> None:
    await f.read_request()
    for value in ("abc", None, [1], {"x": 1}, True, -50, 250, 40, 30, "60"):
        await f.progress(value, f"odd value {value!r}")
    await f.ok()


def slow(percent: Callable[[int], Any], message: Callable[[int], str]) -> Mode:
    """A progress line every interval (T-2 s) for duration (T+2 s), then ok."""
    async def mode(f: FaultCall) -> None:
        await f.read_request()
        t = f.io_timeout
        interval, duration = f.timed(t - 2 if t > 2.5 else 0.5, t + 2 if t else 5.0)
        started = trio.current_time()
        step = 0
        while trio.current_time() - started < duration:
            step += 1
            await f.progress(percent(step), message(step))
            await trio.sleep(interval)
        await f.ok()
    return mode


def alive_without_progress(beat: Callable[[FaultCall], Awaitable[None]]) -> Mode:
    """A sign of life every interval (1 s) for duration (T+4 s), then ok."""
    async def mode(f: FaultCall) -> None:
        await f.read_request()
        t = f.io_timeout
        interval, duration = f.timed(1.0, t + 4 if t else 5.0)
        started = trio.current_time()
        while trio.current_time() - started < duration:
            await beat(f)
            await trio.sleep(interval)
        await f.ok()
    return mode


async def bad_descriptor(f: FaultCall) -> None:
    await f.read_request()
    await f.emit({"application": {"components": ["not", "a", "mapping"]}})


async def non_finite_descriptor(f: FaultCall) -> None:
    await f.read_request()
    await f.emit(f.descriptor({"type": "range", "value": float("nan"), "min": 0,
                               "max": float("inf")}))


async def ok(f: FaultCall) -> None:
    await f.good_answer()


async def stderr_flood(f: FaultCall) -> int:
    """`size` bytes of stderr (a progress line every 16 MiB), its last line, exit 1."""
    await f.read_request()
    line = b"stderr flood " * 78 + b"\n"
    block = (line * (MIB // len(line) + 1))[:MIB]
    written = 0
    while written < f.size:
        chunk = block[:f.size - written]
        await f.p.write(chunk, "stderr")
        written += len(chunk)
        if written % (16 * MIB) == 0:
            await f.progress(min(99, written * 100 // f.size), "flooding stderr")
    await f.p.write(b"\nthe last line of the flood\n", "stderr")
    return 1


async def work_after_request(f: FaultCall) -> None:
    """A healthy slow driver: a progress line every interval (0.3 s) for duration (60 s)."""
    interval, duration = f.timed(0.3, 60.0)
    started = trio.current_time()
    step = 0
    while trio.current_time() - started < duration:
        step += 1
        await f.progress(min(99, step), f"working ({step})")
        await trio.sleep(interval)
    await f.ok()


async def work(f: FaultCall) -> None:
    await f.read_request()
    await work_after_request(f)


async def cancel_aware(f: FaultCall) -> int | None:
    """Works; on SIGUSR1 prints status canceled and exits 1."""
    f.p.catch(signal.SIGUSR1)
    canceled: list[int] = []
    async with trio.open_nursery() as nursery:
        async def on_cancel() -> None:
            await f.p.next_signal()
            await f.emit({"status": "canceled", "reason": "canceled",
                          "message": "stopped at servo's request"})
            canceled.append(1)
            nursery.cancel_scope.cancel()

        nursery.start_soon(on_cancel)
        await work(f)
        nursery.cancel_scope.cancel()
    return canceled[0] if canceled else None


async def no_cancel_handler(f: FaultCall) -> None:
    """Works; SIGUSR1 kills it (the default)."""
    await work(f)


async def ignore_sigusr1(f: FaultCall) -> None:
    f.p.ignore(signal.SIGUSR1)
    await work(f)


async def _blank(f: FaultCall) -> None:
    await f.p.write("\n")


async def _working(f: FaultCall) -> None:
    await f.emit({"message": "working"})


async def _log(f: FaultCall) -> None:
    await f.p.write("still working\n", "stderr")


MODES: dict[str, Mode] = {
    "ok": ok,
    "hang": hang,
    "hang-after-progress": hang_after_progress,
    "ignore-sigterm": ignore_sigterm,
    "ok-then-linger": ok_then_linger,
    "non-json": writes_then_hangs(b"this is not JSON {\n"),
    "non-object": writes_then_hangs(b"[1, 2, 3]\n"),
    "partial-line": partial_line,
    "invalid-utf8": writes_then_hangs(b'{"progress": 10, "message": "\xff\xfe"}\n'),
    "non-finite-result": non_finite_result,
    "lone-surrogate": lone_surrogate,
    "exit-nonzero-silent": reads_then(None, 3),
    "exit-zero-silent": reads_then(None, 0),
    "ok-then-exit-1": reads_then(OK, 1),
    "no-status": reads_then({"result": "done, in my own words"}, 0),
    "failed-result": reads_then({"status": "failed", "reason": "fault-injected",
                                 "message": "failed on purpose"}, 1),
    "rejected": reads_then({"status": "rejected", "reason": "policy",
                            "message": "refused on purpose"}, 1),
    "bad-progress": bad_progress,
    "slow-alive": slow(lambda step: min(99, step * 10), lambda step: f"slow step {step}"),
    "junk-progress-alive": slow(lambda step: "working",
                                lambda step: "busy, no percentage to give"),
    "alive-by-blank-lines": alive_without_progress(_blank),
    "alive-by-result-lines": alive_without_progress(_working),
    "alive-by-stderr": alive_without_progress(_log),
    "bad-descriptor": bad_descriptor,
    "non-finite-descriptor": non_finite_descriptor,
    "stderr-flood": stderr_flood,
    "work": work,
    "cancel-aware": cancel_aware,
    "no-cancel-handler": no_cancel_handler,
    "ignore-sigusr1": ignore_sigusr1,
}


def fault_script(mode: str, phase: Call = Call.ADJUST, *, component: str = "fault",
                 metric: str | None = None, io_timeout: float | None = None,
                 interval: float | None = None, duration: float | None = None,
                 size: int = 200 * MIB) -> Script:
    """The fault driver with FAULT_MODE=mode and FAULT_PHASE=phase (adjust, query, info;
    for a measure driver measure, describe; and FAULT_COMPONENT, FAULT_METRIC,
    FAULT_INTERVAL, FAULT_DURATION, FAULT_SIZE; OPTUNE_IO_TIMEOUT=io_timeout) as a fake's
    script."""
    chosen = MODES[mode]

    async def script(p: FakeMember) -> int | None:
        f = FaultCall(p, component, metric or f"{component}_level", io_timeout, interval,
                      duration, size)
        if f.call is phase:
            return await chosen(f)
        await f.good_answer()
        return None

    return script
