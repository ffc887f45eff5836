"""A driver's stderr, kept bounded: its head and its tail, however much it writes."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from aggregator.limits import READ_CHUNK_BYTES, STDERR_HEAD_BYTES, STDERR_TAIL_BYTES
from aggregator.protocol.environment import STDERR_MODES
from aggregator.supervision.stderr import StderrCapture
from tests.streams import RepeatingStream, drain, peak_memory, pipe_streams

pytestmark = pytest.mark.unit


def test_small_stderr_is_kept_whole() -> None:
    capture = StderrCapture()
    capture.feed(b"Traceback (most recent call last):\n")
    capture.feed(bytearray(b"  boom\n"))
    assert capture.text() == "Traceback (most recent call last):\n  boom\n"
    assert (capture.total, capture.dropped) == (42, 0)


def test_head_and_tail_are_kept_and_the_middle_is_counted() -> None:
    capture = StderrCapture(head=10, tail=10)
    capture.feed(b"0123456789")  # exactly the head
    capture.feed(b"abcdefghij")  # exactly the tail
    assert capture.text() == "0123456789abcdefghij"
    capture.feed(b"KLMNO")
    assert capture.dropped == 5
    assert capture.text() == "0123456789\n[... 5 bytes of stderr dropped ...]\nfghijKLMNO"
    assert capture.total == 25


def test_one_big_chunk_is_cut_into_head_and_tail() -> None:
    capture = StderrCapture(head=4, tail=4)
    capture.feed(b"HEAD" + b"-" * 1000 + b"TAIL")
    assert capture.text() == "HEAD\n[... 1000 bytes of stderr dropped ...]\nTAIL"


def test_invalid_utf8_does_not_break_the_text() -> None:
    capture = StderrCapture()
    capture.feed(b"bad \xff\xfe bytes \xc3")
    assert capture.text() == "bad \ufffd\ufffd bytes \ufffd"


@pytest.mark.parametrize(("mode", "text"), [
    ("all", "line 1\nline 2\nline 3"),
    ("minimal", "line 1\nline 2"),
    ("none", ""),
])
def test_for_message_modes(mode: str, text: str) -> None:
    capture = StderrCapture()
    capture.feed(b"\nline 1\nline 2\nline 3\n\n")
    assert capture.for_message(mode) == text  # type: ignore[arg-type]


def test_for_message_of_nothing_is_empty() -> None:
    for mode in STDERR_MODES:
        assert StderrCapture().for_message(mode) == ""


@given(st.lists(st.binary(max_size=40).map(lambda b: bytes(c % 26 + 97 for c in b)),
                max_size=30),
       st.integers(0, 50), st.integers(0, 50))
def test_keeps_exactly_the_first_head_and_last_tail_bytes(
        chunks: list[bytes], head: int, tail: int) -> None:
    capture = StderrCapture(head=head, tail=tail)
    for chunk in chunks:
        capture.feed(chunk)
    everything = b"".join(chunks)
    assert capture.total == len(everything)
    if len(everything) <= head + tail:
        assert capture.dropped == 0
        assert capture.text() == everything.decode()
    else:
        assert capture.dropped == len(everything) - head - tail
        kept_tail = everything[len(everything) - tail:] if tail else b""
        assert capture.text() == (everything[:head].decode()
                                  + f"\n[... {capture.dropped} bytes of stderr dropped ...]\n"
                                  + kept_tail.decode())


async def test_hundreds_of_megabytes_in_bounded_memory() -> None:
    total = 256 * 1024 * 1024
    stream = RepeatingStream((b"e" * 1000 + b"\n") * 64, total)
    capture = StderrCapture()
    with peak_memory() as peak:
        await drain(capture, stream)
    assert capture.total == total
    assert capture.dropped == total - STDERR_HEAD_BYTES - STDERR_TAIL_BYTES
    bound = STDERR_HEAD_BYTES + STDERR_TAIL_BYTES + 4 * READ_CHUNK_BYTES
    assert peak[0] < bound, peak


async def test_drain_through_an_os_pipe_until_end_of_file() -> None:
    receive, send = pipe_streams()
    capture = StderrCapture()

    async def writer() -> None:
        async with send:
            await send.send_all(b"start\n")
            for _ in range(512):
                await send.send_all(b"w" * 65535 + b"\n")
            await send.send_all(b"the end\n")

    async with receive, trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await drain(capture, receive)
    assert capture.total == 6 + 512 * 65536 + 8
    text = capture.text()
    assert text.startswith("start\nwww")
    assert text.endswith("w\nthe end\n")
    assert len(text) < STDERR_HEAD_BYTES + STDERR_TAIL_BYTES + 100
