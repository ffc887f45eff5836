"""Progress: each driver's lines folded into one stream servo can read as one driver's."""

from __future__ import annotations

import io
import itertools
import json
import math
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from aggregator.limits import DEFAULT_PROGRESS_INTERVAL_SECONDS
from aggregator.protocol.progress import progress_value
from aggregator.supervision.output import Output
from aggregator.supervision.progress_relay import (
    NoShare,
    ProgressRelay,
    SlowestDriver,
    WeightedShares,
    progress_interval,
)


class Recorder(Output):
    """An Output that keeps the stdout lines it would have written, and each write."""

    def __init__(self) -> None:
        super().__init__(stdout_fd=-1, stderr=io.StringIO())
        self.lines: list[dict[str, Any]] = []
        self.writes: list[tuple[float, list[dict[str, Any]]]] = []  # (trio time, lines)

    def transmit(self, data: bytes, progress: bool) -> None:
        text = data.decode().removesuffix("\n")  # whole lines, each with its newline
        lines = [json.loads(part) for part in text.split("\n")]  # whole lines, each JSON
        self.lines += lines
        self.writes.append((trio.current_time() if in_trio() else math.nan, lines))

    @property
    def percents(self) -> list[int]:
        return [line["progress"] for line in self.lines]

    @property
    def notes(self) -> str:
        stream = self._stderr
        assert isinstance(stream, io.StringIO)
        return stream.getvalue()


def in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def relay(weights: dict[str, float], interval: float = 0.0,
          clock: Any = None) -> tuple[ProgressRelay, Recorder, FakeClock]:
    """A relay on a fake clock; interval 0 (every line at once) for the folding tests."""
    out = Recorder()
    fake = FakeClock()
    return ProgressRelay(out, WeightedShares(weights), interval, clock or fake), out, fake


EQUAL3 = {"a": 1.0, "b": 1.0, "c": 1.0}


@pytest.mark.unit
def test_equal_shares() -> None:
    r, out, _ = relay(EQUAL3)
    r.driver_progress("a", {"progress": 30, "message": "x"})  # 30 % of a third
    r.driver_done("a")
    r.driver_progress("b", {"progress": 50})
    r.driver_done("b")
    r.driver_progress("c", {"progress": 0})
    r.driver_done("c")
    assert out.percents == [10, 33, 50, 66, 66, 100]
    assert r.percent == 100


@pytest.mark.unit
def test_weighted_shares() -> None:
    r, out, _ = relay({"big": 3.0, "small": 1.0})
    r.driver_progress("big", {"progress": 50})
    r.driver_done("big")
    r.driver_progress("small", {"progress": 50})
    r.driver_done("small")
    assert out.percents == [37, 75, 87, 100]


@pytest.mark.unit
def test_fractional_weights_end_at_exactly_100_in_any_order() -> None:
    r, out, _ = relay({"a": 0.1, "b": 0.2, "c": 0.3})
    for name in ["c", "b", "a"]:
        r.driver_done(name)
    assert out.percents[-1] == 100


@pytest.mark.unit
@pytest.mark.parametrize("value", range(101))
def test_a_lone_driver_percentage_passes_through_unchanged(value: int) -> None:
    r, out, _ = relay({"only": 1.0})
    r.driver_progress("only", {"progress": value})
    assert out.percents == [value]


@pytest.mark.unit
def test_output_is_an_integer_even_for_fractional_progress() -> None:
    r, out, _ = relay({"a": 1.0})
    r.driver_progress("a", {"progress": 33.7})
    r.driver_progress("a", {"progress": "41.9"})  # numeric strings are numbers too
    assert out.percents == [33, 41]
    assert all(type(p) is int for p in out.percents)


@pytest.mark.unit
def test_never_decreasing_but_the_message_still_gets_through() -> None:
    r, out, _ = relay({"a": 1.0})
    r.driver_progress("a", {"progress": 80, "message": "almost"})
    r.driver_progress("a", {"progress": 20, "message": "second phase"})
    assert out.lines == [{"progress": 80, "message": "a: almost"},
                         {"progress": 80, "message": "a: second phase"}]


