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
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.protocol.progress import progress_value
from aggregator.supervision.output import Output
from aggregator.supervision.progress_relay import (
    ProgressRelay,
    SlowestDriver,
    WeightedShares,
    coalesce_window,
)


class Recorder(Output):
    """An Output that keeps the stdout lines it would have written."""

    def __init__(self) -> None:
        super().__init__(stdout_fd=-1, stderr=io.StringIO())
        self.lines: list[dict[str, Any]] = []

    def write_line(self, text: str, *, progress: bool = False) -> None:
        assert progress, text  # the relay's lines may be superseded while servo is busy
        self.lines.append(json.loads(text))

    @property
    def percents(self) -> list[int]:
        return [line["progress"] for line in self.lines]

    @property
    def notes(self) -> str:
        stream = self._stderr
        assert isinstance(stream, io.StringIO)
        return stream.getvalue()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def relay(weights: dict[str, float], window: float = 1.0,
          clock: Any = None) -> tuple[ProgressRelay, Recorder, FakeClock]:
    out = Recorder()
    fake = FakeClock()
    return ProgressRelay(out, WeightedShares(weights), window, clock or fake), out, fake


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
    assert out.percents == [0, 50]  # a's share is half, whatever it claims
    assert r.held_back == 1  # the inf line was the same line again: coalesced


@pytest.mark.unit
@pytest.mark.parametrize("junk", [None, "fast", [50], {"p": 1}, True, False, math.nan, "nan"])
def test_a_progress_that_is_not_a_number_is_ignored_with_one_note(junk: Any) -> None:
    r, out, _ = relay({"a": 1.0, "b": 1.0})
    r.driver_progress("a", {"progress": junk, "message": "m"})
    r.driver_progress("a", {"progress": junk, "message": "m"})
    r.driver_progress("b", {"progress": junk})
    assert out.percents == [0, 0]  # signs of life at the current percentage, coalesced
    notes = out.notes.splitlines()
    assert len(notes) == 2  # once per driver, however often it happens
    assert notes[0].startswith("servo-agg: a: ignored a progress value that is not a number")
    assert notes[1].startswith("servo-agg: b: ")
    r.driver_progress("a", {"progress": 40})
    assert out.percents == [0, 0, 20]  # good values afterwards still count


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
def test_driver_done_is_never_coalesced() -> None:
    r, out, _ = relay({"a": 1.0})
    r.driver_progress("a", {"progress": 100, "message": "done"})
    r.driver_done("a")  # the very same line, within the window: sent all the same
    assert out.lines == [{"progress": 100, "message": "a: done"}] * 2


@pytest.mark.unit
def test_hold_keeps_the_current_percentage() -> None:
    r, out, _ = relay({"a": 1.0, "b": 1.0})
    r.driver_done("a")
    r.hold("rollback: a")
    assert out.lines[-1] == {"progress": 50, "message": "rollback: a"}


@pytest.mark.unit
def test_identical_lines_within_the_window_are_coalesced() -> None:
    r, out, clock = relay({"a": 1.0}, window=1.0)
    for _ in range(50):
        r.driver_progress("a", {"progress": 10, "message": "waiting"})
        clock.now += 0.01
    assert out.percents == [10]
    assert r.held_back == 49
    r.driver_progress("a", {"progress": 11, "message": "waiting"})  # a change passes at once
    assert out.percents == [10, 11]
    clock.now += 1.5
    r.driver_progress("a", {"progress": 11, "message": "waiting"})  # window over: sent
    assert out.percents == [10, 11, 11]
    assert r.sent == 3


@pytest.mark.unit
def test_same_percent_with_a_new_message_is_not_coalesced() -> None:
    r, out, _ = relay({"a": 1.0})
    r.driver_progress("a", {"progress": 10, "message": "one"})
    r.driver_progress("a", {"progress": 10, "message": "two"})
    assert len(out.lines) == 2


@pytest.mark.unit
@pytest.mark.parametrize(("limit", "window"), [(None, 1.0), (10.0, 1.0), (2.0, 1.0),
                                                (1.0, 0.5), (0.2, 0.1)])
def test_coalesce_window_is_a_second_at_most_half_the_line_limit(
        limit: float | None, window: float) -> None:
    assert coalesce_window(limit) == pytest.approx(window)


@pytest.mark.unit
@pytest.mark.parametrize(("raw", "value"), [
    (0, 0.0), (100, 100.0), (55.5, 55.5), ("7", 7.0), (" 8 ", 8.0), (-1, 0.0), (101, 100.0),
    ("inf", 100.0), (-math.inf, 0.0), ("x", None), (None, None), (True, None), ([], None),
    (math.nan, None),
])
def test_progress_value(raw: Any, value: float | None) -> None:
    assert progress_value(raw) == value


