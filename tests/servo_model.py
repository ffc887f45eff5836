"""What servo does with a driver's output, modelled from its public source (facts, not
its code): the text it posts to the optimizer for a command that exited non-zero."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def posted_message(final: Mapping[str, Any], exit_code: int, stderr_chunks: Sequence[str],
                   verbose_stderr: str | None) -> str:
    """The `message` servo posts: the final line's own, and when the exit code is not 0,
    `\\nstderr:\\n` and the stderr chunks it read joined by newlines: all of them
    (OPTUNE_VERBOSE_STDERR unset or `all`), the first two (`minimal`), none otherwise.
    A chunk is one read of the pipe: for a driver that writes a line at a time and a
    servo that keeps up, one line."""
    message = str(final.get("message", ""))
    if exit_code == 0:
        return message
    mode = "all" if verbose_stderr is None else verbose_stderr
    if mode == "all":
        return message + "\nstderr:\n" + "\n".join(stderr_chunks)
    if mode == "minimal":
        return message + "\nstderr:\n" + "\n".join(stderr_chunks[:2])
    return message


def chunks(stderr: str) -> list[str]:
    """stderr as servo would read it from a writer of whole lines that it keeps up with."""
    return stderr.splitlines(keepends=True)