@pytest.mark.unit
def test_values_are_clamped_within_the_drivers_share() -> None:
    r, out, _ = relay({"a": 1.0, "b": 1.0})
    r.driver_progress("a", {"progress": -20})
    r.driver_progress("a", {"progress": 250})
    r.driver_progress("a", {"progress": math.inf})
    assert out.percents == [0, 50, 50]  # a's share is half, whatever it claims


@pytest.mark.unit
@pytest.mark.parametrize("junk", [None, "fast", [50], {"p": 1}, True, False, math.nan, "nan"])
def test_a_progress_that_is_not_a_number_is_ignored_with_one_note(junk: Any) -> None:
    r, out, _ = relay({"a": 1.0, "b": 1.0})
    r.driver_progress("a", {"progress": junk, "message": "m"})
    r.driver_progress("a", {"progress": junk, "message": "m"})
    r.driver_progress("b", {"progress": junk})
    assert out.percents == [0, 0, 0]  # signs of life at the current percentage
    notes = out.notes.splitlines()
    assert len(notes) == 2  # once per driver, however often it happens
    assert notes[0].startswith("servo-agg: a: ignored a progress value that is not a number")
    assert notes[1].startswith("servo-agg: b: ")
    r.driver_progress("a", {"progress": 40})
    assert out.percents == [0, 0, 0, 20]  # good values afterwards still count


@pytest.mark.unit
@pytest.mark.parametrize("junk", ["x" * 1_000_000, ["x" * 1000] * 1000, {"k" * 500: [1] * 5000}])
def test_the_note_about_a_bad_progress_value_quotes_it_bounded(junk: Any) -> None:
    r, out, _ = relay({"a": 1.0})
    r.driver_progress("a", {"progress": junk})
    assert len(out.notes) < 500, len(out.notes)


@pytest.mark.unit
def test_a_lone_surrogate_in_a_progress_message_reaches_servo_replaced() -> None:
    out = RawRecorder()
    r = ProgressRelay(out, WeightedShares({"x\udcffy": 1.0}), 1.0, FakeClock())
    r.driver_progress("x\udcffy", {"progress": 10, "message": "half \ud800 done"})
    assert out.raw == ['{"progress": 10, "message": "x\\ufffdy: half \\ufffd done"}']


@pytest.mark.unit
def test_message_is_prefixed_with_the_driver_name() -> None:
    r, out, _ = relay({"web": 1.0})
    r.driver_progress("web", {"progress": 1, "message": "scaling"})
    r.driver_progress("web", {"progress": 2})
    r.driver_progress("web", {"progress": 3, "message": ""})
    r.driver_progress("web", {"progress": 4, "message": 17})
    assert [line["message"] for line in out.lines] == ["web: scaling", "web", "web", "web"]
    assert all(set(line) == {"progress", "message"} for line in out.lines)


@pytest.mark.unit
def test_driver_done_always_emits_even_without_progress() -> None:
    r, out, _ = relay(EQUAL3)
    r.driver_done("a")
    assert out.lines == [{"progress": 33, "message": "a: done"}]
    r.driver_done("b", "b: failed")
    assert out.lines[1:] == [{"progress": 66, "message": "b: failed"}]


@pytest.mark.unit
def test_hold_keeps_the_current_percentage() -> None:
    r, out, _ = relay({"a": 1.0, "b": 1.0})
    r.driver_done("a")
    r.hold("rollback: a")
    assert out.lines[-1] == {"progress": 50, "message": "rollback: a"}


@pytest.mark.unit
@pytest.mark.parametrize(("configured", "limit", "interval"), [
    (0.25, None, 0.25), (0.25, 10.0, 0.25), (5.0, 2.0, 1.0), (1.0, 0.2, 0.1), (0.0, 2.0, 0.0),
])
def test_progress_interval_is_the_configured_one_at_most_half_the_line_limit(
        configured: float, limit: float | None, interval: float) -> None:
    assert progress_interval(configured, limit) == pytest.approx(interval)
    assert progress_interval() == DEFAULT_PROGRESS_INTERVAL_SECONDS == 0.25


@pytest.mark.unit
@pytest.mark.parametrize(("raw", "value"), [
    (0, 0.0), (100, 100.0), (55.5, 55.5), ("7", 7.0), (" 8 ", 8.0), (-1, 0.0), (101, 100.0),
    ("inf", 100.0), (-math.inf, 0.0), ("x", None), (None, None), (True, None), ([], None),
    (math.nan, None),
])
def test_progress_value(raw: Any, value: float | None) -> None:
    assert progress_value(raw) == value


