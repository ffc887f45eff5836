"""Judging each driver call and folding the failures into servo's one result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aggregator.limits import MAX_MESSAGE_BYTES
from aggregator.protocol.result import DriverFailure, fold, judge
from aggregator.protocol.vocabulary import Call, Reason
from aggregator.root.discovery import Driver
from aggregator.supervision.spec import CallOutcome, CallSpec, Problem
from aggregator.supervision.stderr import StderrCapture

pytestmark = pytest.mark.unit


def outcome(result: dict[str, Any] | None, exit_code: int | None = 0, *,
            call: str = "adjust", problem: Problem | None = None, stderr: bytes = b"",
            name: str = "10web") -> CallOutcome:
    capture = StderrCapture()
    capture.feed(stderr)
    spec = CallSpec(Driver(name, Path("/nowhere") / name), Call(call), ("app",))
    return CallOutcome(spec, result=result, exit_code=exit_code, problem=problem,
                       stderr=capture)


OK = {"status": "ok", "reason": "success"}


def test_ok_adjust_is_no_failure() -> None:
    assert judge(outcome(OK), "all") is None


@pytest.mark.parametrize("call", ["query", "info", "describe"])
def test_query_describe_and_info_need_no_status(call: str) -> None:
    assert judge(outcome({"application": {"components": {}}}, call=call), "all") is None
    assert judge(outcome({"version": "1", "has_cancel": False}, call=call), "all") is None
    assert judge(outcome({"metrics": {"x": {"unit": "u"}}}, call=call), "all") is None


def test_exit_non_zero_after_ok_is_failed() -> None:
    f = judge(outcome(OK, 3), "all")
    assert f is not None
    assert (f.status, f.reason) == ("failed", "driver-failed")
    assert f.message == "adjust: exited with code 3 after printing status ok"


def test_exit_non_zero_keeps_the_drivers_own_status_and_reason() -> None:
    f = judge(outcome({"status": "rejected", "reason": "policy", "message": "too big"}, 1),
              "all")
    assert f is not None
    assert (f.status, f.reason, f.message) == ("rejected", "policy",
                                               "adjust: too big (exit code 1)")


def test_exit_non_zero_without_a_result_is_failed() -> None:
    f = judge(outcome(None, 2), "all")
    assert f is not None
    assert (f.status, f.reason, f.message) == ("failed", "driver-failed",
                                               "adjust: exited with code 2")


def test_exit_non_zero_with_progress_only_result_is_failed_whatever_it_printed() -> None:
    f = judge(outcome({"status": "failed"}, 1), "all")
    assert f is not None
    assert (f.status, f.reason) == ("failed", "driver-failed")


def test_exit_zero_without_a_result_is_no_result() -> None:
    f = judge(outcome(None, 0), "all")
    assert f is not None
    assert (f.status, f.reason) == ("failed", "no-result")
    assert "without printing a result line" in f.message


@pytest.mark.parametrize(("call", "result"), [
    ("adjust", {"reason": "success"}),
    ("rollback", {"reason": "success"}),
    # servo fails a measurement without status ok, metrics or not (it would hide an
    # {"error": ...} a driver printed before exiting 0)
    ("measure", {"metrics": {"x": {"value": 1}}}),
    ("measure", {"message": "connection refused"}),
])
def test_a_result_without_status_is_no_result(call: str, result: dict[str, Any]) -> None:
    f = judge(outcome(result, 0, call=call), "all")
    assert f is not None
    assert (f.status, f.reason) == ("failed", "no-result")
    assert "has no status" in f.message


def test_exit_zero_with_a_failure_status_is_that_failure() -> None:
    f = judge(outcome({"status": "aborted", "reason": "busy", "message": "try later"}), "all")
    assert f is not None
    assert (f.status, f.reason, f.message) == ("aborted", "busy", "adjust: try later")
    f = judge(outcome({"status": "failed"}, call="query"), "all")
    assert f is not None
    assert (f.status, f.reason, f.message) == ("failed", "driver-failed",
                                               "query: status failed")


def test_a_status_that_is_not_a_string_is_failed() -> None:
    f = judge(outcome({"status": 5}), "all")
    assert f is not None
    assert f.status == "failed"


@pytest.mark.parametrize(("code", "named"), [(-9, "SIGKILL"), (-15, "SIGTERM"),
                                             (-11, "SIGSEGV"), (-200, "signal 200")])
def test_killed_by_a_signal_is_named(code: int, named: str) -> None:
    f = judge(outcome(OK, code), "all")
    assert f is not None
    assert (f.status, f.reason) == ("failed", "killed-by-signal")
    assert f.message.startswith(f"adjust: killed by {named}")


def test_killed_by_a_signal_mentions_what_it_said() -> None:
    f = judge(outcome({"status": "failed", "message": "oom"}, -9), "all")
    assert f is not None
    assert f.message == "adjust: killed by SIGKILL (it said: oom)"


@pytest.mark.parametrize(("reason", "status"), [
    ("timeout", "failed"), ("bad-output", "failed"), ("spawn-failed", "failed"),
    ("canceled", "canceled"), ("terminated", "aborted")])
def test_aggregator_problems_win_over_the_exit_code(reason: str, status: str) -> None:
    f = judge(outcome(None, -9, problem=Problem(Reason(reason), "sent nothing for 2.0 s")), "all")
    assert f is not None
    assert (f.status, f.reason, f.message) == (status, reason,
                                               "adjust: sent nothing for 2.0 s")


def test_problem_detail_includes_what_the_driver_said() -> None:
    f = judge(outcome({"status": "canceled", "reason": "stop"}, 0,
                      problem=Problem(Reason.CANCELED, "did not finish")), "all")
    assert f is not None
    assert f.message == "adjust: did not finish (it said: stop)"


def test_failure_names_driver_and_call() -> None:
    f = judge(outcome(None, 1, call="query", name="02cache"), "all")
    assert f is not None
    assert (f.driver, f.call) == ("02cache", "query")
    assert f.line() == "02cache: failed: query: exited with code 1"


STDERR = b"first line\nsecond line\nthird line\n"


@pytest.mark.parametrize(("mode", "kept"), [
    ("all", "first line\nsecond line\nthird line"),
    ("minimal", "first line\nsecond line"),
    ("none", ""),
])
def test_stderr_modes(mode: Any, kept: str) -> None:
    f = judge(outcome(None, 1, stderr=STDERR), mode)
    assert f is not None
    assert f.stderr == kept


# -- fold ---------------------------------------------------------------------------------

def failure(driver: str, status: str = "failed", reason: str = "driver-failed",
            message: str = "adjust: boom", stderr: str = "") -> DriverFailure:
    return DriverFailure(driver, "adjust", status, reason, message, stderr)


def test_no_failures_is_ok_success() -> None:
    assert fold([]) == {"status": "ok", "reason": "success"}


def test_the_first_failures_status_is_the_status() -> None:
    result = fold([failure("a", "aborted"), failure("b", "failed")])
    assert result["status"] == "aborted"


def test_rejected_wins_wherever_it_is() -> None:
    result = fold([failure("a", "failed"), failure("b", "canceled"), failure("c", "rejected")])
    assert result["status"] == "rejected"


def test_reasons_are_joined_once_each_in_order() -> None:
    result = fold([failure("a", reason="timeout"), failure("b", reason="driver-failed"),
                   failure("c", reason="timeout")])
    assert result["reason"] == "timeout; driver-failed"


def test_message_has_one_line_per_failed_driver() -> None:
    result = fold([failure("01web", "failed", message="adjust: exited with code 2"),
                   failure("03db", "rejected", message="adjust: over budget")])
    assert result["message"] == ("01web: failed: adjust: exited with code 2\n"
                                 "03db: rejected: adjust: over budget")
    assert result["failed_drivers"] == ["01web", "03db"]


def test_a_multi_line_driver_message_stays_on_its_drivers_line() -> None:
    result = fold([failure("a", message="adjust: scale failed\n  Traceback:\n\nboom"),
                   failure("b")])
    lines = result["message"].split("\n")
    assert lines == ["a: failed: adjust: scale failed / Traceback: / boom",
                     "b: failed: adjust: boom"]


def test_extra_lines_then_stderr_follow_the_driver_lines() -> None:
    result = fold([failure("a", stderr="oops\ntrace"), failure("b")],
                  ["rollback of x: ok"])
    assert result["message"] == ("a: failed: adjust: boom\nb: failed: adjust: boom\n"
                                 "rollback of x: ok\n--- a stderr ---\noops\ntrace")


def test_message_is_cut_at_2_mib() -> None:
    big = "é" * MAX_MESSAGE_BYTES  # two bytes each: the cut must not split a character
    result = fold([failure("a", stderr=big), failure("b", message="adjust: " + "x" * 100)])
    encoded = result["message"].encode("utf-8")
    assert len(encoded) <= MAX_MESSAGE_BYTES
    assert len(encoded) > MAX_MESSAGE_BYTES - 100
    assert result["message"].startswith("a: failed: adjust: boom\nb: failed: adjust: xxx")
    assert result["message"].endswith("[... cut at 2 MiB ...]")


def test_a_short_message_is_not_cut() -> None:
    assert "cut" not in fold([failure("a", stderr="x" * 1000)])["message"]


# -- statuses servo does not know -------------------------------------------------------------

@pytest.mark.parametrize("status", ["success", "", "OK", "nodata", 5, None, ["ok"]])
def test_a_status_outside_servos_vocabulary_is_failed_and_named(status: Any) -> None:
    result = {"status": status, "reason": "done", "message": "all good"}
    if status is None:
        result = {"status": None}  # JSON null: no status at all, as before
    f = judge(outcome(result), "all")
    assert f is not None
    assert f.status == "failed"
    if status is not None:
        assert f.reason == "bad-status"
        assert f"status {status!r} is not one of servo's (ok, failed, rejected, aborted, " \
               "canceled)" in f.message
        assert "all good" in f.message
    assert fold([f])["status"] == "failed"


def test_an_unknown_status_with_a_non_zero_exit_is_named_too() -> None:
    f = judge(outcome({"status": "success", "reason": "fine"}, 3), "all")
    assert f is not None
    assert (f.status, f.reason) == ("failed", "driver-failed")
    assert "(exit code 3); status 'success' is not one of servo's" in f.message


def test_known_failure_statuses_are_kept() -> None:
    for status in ("failed", "rejected", "aborted", "canceled"):
        f = judge(outcome({"status": status, "reason": "r", "message": "m"}), "all")
        assert f is not None and f.status == status
        assert fold([f])["status"] == status


def test_fold_never_passes_on_a_status_servo_does_not_know() -> None:
    odd = DriverFailure("10web", "adjust", "success", "x", "adjust: hm")
    assert fold([odd])["status"] == "failed"
    assert fold([DriverFailure("10web", "adjust", "ok", "x", "adjust: hm")])["status"] == \
        "failed"
    assert fold([odd, DriverFailure("20db", "adjust", "rejected", "policy", "no")])[
        "status"] == "rejected"


def test_a_huge_status_or_reason_is_clipped() -> None:
    """The driver's own message is its business (cut at 2 MiB); what servo-agg quotes of
    its status and puts in `reason` is bounded."""
    f = judge(outcome({"status": "s" * 100_000}), "all")
    assert f is not None
    assert len(f.message) < 500
    f = judge(outcome({"status": "failed", "reason": "r" * 100_000}), "all")
    assert f is not None
    assert len(f.reason) <= 200
