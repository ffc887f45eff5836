"""The aggregator's own stdout (servo's channel) and stderr (for people)."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import pytest

from aggregator.limits import MAX_MESSAGE_BYTES
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.text import clip_message
from aggregator.supervision.output import Output, StderrLines
from tests.streams import full_pipe

pytestmark = pytest.mark.unit


def read_all(fd: int) -> bytes:
    data = bytearray()
    while chunk := os.read(fd, 1 << 16):
        data += chunk
    return bytes(data)


def test_json_lines_are_whole_lines_on_stdout() -> None:
    r, w = os.pipe()
    err = io.StringIO()
    out = Output(w, err)
    out.json_line({"progress": 10, "message": "two\nlines"})
    out.write_line("servo-agg 0.1.0 (1.0)")
    os.close(w)
    data = read_all(r)
    os.close(r)
    lines = data.decode().split("\n")
    assert lines[-1] == ""
    assert json.loads(lines[0]) == {"progress": 10, "message": "two\nlines"}
    assert lines[1] == "servo-agg 0.1.0 (1.0)"
    assert len(lines) == 3
    assert err.getvalue() == ""


def test_a_line_larger_than_a_pipe_buffer_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    out = Output(fd, io.StringIO())
    out.json_line({"status": "failed", "message": "m" * (3 << 20)})
    os.close(fd)
    data = path.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert len(json.loads(data)["message"]) == 3 << 20


def test_a_closed_stdout_stops_writing_without_an_error() -> None:
    r, w = os.pipe()
    os.close(r)
    out = Output(w, io.StringIO())
    out.json_line({"progress": 1})
    assert out.closed
    out.json_line({"progress": 2})  # still no error
    os.close(w)


def test_the_last_line_sent_is_the_last_servo_got_once_its_end_is_closed() -> None:
    """The run's record keeps Output.last_sent as the final line: never a line written
    (or tried) after servo's end was closed. (The last object stays the run's verdict.)"""
    r, w = os.pipe()
    out = Output(w, io.StringIO())
    out.json_line({"progress": 1, "message": "got"})
    os.close(r)
    out.json_line({"status": "ok", "reason": "success"})  # EPIPE: never reached servo
    assert out.closed
    out.write_line("servo-agg 0.3.0")
    os.close(w)
    assert out.last_sent == '{"progress": 1, "message": "got"}'


def test_json_lines_are_strict_json_whatever_they_hold(tmp_path: Path) -> None:
    """No NaN or Infinity token, no lone surrogate (escaped or not): any parser takes it."""
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    out = Output(fd, io.StringIO())
    out.json_line({"message": "x\ud800y", "min": -math.inf, "max": math.nan})
    os.close(fd)
    data = path.read_bytes()
    assert data.isascii() and data.endswith(b"\n")

    def refuse(token: str) -> None:
        raise AssertionError(token)

    assert json.loads(data, parse_constant=refuse) == {
        "message": "x\ufffdy", "min": None, "max": None}


def test_a_text_line_with_a_lone_surrogate_is_valid_utf8(tmp_path: Path) -> None:
    """--version and --check lines name drivers, whose file names need not be UTF-8."""
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    out = Output(fd, io.StringIO())
    out.write_line("servo-agg 0.1.0 (x\udcffy: failing, 2.0 \ud800)")
    os.close(fd)
    assert path.read_bytes().decode("utf-8") == "servo-agg 0.1.0 (x\ufffdy: failing, 2.0 \ufffd)\n"


def test_last_write_moves_on_each_line() -> None:
    r, w = os.pipe()
    out = Output(w, io.StringIO())
    before = out.last_write
    out.write_line("x")
    assert out.last_write >= before
    os.close(w)
    os.close(r)


def test_note_is_one_prefixed_line_on_stderr_only() -> None:
    r, w = os.pipe()
    err = io.StringIO()
    out = Output(w, err)
    out.note("driver 10web ignored a progress value")
    os.close(w)
    assert read_all(r) == b""
    os.close(r)
    assert err.getvalue() == "servo-agg: driver 10web ignored a progress value\n"


def test_error_is_one_json_line_on_stdout_and_one_readable_line_on_stderr() -> None:
    r, w = os.pipe()
    err = io.StringIO()
    out = Output(w, err)
    out.error(AggregatorError("bad-input", "adjust request: stdin is not JSON"))
    os.close(w)
    data = read_all(r)
    os.close(r)
    assert data.count(b"\n") == 1
    assert json.loads(data) == {"status": "failed", "reason": "bad-input",
                                "message": "adjust request: stdin is not JSON"}
    assert err.getvalue() == "servo-agg: error (bad-input): adjust request: stdin is not JSON\n"


def test_error_keeps_its_status() -> None:
    assert AggregatorError("x", "y", "rejected").as_result() == {
        "status": "rejected", "reason": "x", "message": "y"}


def test_error_message_on_stdout_is_clipped(tmp_path: Path) -> None:
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    out = Output(fd, io.StringIO())
    out.error(AggregatorError("bad-output", "z" * (3 << 20)))
    os.close(fd)
    message = json.loads(path.read_bytes())["message"]
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    assert message.endswith("[... cut at 2 MiB ...]")


@pytest.mark.parametrize("text", ["", "short", "é" * 10])
def test_short_messages_are_not_clipped(text: str) -> None:
    assert clip_message(text) == text


def test_clip_message_cuts_on_a_character_boundary_within_the_limit() -> None:
    for text in ["a" * (MAX_MESSAGE_BYTES + 1), "é" * MAX_MESSAGE_BYTES,
                 "€" * MAX_MESSAGE_BYTES, "a" + "😀" * MAX_MESSAGE_BYTES]:
        clipped = clip_message(text)
        encoded = clipped.encode("utf-8")
        assert MAX_MESSAGE_BYTES - 40 < len(encoded) <= MAX_MESSAGE_BYTES
        assert clipped.endswith("\n[... cut at 2 MiB ...]")
        assert text.startswith(clipped[: -len("\n[... cut at 2 MiB ...]")])
    exact = "a" * MAX_MESSAGE_BYTES
    assert clip_message(exact) == exact


def test_clip_message_with_a_small_limit() -> None:
    assert clip_message("x" * 100, limit=50).encode() == (
        b"x" * (50 - len("\n[... cut at 2 MiB ...]")) + b"\n[... cut at 2 MiB ...]")


def test_a_note_to_a_stderr_nobody_reads_is_dropped_not_waited_for() -> None:
    read_end, write_end, _ = full_pipe()  # blocking, as servo hands it over
    sink = StderrLines.for_fd(write_end)
    assert sink is not None
    try:
        output = Output(-1, sink)
        output.note("a driver was killed")  # returns: the line does not fit, it is dropped
        assert sink.dropped == 1
        assert os.get_blocking(write_end)  # servo's own description is left as it was
    finally:
        sink.close()
        os.close(read_end)
        os.close(write_end)


def test_a_note_to_a_stderr_with_room_arrives_whole() -> None:
    read_end, write_end = os.pipe()
    sink = StderrLines.for_fd(write_end)
    assert sink is not None
    try:
        Output(-1, sink).note("lone \udcff surrogate")
        assert os.read(read_end, 4096) == "servo-agg: lone \ufffd surrogate\n".encode()
        assert sink.dropped == 0
    finally:
        sink.close()
        os.close(read_end)
        os.close(write_end)


def test_stderr_that_is_a_file_keeps_the_plain_stream(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w") as f:
        assert StderrLines.for_fd(f.fileno()) is None  # a file never makes a writer wait
    assert StderrLines.for_fd(987) is None  # not open at all


def test_the_record_keeps_only_the_head_of_a_large_final_line(tmp_path: Path) -> None:
    """A measure result may be tens of MB: what the run's record keeps of the line servo
    got last is a bounded head of it (the object itself is kept for its status)."""
    from aggregator.limits import JOURNAL_FINAL_BYTES

    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    out = Output(fd, io.StringIO())
    result = {"status": "ok", "metrics": {"m": {"value": "x" * (4 * JOURNAL_FINAL_BYTES)}}}
    out.json_line(result)
    assert out.last_object is result
    assert out.last_sent is not None
    assert len(out.last_sent) <= JOURNAL_FINAL_BYTES + 1
    assert out.last_sent.startswith('{"status": "ok", "metrics"')
    assert out.last_line is None  # only progress is compared for repeats
    out.write_line("servo-agg 0.3.0")
    os.close(fd)
    assert out.last_sent == "servo-agg 0.3.0" and out.last_object is None


def test_what_a_driver_wrote_reaches_stderr_and_a_text_report_escaped() -> None:
    """A driver's reason or version, a file name: control characters are escapes on the
    terminal, in the notes and in a text report (--version, --check, --dry-run), and each
    line of a report stays one line."""
    r, w = os.pipe()
    err = io.StringIO()
    out = Output(w, err)
    out.note("error (r\x1b[31m): 10-a: m\x1b[2Jx\nstderr: \x07")
    out.report(["servo-agg 1 (10-a 1\x1b[31m)", "  group 1: 10-a\nb, 10-c"])
    os.close(w)
    data = read_all(r).decode()
    os.close(r)
    assert err.getvalue() == "servo-agg: error (r\\x1b[31m): 10-a: m\\x1b[2Jx\nstderr: \\x07\n"
    assert data == "servo-agg 1 (10-a 1\\x1b[31m)\n  group 1: 10-a\\x0ab, 10-c\n"