# -- the rate limit, on a fake clock -----------------------------------------------------

@pytest.mark.unit
def test_within_an_interval_a_newer_line_replaces_the_pending_one() -> None:
    r, out, clock = relay({"a": 1.0}, interval=1.0)
    r.driver_progress("a", {"progress": 1})  # the relay was idle: out at once
    for value in range(2, 50):
        clock.now += 0.01
        r.driver_progress("a", {"progress": value})
    assert out.percents == [1]
    assert r.pending and r.superseded == 47
    r.close()  # what the flusher does when the interval ends: the newest state only
    assert out.percents == [1, 49]


@pytest.mark.unit
def test_a_line_after_a_quiet_interval_goes_out_at_once() -> None:
    r, out, clock = relay({"a": 1.0}, interval=1.0)
    r.driver_progress("a", {"progress": 1})
    clock.now += 1.0
    r.driver_progress("a", {"progress": 2})
    assert out.percents == [1, 2] and not r.pending


@pytest.mark.unit
def test_milestones_are_never_replaced_and_go_out_in_order_in_one_write() -> None:
    r, out, _ = relay(EQUAL3, interval=1.0)
    r.driver_progress("a", {"progress": 10, "message": "first"})  # idle: at once
    r.driver_progress("a", {"progress": 50})  # replaced by a's done
    r.driver_done("a")
    r.driver_progress("b", {"progress": 30, "message": "b's first"})  # a milestone too
    r.driver_progress("b", {"progress": 60})  # replaced
    r.driver_progress("b", {"progress": 90, "message": "newest"})
    assert len(out.writes) == 1
    r.close()
    assert len(out.writes) == 2
    assert out.writes[1][1] == [{"progress": 33, "message": "a: done"},
                                {"progress": 43, "message": "b: b's first"},
                                {"progress": 63, "message": "b: newest"}]
    assert r.sent == 4 and r.superseded == 2


@pytest.mark.unit
def test_nothing_is_written_after_close() -> None:
    r, out, _ = relay({"a": 1.0, "b": 1.0}, interval=1.0)
    r.driver_progress("a", {"progress": 50})
    r.driver_progress("a", {"progress": 60})
    r.close()
    assert out.percents == [25, 30]
    r.driver_progress("a", {"progress": 70})
    r.driver_done("a")
    r.hold("late")
    r.repeat_last("a")
    r.close()
    assert out.percents == [25, 30]  # the final line comes next: nothing may follow it


@pytest.mark.unit
def test_a_keep_alive_writes_the_pending_state_at_once_or_the_last_line_again() -> None:
    r, out, clock = relay({"a": 1.0}, interval=1.0)
    r.repeat_last("a")  # nothing sent yet
    assert out.lines == [{"progress": 0, "message": "a: working"}]
    clock.now += 5
    r.driver_progress("a", {"progress": 10})
    r.driver_progress("a", {"progress": 20})  # pending
    r.repeat_last("a")
    assert out.percents == [0, 10, 20] and not r.pending
    r.repeat_last("a")
    assert out.percents == [0, 10, 20, 20]


@pytest.mark.unit
def test_interval_zero_relays_every_line() -> None:
    r, out, _ = relay({"a": 1.0}, interval=0.0)
    for value in range(100):
        r.driver_progress("a", {"progress": value})
    assert out.percents == list(range(100)) and r.superseded == 0


# -- the flusher, on trio's mock clock ----------------------------------------------------

