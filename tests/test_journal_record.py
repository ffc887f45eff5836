"""A run's record (journal/record.py) and how people see it (journal/show.py): built from
the facts a run kept, versioned, bounded, cut to fit; shown as a block, a line, in full."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import __version__
from aggregator.journal.record import SCHEMA_VERSION, build, encode, outcome, rfc3339
from aggregator.journal.show import block, full, history
from aggregator.limits import JOURNAL_FILES, MIN_JOURNAL_MAX_BYTES
from aggregator.process.resources import ResourceUse
from aggregator.supervision.facts import CallFacts, RollbackStep, RunFacts, new_run_id
from aggregator.supervision.spec import CallEnd

pytestmark = pytest.mark.unit

STARTED = 1796534232.25  # 2026-12-06T05:17:12.25Z


def call(driver: str = "10web", name: str = "adjust", *, end: CallEnd = CallEnd.EXITED,
         code: int | None = 0, status: str = "ok", reason: str = "success", detail: str = "",
         stderr: str = "", start: float = 0.1, **more: Any) -> CallFacts:
    return CallFacts(driver=driver, call=name, argv=(f"/servo/adjust.d/{driver}", "app"),
                     start=start, duration=0.25, end=end, exit_code=code, status=status,
                     reason=reason, detail=detail, stderr_tail=stderr,
                     stderr_bytes=len(stderr), **more)


def finished(calls: list[CallFacts], *, result: dict[str, Any] | None = None,
             code: int = 0, final: str | None = None, **more: Any) -> RunFacts:
    result = {"status": "ok", "reason": "success"} if result is None and code == 0 else result
    facts = RunFacts(front="adjust", args=("app",), run_id="20261206T051712.250000Z-abcdef",
                     started=STARTED, command="adjust", app="app", calls=calls, **more)
    facts.exit_code, facts.duration, facts.result = code, 1.5, result
    facts.final = final if final is not None else json.dumps(result)
    return facts


def test_a_run_id_sorts_as_runs_start_and_two_are_never_the_same() -> None:
    first, same_instant, later = new_run_id(STARTED), new_run_id(STARTED), new_run_id(STARTED + 1)
    assert re.fullmatch(r"20261206T051712\.250000Z-[0-9a-f]{6}", first)
    assert first != same_instant
    assert sorted([later, first]) == [first, later]


def test_rfc3339_is_utc_to_the_microsecond() -> None:
    assert rfc3339(STARTED) == "2026-12-06T05:17:12.250000Z"


def test_a_record_holds_the_run_and_each_call() -> None:
    failed = call("20db", end=CallEnd.TIMEOUT, code=-9, status="failed", reason="timeout",
                  detail="sent nothing for 2.0 s", stderr="connecting\n", start=0.5,
                  progress_count=2, first_progress='{"progress": 1}',
                  last_progress='{"progress": 2}', result=None,
                  resource_use=ResourceUse(0.5, 0.125, 1 << 20))
    facts = finished([call(), failed], code=1,
                     result={"status": "failed", "reason": "timeout",
                             "message": "20db: failed: adjust: sent nothing\nmore",
                             "failed_drivers": ["20db"]},
                     io_timeout="3", request=b'{"application": {}}', parent_run="outer-1",
                     signals=[("SIGUSR1", 0.75)], servo_gone="servo's end of stdout was closed",
                     rollback=[RollbackStep("10web", "restored", {"web.cpu": 1})],
                     notes=["error (timeout): 20db: failed"])
    record = build(facts)
    assert json.loads(json.dumps(record)) == record  # plain JSON all through
    assert {k: record[k] for k in ("schema", "run", "parent_run", "front_end", "command",
                                   "args", "app", "started", "duration", "version",
                                   "io_timeout", "status", "reason", "message", "exit_code",
                                   "signals", "servo_gone", "rollback", "notes", "cut")} == {
        "schema": SCHEMA_VERSION, "run": "20261206T051712.250000Z-abcdef",
        "parent_run": "outer-1", "front_end": "adjust", "command": "adjust",
        "args": ["app"], "app": "app", "started": "2026-12-06T05:17:12.250000Z",
        "duration": 1.5, "version": __version__, "io_timeout": "3", "status": "failed",
        "reason": "timeout", "message": "20db: failed: adjust: sent nothing\nmore",
        "exit_code": 1, "signals": [{"signal": "SIGUSR1", "at": 0.75}],
        "servo_gone": "servo's end of stdout was closed",
        "rollback": [{"driver": "10web", "outcome": "restored", "settings": {"web.cpu": 1},
                      "detail": ""}],
        "notes": ["error (timeout): 20db: failed"], "cut": False}
    assert record["request"]["bytes"] == 19
    assert record["request"]["digest"].startswith("sha256:")
    assert record["request"]["text"] == '{"application": {}}'
    assert record["calls"][1] == {
        "driver": "20db", "call": "adjust", "argv": ["/servo/adjust.d/20db", "app"],
        "start": 0.5, "duration": 0.25, "end": "timeout", "exit_code": -9,
        "signal": "SIGKILL", "status": "failed", "reason": "timeout",
        "detail": "sent nothing for 2.0 s",
        "progress": {"count": 2, "first": '{"progress": 1}', "last": '{"progress": 2}'},
        "result": None, "result_bytes": 0, "stderr": {"bytes": 11, "tail": "connecting\n"},
        "resources": {"source": "rusage", "user_cpu": 0.5, "system_cpu": 0.125,
                      "peak_memory": 1 << 20}}


def test_a_run_given_no_app_id_records_it_empty_as_the_schema_says() -> None:
    """`./adjust --bogus`, `--version`: no app id, and "app" is "" (never null)."""
    assert build(RunFacts.begin("adjust", ["--bogus"], {}))["app"] == ""


def test_nothing_from_the_environment_goes_in_but_servo_s_timeout_and_an_outer_run() -> None:
    facts = RunFacts.begin("adjust", ["app"], {"OPTUNE_IO_TIMEOUT": "5",
                                               "API_TOKEN": "s3cr3t", "HOME": "/root",
                                               "SERVO_AGG_RUN_ID": "outer-run"})
    facts.exit_code, facts.duration = 0, 0.1
    line = encode(facts, 1 << 20).decode()
    assert '"io_timeout": "5"' in line
    assert '"parent_run": "outer-run"' in line  # a servo-agg run as another's driver
    assert facts.run_id != "outer-run"
    assert "s3cr3t" not in line and "/root" not in line


@pytest.mark.parametrize(("result", "code", "expected"), [
    ({"status": "ok", "reason": "success"}, 0, ("ok", "success", None)),
    ({"status": "rejected", "reason": "out-of-range", "message": "no"}, 1,
     ("rejected", "out-of-range", "no")),
    ({"status": "aborted", "reason": "terminated", "message": "m"}, 143,
     ("aborted", "terminated", "m")),
    ({"application": {"components": {}}}, 0, ("ok", "success", None)),  # --query
    (None, 0, ("ok", "success", None)),  # a text line: --version, --check
    (None, 1, ("failed", "exit code 1", None)),
])
def test_the_outcome_is_the_final_line_s_or_else_the_exit_code(
        result: dict[str, Any] | None, code: int, expected: tuple[Any, ...]) -> None:
    facts = finished([], code=code, final="text")
    facts.result = result
    assert outcome(facts) == expected


def test_a_record_too_large_for_the_bound_is_cut_until_it_fits_and_says_so() -> None:
    noisy = [call(f"{i:02d}drv", stderr="e" * 4096, result="r" * 2048, result_bytes=9000,
                  first_progress="p" * 512, last_progress="q" * 512) for i in range(8)]
    facts = finished(noisy, request=b"x" * 4096)
    whole = encode(facts, 1 << 20)
    assert not json.loads(whole)["cut"]
    cut = encode(facts, 16 * 1024)
    assert len(whole) > 16 * 1024 >= len(cut)
    record = json.loads(cut)
    assert record["cut"] and len(record["calls"]) == 8
    tail = record["calls"][0]["stderr"]["tail"]
    assert 0 < len(tail) < 4096 and tail.startswith("...")  # the end of stderr is kept
    assert record["calls"][0]["stderr"]["bytes"] == 4096  # sizes stay true


def test_thousands_of_calls_leave_some_out_and_say_how_many() -> None:
    facts = finished([call(f"d{i}") for i in range(2000)])
    record = json.loads(encode(facts, 64 * 1024))
    assert record["cut"]
    assert len(record["calls"]) + record["calls_omitted"] == 2000


SMALLEST_BOUND = MIN_JOURNAL_MAX_BYTES // JOURNAL_FILES  # 16 KiB: one file's, at the least


def test_what_a_driver_or_the_command_line_controls_is_cut_too_and_history_is_kept() -> None:
    """A 1 MB value a rollback restores, a 40 KB OPTUNE_IO_TIMEOUT, a huge app id and
    argument list: none of these was cut, and the record came out 1 MB (review 1.4)."""
    huge = "v" * 1_000_000
    facts = finished([call(), call("20db", status="failed", reason="r" * 50_000)], code=1,
                     result={"status": "failed", "reason": "x" * 100_000},
                     io_timeout="9" * 40_000,
                     rollback=[RollbackStep("10web", "restored",
                                            {"web.mode": huge, "web.list": [huge],
                                             **{f"web.s{n}": n for n in range(1000)}})])
    facts.app, facts.args = "p" * 60_000, ("a" * 50_000, *["--x"] * 5000)
    line = encode(facts, SMALLEST_BOUND)
    assert len(line) <= SMALLEST_BOUND
    record = json.loads(line)
    assert len(record["calls"]) == 2 and "stub" not in record
    [step] = record["rollback"]
    assert step["driver"] == "10web" and step["outcome"] == "restored"
    assert step["settings"]["web.mode"].startswith("vvv")
    assert step["settings"]["web.mode"].endswith("...")
    assert step["settings"]["web.list"].startswith('["vvv')  # its JSON, cut, as text
    assert len(step["settings"]) + step["settings_omitted"] == 1002
    assert record["io_timeout"].endswith("...") and record["app"].startswith("ppp")


def test_a_record_that_fits_in_no_other_way_is_a_stub_that_says_so() -> None:
    facts = finished([call(f"d{i}") for i in range(10)], notes=["n" * 500] * 32,
                     rollback=[RollbackStep("10web", "restored", {"web.cpu": 1})])
    record = json.loads(encode(facts, 512))
    assert record == {
        "schema": SCHEMA_VERSION, "run": facts.run_id, "front_end": "adjust",
        "command": "adjust", "started": "2026-12-06T05:17:12.250000Z", "duration": 1.5,
        "version": __version__, "status": "ok", "reason": "success", "exit_code": 0,
        "cut": True, "stub": True, "calls_omitted": 10, "rollback_omitted": 1}
    with pytest.raises(ValueError, match="cannot be cut to 100 bytes"):
        encode(facts, 100)
    assert block(record)[-1] == ("  (this record was cut to fit the journal's bound; only "
                                 "the run and its outcome were kept; calls left out: 10; "
                                 "rollback steps left out: 1)")


#: Text of any size, any character (lone surrogates too: a file name that is not UTF-8),
#: made cheaply: a few characters repeated up to 20,000 times (more than any bound).
TEXT = st.one_of(st.text(st.characters(exclude_categories=()), max_size=20),
                 st.builds(lambda text, times: text * times,
                           st.text(st.characters(exclude_categories=()), min_size=1,
                                   max_size=3), st.integers(0, 20_000)))
#: A setting's value: a huge string, or any JSON (its text cut when too long).
JSON_VALUE = TEXT | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=50) | st.dictionaries(st.text(), inner,
                                                                 max_size=5),
    max_leaves=100)


def _many(item: st.SearchStrategy[Any], most: int) -> st.SearchStrategy[list[Any]]:
    """A list of up to `most` items: a few drawn, repeated."""
    return st.builds(lambda items, times: items * times, st.lists(item, max_size=3),
                     st.integers(0, most))


CALLS = st.builds(
    CallFacts, driver=TEXT, call=TEXT, argv=st.lists(TEXT, max_size=5).map(tuple),
    start=st.floats(0, 1e6), duration=st.floats(0, 1e6), end=st.sampled_from(CallEnd),
    exit_code=st.none() | st.integers(-64, 255), status=TEXT, reason=TEXT, detail=TEXT,
    progress_count=st.integers(0, 10**9), first_progress=st.none() | TEXT,
    last_progress=st.none() | TEXT, result=st.none() | TEXT, result_bytes=st.integers(0),
    stderr_tail=TEXT, stderr_bytes=st.integers(0),
    resource_use=st.none() | st.builds(ResourceUse, st.floats(0, 1e9), st.floats(0, 1e9),
                                       st.integers(0, 2**63)))
STEPS = st.builds(RollbackStep, driver=TEXT, outcome=TEXT,
                  settings=_many(st.tuples(TEXT, JSON_VALUE), 100).map(dict), detail=TEXT)


@st.composite
def runs(draw: st.DrawFn) -> RunFacts:
    facts = RunFacts(
        front=draw(st.sampled_from(["adjust", "measure"])),
        args=tuple(draw(_many(TEXT, 500))), parent_run=draw(st.none() | TEXT),
        io_timeout=draw(st.none() | TEXT), started=draw(st.floats(0, 4e9)),
        command=draw(st.none() | st.sampled_from(["adjust", "measure", "check"])),
        app=draw(TEXT), request=draw(st.none() | st.binary(max_size=10_000)),
        calls=draw(_many(CALLS, 60)), signals=draw(_many(st.tuples(TEXT, st.floats(0, 1e6)),
                                                           50)),
        rollback=draw(_many(STEPS, 50)), servo_gone=draw(st.none() | TEXT),
        notes=draw(_many(TEXT, 50)))
    facts.final = draw(st.none() | TEXT)
    facts.result = draw(st.none() | st.dictionaries(st.sampled_from(
        ["status", "reason", "message"]), TEXT))
    facts.exit_code = draw(st.none() | st.integers(-64, 255))
    facts.duration = draw(st.none() | st.floats(0, 1e6))
    return facts


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(facts=runs(), limit=st.integers(SMALLEST_BOUND, 1 << 20))
def test_any_record_fits_its_bound(facts: RunFacts, limit: int) -> None:
    line = encode(facts, limit)
    assert len(line) <= limit and line.endswith(b"\n") and line.count(b"\n") == 1
    record = json.loads(line)
    assert record["run"] == facts.run_id and record["exit_code"] == facts.exit_code
    assert "stub" not in record  # the smallest bound holds more than the floors
    whole = encode(facts, 1 << 40)
    assert record["cut"] is (whole != line)


# -- in words ---------------------------------------------------------------------------

def failed_record() -> dict[str, Any]:
    failed = call("20db", end=CallEnd.TIMEOUT, code=-15, status="failed", reason="timeout",
                  detail="sent nothing for 2.0 s", stderr="connecting\nstill trying\n")
    return build(finished([call(), failed], code=1, result={
        "status": "failed", "reason": "timeout",
        "message": "20db: failed: adjust: sent nothing for 2.0 s\n--- 20db stderr ---\n..."},
        signals=[("SIGUSR1", 0.75)]))


def test_a_block_says_when_what_how_it_went_each_call_and_the_failed_one_s_stderr() -> None:
    assert block(failed_record()) == [
        "2026-12-06T05:17:12Z  ./adjust app  failed (timeout), exit 1, 1.500 s  "
        "[run 20261206T051712.250000Z-abcdef]",
        "  20db: failed: adjust: sent nothing for 2.0 s",
        "  10web  adjust    0.250 s  exit 0",
        "  20db   adjust    0.250 s  timeout (died of SIGTERM)  "
        "failed/timeout: sent nothing for 2.0 s",
        "  signals: SIGUSR1 at 0.750 s",
        "  --- 20db adjust: stderr ---",
        "  connecting",
        "  still trying",
    ]


def test_a_good_run_is_one_line_and_its_calls() -> None:
    lines = block(build(finished([call(stderr="chatty\n")])))
    assert lines[0].startswith("2026-12-06T05:17:12Z  ./adjust app  ok, exit 0, 1.500 s")
    assert lines[1:] == ["  10web  adjust    0.250 s  exit 0"]  # its stderr: in --show


def test_history_is_one_aligned_line_per_run() -> None:
    lines = history([build(finished([call()])), failed_record()])
    assert len(lines) == 2
    assert "ok" in lines[0] and lines[0].endswith("20261206T051712.250000Z-abcdef")
    assert "failed (timeout)" in lines[1] and "20db" in lines[1]
    assert lines[0].index("./adjust") == lines[1].index("./adjust")


def test_show_has_every_call_in_full() -> None:
    text = "\n".join(full(failed_record()))
    for expected in ("run         20261206T051712.250000Z-abcdef", "call 2      20db adjust",
                     "  argv      /servo/adjust.d/20db app", "connecting", "SIGUSR1 at"):
        assert expected in text


def test_what_a_driver_wrote_cannot_drive_the_terminal() -> None:
    evil = call("20db", status="failed", reason="boom", stderr="\x1b[2J\x1b]0;pwned\x07\n")
    shown = "\n".join(block(build(finished([evil], code=1, final="x"))))
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b[2J" in shown


def test_a_record_from_elsewhere_with_missing_or_odd_fields_is_still_shown() -> None:
    odd: dict[str, Any] = {"schema": 99, "run": "x", "calls": [{"driver": 5}, "junk"],
                           "duration": "long", "signals": "none"}
    assert block(odd)[0].startswith("?  ./?  ?, exit ?, ? s  [run x]")
    assert full(odd)
    assert history([odd])