# -- the flusher, on trio's mock clock ----------------------------------------------------

@pytest.mark.supervision
async def test_flusher_sends_the_last_held_line_when_the_window_ends(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, WeightedShares({"a": 1.0}), 1.0, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        start = trio.current_time()
        r.driver_progress("a", {"progress": 5, "message": "tick"})
        for _ in range(20):
            await trio.sleep(0.02)
            r.driver_progress("a", {"progress": 5, "message": "tick"})
        assert len(out.lines) == 1
        await trio.sleep(0.7)  # past the window from the first line
        assert len(out.lines) == 2, "the trailing line was sent when the window ended"
        assert out.lines[1] == {"progress": 5, "message": "a: tick"}
        await trio.sleep(5)
        assert len(out.lines) == 2, "nothing held, nothing more sent"
        assert r.held_back == 20
        assert trio.current_time() - start == pytest.approx(6.1)
        nursery.cancel_scope.cancel()


@pytest.mark.supervision
async def test_flusher_paces_a_flood_to_one_line_per_window(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, WeightedShares({"a": 1.0}), 1.0, clock=trio.current_time)
    sent_at: list[float] = []
    real_write = out.write_line

    def stamped(text: str, *, progress: bool = False) -> None:
        sent_at.append(trio.current_time())
        real_write(text, progress=progress)

    out.write_line = stamped  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        start = trio.current_time()
        for _ in range(1000):  # 10 s of a line every 10 ms
            r.driver_progress("a", {"progress": 50, "message": "busy"})
            await trio.sleep(0.01)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert 9 <= len(out.lines) <= 12
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert all(g >= 1.0 - 1e-6 for g in gaps), gaps  # never more than one per window
    assert sent_at[-1] - start >= 9.9  # the heartbeat kept coming to the end


@pytest.mark.supervision
async def test_a_held_line_superseded_by_a_change_is_not_sent_late(
        autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, WeightedShares({"a": 1.0}), 1.0, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        r.driver_progress("a", {"progress": 5})
        await trio.sleep(0.1)
        r.driver_progress("a", {"progress": 5})  # held
        await trio.sleep(0.1)
        r.driver_progress("a", {"progress": 6})  # newer: sent now, the held one is moot
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert out.percents == [5, 6]


@pytest.mark.supervision
async def test_driver_done_clears_a_held_line(autojump_clock: trio.testing.MockClock) -> None:
    out = Recorder()
    r = ProgressRelay(out, WeightedShares({"a": 1.0}), 1.0, clock=trio.current_time)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(r.run_flusher)
        r.driver_progress("a", {"progress": 5})
        r.driver_progress("a", {"progress": 5})
        r.driver_done("a")
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert out.lines == [{"progress": 5, "message": "a"}, {"progress": 100, "message": "a: done"}]


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
@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT, max_size=40),
       st.dictionaries(st.sampled_from(DRIVERS), st.floats(0.01, 100), min_size=1))
def test_output_never_decreases_and_stays_within_0_to_100(
        events: list[tuple[str, str, Any]], weights: dict[str, float]) -> None:
    r, out, clock = relay(weights)
    for kind, driver, value in events:
        if kind == "progress":
            r.driver_progress(driver, {"progress": value, "message": "m"})
        elif kind == "done":
            r.driver_done(driver)
        elif kind == "hold":
            r.hold("held")
        else:
            clock.now += value
    percents = out.percents
    assert all(type(p) is int and 0 <= p <= 100 for p in percents)
    assert percents == sorted(percents)


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=2), st.floats(0.01, 100),
                       min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_all_drivers_done_is_100_percent(weights: dict[str, float], rnd: Any) -> None:
    r, out, _ = relay(weights)
    order = list(weights)
    rnd.shuffle(order)
    for name in order:
        r.driver_progress(name, {"progress": rnd.randint(0, 100)})
        r.driver_done(name)
    assert out.percents[-1] == 100
    done_lines = [line for line in out.lines if line["message"].endswith(": done")]
    assert len(done_lines) == len(weights)


class RawRecorder(Output):
    def __init__(self) -> None:
        super().__init__(stdout_fd=-1, stderr=io.StringIO())
        self.raw: list[str] = []

    def write_line(self, text: str, *, progress: bool = False) -> None:
        assert progress, text
        self.raw.append(text)


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
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


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
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
            slowest = min(seen, key=seen.__getitem__)
            assert label.startswith(slowest)
        assert overall == min(seen.values())
        shown = max(shown, int(overall))
    assert 0 <= shown <= 100