async def flood(r: ProgressRelay, driver: str, lines: int, every: float,
                offered: list[tuple[float, str, int]]) -> None:
    """`lines` progress lines, one per `every` s, each with its own message."""
    for i in range(lines):
        offered.append((trio.current_time(), driver, i))
        r.driver_progress(driver, {"progress": i * 100 // lines, "message": f"line {i}"})
        await trio.sleep(every)


def seen_at(out: Recorder, driver: str, i: int) -> float:
    """When servo first saw line i of `driver` or a newer state of it."""
    for at, lines in out.writes:
        for line in lines:
            name, _, rest = line["message"].partition(": ")
            if name == driver and (rest == "done" or int(rest.split()[-1]) >= i):
                return at
    raise AssertionError(f"{driver} line {i} never seen")


@pytest.mark.supervision
async def test_a_flood_is_relayed_once_per_interval_newest_state_within_one_interval(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, WeightedShares({"a": 1.0}), 0.25, clock=trio.current_time)
    offered: list[tuple[float, str, int]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        start = trio.current_time()
        await flood(r, "a", 4_000, 0.001, offered)  # 4 s of a line every ms
        r.driver_done("a")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    times = [at for at, _ in out.writes]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 0.25 - 1e-9 for g in gaps), min(gaps)  # never more than one per interval
    assert 16 <= len(out.lines) <= 19  # 4 s / 0.25 s, the first line and a's done
    assert times[0] == start  # the first line at once
    assert out.lines[-1] == {"progress": 100, "message": "a: done"}
    delays = [seen_at(out, d, i) - at for at, d, i in offered]
    assert max(delays) <= 0.25 + 1e-9  # servo is never more than one interval behind
    assert r.superseded == 4_001 - len(out.lines)


@pytest.mark.supervision
async def test_every_driver_is_heard_first_and_done_each_within_one_interval(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    names = ["a", "b", "c", "d"]
    r = ProgressRelay(out, WeightedShares(dict.fromkeys(names, 1.0)), 0.25,
                      clock=trio.current_time)
    offered: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        for name in names:  # quick drivers, one after another: 30 ms each, 10 lines
            offered[f"{name} first"] = trio.current_time()
            await flood(r, name, 10, 0.003, [])
            offered[f"{name} done"] = trio.current_time()
            r.driver_done(name)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    for name in names:
        first = next(at for at, lines in out.writes for line in lines
                     if line["message"] == f"{name}: line 0")
        done = next(at for at, lines in out.writes for line in lines
                    if line["message"] == f"{name}: done")
        assert first - offered[f"{name} first"] <= 0.25 + 1e-9
        assert done - offered[f"{name} done"] <= 0.25 + 1e-9
    assert len(out.writes) == 1 + math.ceil(0.12 / 0.25)  # all of it, 4 drivers in 0.12 s
    assert out.percents == sorted(out.percents) and out.percents[-1] == 100


@pytest.mark.supervision
async def test_cancelling_the_flusher_writes_what_is_pending_then_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, WeightedShares({"a": 1.0}), 0.25, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        r.driver_progress("a", {"progress": 10})
        await trio.sleep(0.1)
        r.driver_progress("a", {"progress": 20})  # pending until 0.25
        nursery.cancel_scope.cancel()  # the command is over: its final line comes next
    assert out.percents == [10, 20]
    assert [at for at, _ in out.writes] == [0.0, 0.1]
    r.driver_progress("a", {"progress": 30})
    assert out.percents == [10, 20]


@pytest.mark.supervision
async def test_a_survey_relays_at_the_current_percentage_and_hands_its_pending_line_on(
        autojump_clock: trio.testing.MockClock) -> None:
    """One stream from the first query to the last adjust: a survey's line left pending
    when it ends goes out at its interval's end under the next flusher, and what the
    drivers then report folds from where the survey left the percentage."""
    out = Recorder()
    r = ProgressRelay(out, NoShare(), 0.25, clock=trio.current_time)

    async def survey() -> str:
        r.driver_progress("a", {"progress": 70, "message": "asking"})  # at 0: 0 %, not 70
        await trio.sleep(0.1)
        r.driver_progress("a", {"progress": 80, "message": "asked"})  # pending until 0.25
        return "found"

    assert await r.relaying(survey) == "found"
    assert r.pending and out.lines == [{"progress": 0, "message": "a: asking"}]
    r.fold_with(WeightedShares({"a": 1.0}))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        await trio.sleep(1)
        r.driver_progress("a", {"progress": 40, "message": "applying"})  # a first line again
        nursery.cancel_scope.cancel()
    assert [(at, [(line["progress"], line["message"]) for line in lines])
            for at, lines in out.writes] == [
        (0.0, [(0, "a: asking")]), (0.25, [(0, "a: asked")]), (1.1, [(40, "a: applying")])]


@pytest.mark.supervision
async def test_a_survey_that_raises_writes_its_pending_line_before_the_final_one(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, NoShare(), 0.25, clock=trio.current_time)

    async def fails() -> None:
        r.driver_progress("a", {"progress": 1, "message": "one"})
        await trio.sleep(0.1)
        r.driver_progress("a", {"progress": 2, "message": "two"})
        raise LookupError("could not ask a")

    with pytest.raises(LookupError):  # as it was raised: not a group of one
        await r.relaying(fails)
    assert [m["message"] for m in out.lines] == ["a: one", "a: two"]
    r.driver_progress("a", {"progress": 3, "message": "three"})  # closed: the final is next
    assert len(out.lines) == 2


@pytest.mark.supervision
async def test_after_a_keep_alive_the_next_line_waits_a_whole_interval(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, WeightedShares({"a": 1.0}), 1.0, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        r.driver_progress("a", {"progress": 10})  # at 0
        await trio.sleep(0.5)
        r.driver_progress("a", {"progress": 20})  # due at 1.0
        await trio.sleep(0.2)
        r.repeat_last("a")  # at 0.7: the pending line goes now
        r.driver_progress("a", {"progress": 30})  # due at 1.7, not at 1.0
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert [(at, [line["progress"] for line in lines]) for at, lines in out.writes] == [
        (0.0, [10]), (pytest.approx(0.7), [20]), (pytest.approx(1.7), [30])]


@pytest.mark.supervision
async def test_servo_hears_every_drivers_report_within_one_interval_though_nothing_changes(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 14's measurement: of three drivers, two are silent for the whole window and
    one reports every 0.2 s; the aggregate stays at 0 % naming a silent one. servo (and
    the optimizer, who can cancel only in the reply to a progress post) must still get a
    line within one interval of each report, and no more than one per interval."""
    out = Recorder()
    r = ProgressRelay(out, SlowestDriver(["10prom", "20ab", "30chatty"]), 0.25,
                      clock=trio.current_time)
    reports: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        for _ in range(100):  # 20 s
            await trio.sleep(0.2)
            reports.append(trio.current_time())
            r.driver_progress("30chatty", {"progress": 50, "message": "measuring"})
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert {line["message"] for line in out.lines} == {"10prom: starting"}
    assert out.percents == [0] * len(out.lines)  # nothing servo could see changed ...
    times = [at for at, _ in out.writes]
    for at in reports:  # ... and yet every report was followed by a line within 0.25 s
        assert any(at <= t <= at + 0.25 + 1e-9 for t in times), at
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(times))
    assert len(times) >= 20 / 0.4  # not the one line the filter used to leave


# -- properties ---------------------------------------------------------------------------

ANY_PROGRESS = st.one_of(
    st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.none(), st.booleans(), st.lists(st.integers(), max_size=1),
)
DRIVERS = ["a", "b", "c"]
EVENT = st.one_of(
    st.tuples(st.just("progress"), st.sampled_from(DRIVERS), ANY_PROGRESS),
    st.tuples(st.just("done"), st.sampled_from(DRIVERS), st.none()),
    st.tuples(st.just("hold"), st.just(""), st.none()),
    st.tuples(st.just("tick"), st.just(""), st.floats(0, 2)),
)


@pytest.mark.unit
@given(st.lists(EVENT, max_size=40),
       st.dictionaries(st.sampled_from(DRIVERS), st.floats(0.01, 100), min_size=1))
def test_output_never_decreases_and_stays_within_0_to_100(
        events: list[tuple[str, str, Any]], weights: dict[str, float]) -> None:
    r, out, clock = relay(weights, interval=1.0)  # ticks of 0..2 s: some lines wait
    for kind, driver, value in events:
        if kind == "progress":
            r.driver_progress(driver, {"progress": value, "message": "m"})
        elif kind == "done":
            r.driver_done(driver)
        elif kind == "hold":
            r.hold("held")
        else:
            clock.now += value
    r.close()
    percents = out.percents
    assert all(type(p) is int and 0 <= p <= 100 for p in percents)
    assert percents == sorted(percents)


@pytest.mark.unit
@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=2), st.floats(0.01, 100),
                       min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_all_drivers_done_is_100_percent(weights: dict[str, float], rnd: Any) -> None:
    r, out, _ = relay(weights, interval=1.0)  # all within one interval: milestones wait
    order = list(weights)
    rnd.shuffle(order)
    for name in order:
        r.driver_progress(name, {"progress": rnd.randint(0, 100)})
        r.driver_done(name)
    r.close()
    assert out.percents[-1] == 100
    done_lines = [line for line in out.lines if line["message"].endswith(": done")]
    assert len(done_lines) == len(weights)


class RawRecorder(Output):
    def __init__(self) -> None:
        super().__init__(stdout_fd=-1, stderr=io.StringIO())
        self.raw: list[str] = []

    def transmit(self, data: bytes, progress: bool) -> None:
        text = data.decode().removesuffix("\n")  # whole lines, each with its newline
        self.raw.append(text)


@pytest.mark.unit
@given(st.text(), st.integers(0, 100))
def test_progress_lines_are_exactly_what_json_dumps_writes(message: str, value: int) -> None:
    """The hand-built line (for speed) must be byte for byte the JSON encoder's."""
    out = RawRecorder()
    r = ProgressRelay(out, WeightedShares({"drv": 1.0}), 1.0, FakeClock())
    r.driver_progress("drv", {"progress": value, "message": message})
    label = f"drv: {message}" if message else "drv"
    assert out.raw == [json.dumps({"progress": value, "message": label})]


# -- measure: the slowest driver sets the pace -------------------------------------------
@pytest.mark.unit
def test_measure_progress_is_the_slowest_driver_and_names_it() -> None:
    out = Recorder()
    relay = ProgressRelay(out, SlowestDriver(["load", "prom"]), 0.0, clock=FakeClock())
    relay.driver_progress("load", {"progress": 50, "message": "half way"})
    assert relay.percent == 0  # prom has not reported: it counts 0
    relay.driver_progress("prom", {"progress": 30, "message": "reading"})
    assert relay.percent == 30
    relay.driver_progress("load", {"progress": 90})
    assert relay.percent == 30  # still prom's pace
    relay.driver_done("prom", "prom: done")
    assert relay.percent == 90  # a finished driver counts 100: load is now the slowest
    relay.driver_done("load", "load: done")
    assert relay.percent == 100
    assert [line["message"] for line in out.lines] == [
        "prom: starting", "prom: reading", "prom: reading", "load", "load: done"]
    assert out.percents == [0, 30, 30, 90, 100]


def collapsed(messages: list[str]) -> list[str]:
    """Runs of one message as one."""
    return [m for i, m in enumerate(messages) if i == 0 or m != messages[i - 1]]


@pytest.mark.unit
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]),
                          st.one_of(st.integers(-50, 150), st.none())), max_size=40))
def test_measure_progress_never_goes_back_and_is_the_minimum(
        events: list[tuple[str, int | None]]) -> None:
    fold = SlowestDriver(["a", "b", "c"])
    seen = {"a": 0.0, "b": 0.0, "c": 0.0}
    shown = 0
    for driver, value in events:
        if value is None:
            overall, _ = fold.done(driver, f"{driver}: done")
            seen[driver] = 100.0
        else:
            clamped = float(min(100, max(0, value)))
            overall, label = fold.progress(driver, clamped, f"{driver}: {value}")
            seen[driver] = clamped
            named = label.split(":")[0]  # one of the slowest: the reporter, if it is one
            assert seen[named] == min(seen.values())
            assert named == driver or seen[driver] > min(seen.values())
        assert overall == min(seen.values())
        shown = max(shown, int(overall))
    assert 0 <= shown <= 100


# -- the rate-limited stream against every line relayed -------------------------------------

FOLD_EVENTS = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]),
                                 st.one_of(st.none(), st.integers(-20, 120), st.just("x"))),
                       max_size=40)


def fold_of(kind: str) -> Any:
    return WeightedShares(dict.fromkeys("abc", 1.0)) if kind == "shares" \
        else SlowestDriver(["a", "b", "c"])


@pytest.mark.unit
@given(FOLD_EVENTS, st.sampled_from(["shares", "slowest"]))
def test_rate_limited_relay_shows_every_milestone_and_ends_in_the_same_state(
        events: list[tuple[str, int | str | None]], kind: str) -> None:
    """Within one interval (nothing written but the first line until close), servo still
    gets every driver's first line and every end, in order, and the newest state last."""
    every = Recorder()
    every_relay = ProgressRelay(every, fold_of(kind), 0.0, clock=FakeClock())
    limited = Recorder()
    limited_relay = ProgressRelay(limited, fold_of(kind), 1.0, clock=FakeClock())
    milestones: list[int] = []  # indexes into every.lines
    started: set[str] = set()
    for driver, value in events:
        for r in (every_relay, limited_relay):
            if value is None:
                r.driver_done(driver)
            else:
                r.driver_progress(driver, {"progress": value, "message": f"{value}"})
        if value is None or driver not in started:  # an end, or its first progress line
            milestones.append(len(every.lines) - 1)
        if value is not None:
            started.add(driver)
    limited_relay.close()
    if not events:
        assert limited.lines == []
        return
    assert len(limited.writes) <= 2  # the first line at once, the rest at close
    shown = [(line["progress"], line["message"]) for line in limited.lines]
    # A line that repeats the one before it is not sent, so a run of the same message is
    # compared as one.
    expected = collapsed([every.lines[0]["message"]] + [every.lines[i]["message"]
                                                        for i in milestones if i != 0])
    got = collapsed([message for _, message in shown])
    # Every milestone, in order; then the newest state unless a milestone was the newest.
    assert got[:len(expected)] == expected
    assert got[-1] == every.lines[-1]["message"]
    assert len(got) - len(expected) <= 1
    # A driver's report after the first write gets servo a line at close, even one that
    # reads as the last: the optimizer's chance to cancel. Only then is a line repeated.
    reported = any(value is not None for _, value in events[1:])
    if reported:
        assert len(limited.writes) == 2
    for a, b in itertools.pairwise(shown):
        if a == b:
            assert reported and len(limited.writes[1][1]) == 1
    percents = [percent for percent, _ in shown]
    assert percents == sorted(percents)
    assert percents[-1] <= every.lines[-1]["progress"]  # the newest state, never higher


@pytest.mark.unit
def test_a_write_with_a_milestone_is_never_marked_replaceable() -> None:
    """servo's channel may replace a waiting progress write by a newer one while stdout is
    full: a driver's first line and its done line must not be among those."""
    marks: list[tuple[str, bool]] = []

    class Marking(Output):
        def __init__(self) -> None:
            super().__init__(stdout_fd=-1, stderr=io.StringIO())

        def transmit(self, data: bytes, progress: bool) -> None:
            marks.append((data.decode(), progress))

    clock = FakeClock()
    r = ProgressRelay(Marking(), WeightedShares({"a": 1.0}), 1.0, clock)
    r.driver_progress("a", {"progress": 10})  # its first line: a milestone, out at once
    clock.now += 0.1
    r.driver_progress("a", {"progress": 20})  # held: within the interval
    r.driver_done("a")  # a milestone too
    assert marks and all(not replaceable for _, replaceable in marks), marks


@pytest.mark.unit
def test_at_a_bounded_rate_a_repeat_of_the_aggregators_own_bookkeeping_is_not_sent() -> None:
    """servo makes a request to the optimizer per line: a change it cannot see (a driver
    that is not the slowest ending) stands for no driver's report and is not worth one."""
    out, clock = Recorder(), FakeClock()
    relay = ProgressRelay(out, SlowestDriver(["load", "prom"]), 0.25, clock=clock)
    relay.driver_progress("load", {"progress": 0, "message": "loading"})  # at once
    clock.now += 0.1
    relay.driver_done("prom", "prom: done")  # pending; folds to "load: loading" at 0
    clock.now += 0.25
    relay.close()
    assert [(line["progress"], line["message"]) for line in out.lines] == [
        (0, "load: loading")]


@pytest.mark.unit
def test_a_drivers_report_reaches_servo_even_when_the_aggregate_reads_the_same() -> None:
    """servo hears of a cancel only in the reply to a progress post: a driver's own
    progress line must get servo a line, even one that repeats the last (issue 14)."""
    out, clock = Recorder(), FakeClock()
    relay = ProgressRelay(out, SlowestDriver(["load", "prom"]), 0.25, clock=clock)
    relay.driver_progress("load", {"progress": 0, "message": "loading"})  # at once
    relay.driver_progress("prom", {"progress": 10, "message": "reading"})  # pending
    relay.driver_progress("prom", {"progress": 20, "message": "reading"})  # (flood path)
    clock.now += 0.25
    relay.close()  # the aggregate is still "load: loading" at 0: written all the same
    assert [(line["progress"], line["message"]) for line in out.lines] == [
        (0, "load: loading")] * 2


@pytest.mark.unit
def test_a_keep_alive_repeats_the_last_line_even_when_nothing_new_is_pending() -> None:
    out, clock = Recorder(), FakeClock()
    relay = ProgressRelay(out, SlowestDriver(["load", "prom"]), 0.25, clock=clock)
    relay.driver_progress("load", {"progress": 0, "message": "loading"})
    relay.driver_progress("prom", {"progress": 10, "message": "reading"})  # pending, same
    clock.now += 0.1
    relay.repeat_last("load")
    assert [line["message"] for line in out.lines] == ["load: loading"] * 2


@pytest.mark.unit
def test_interval_0_relays_every_line_even_a_repeat() -> None:
    out = Recorder()
    relay = ProgressRelay(out, SlowestDriver(["load", "prom"]), 0.0, clock=FakeClock())
    relay.driver_progress("load", {"progress": 0, "message": "loading"})
    relay.driver_progress("prom", {"progress": 10, "message": "reading"})
    assert [line["message"] for line in out.lines] == ["load: loading"] * 2


@pytest.mark.unit
def test_a_repeat_is_judged_against_the_line_servo_was_given_last_whoever_wrote_it() -> None:
    out, clock = Recorder(), FakeClock()
    relay = ProgressRelay(out, SlowestDriver(["load", "prom"]), 0.25, clock=clock)
    relay.driver_progress("load", {"progress": 0, "message": "loading"})
    out.json_line({"progress": 0, "message": "measuring: 2 drivers starting"})  # a keep-alive
    clock.now += 0.3
    relay.driver_progress("prom", {"progress": 5, "message": "reading"})  # "load: loading"
    assert [line["message"] for line in out.lines] == [
        "load: loading", "measuring: 2 drivers starting", "load: loading"]


@pytest.mark.unit
def test_of_drivers_equally_far_behind_the_one_that_reported_is_named() -> None:
    """Its line is then news to servo, not a repeat naming another driver (a load
    generator and a metrics reader both at 0 % each get their own line)."""
    fold = SlowestDriver(["load", "prom", "slow"])
    assert fold.progress("load", 0, "load: warming up") == (0.0, "load: warming up")
    assert fold.progress("prom", 0, "prom: waiting") == (0.0, "prom: waiting")
    assert fold.progress("load", 30, "load: loading") == (0, "prom: waiting")  # the first
    shares = WeightedShares({"a": 1.0, "b": 1.0})
    shares.start("a")
    shares.start("b")
    assert shares.progress("b", 0, "b: begun") == (0.0, "b: begun")
    assert shares.progress("a", 0, "a: begun") == (0.0, "a: begun")
    assert shares.progress("a", 10, "a: ten") == (5.0, "b: begun")


@pytest.mark.unit
def test_drivers_running_together_add_up_their_shares_and_the_slowest_is_named() -> None:
    """An adjust group (#18): the shares of the running drivers add up; the line names
    the one furthest behind (one that has not reported yet counts 0)."""
    shares = WeightedShares({"a": 1.0, "b": 1.0, "c": 2.0})
    shares.start("a")
    shares.start("b")
    assert shares.progress("a", 40, "a: forty") == (10.0, "b: starting")
    assert shares.progress("b", 80, "b: eighty") == (30.0, "a: forty")
    # a ended while b still runs: the line names b, the slowest running (#18.4)
    assert shares.done("a", "a: done") == (45.0, "b: eighty")  # (100 + 80) / 4
    assert shares.progress("b", 90, "b: ninety") == (47.5, "b: ninety")  # alone: its own
    assert shares.done("b", "b: done") == (50.0, "b: done")
    shares.start("c")
    assert shares.progress("c", 50, "c: half") == (75.0, "c: half")
    assert shares.done("c", "c: done") == (100.0, "c: done")
