"""servo's environment variables, parsed once at start (stdlib only)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, NamedTuple

from aggregator.limits import MAX_IO_TIMEOUT_SECONDS
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.text import brief

StderrMode = Literal["all", "minimal", "none"]
STDERR_MODES: tuple[StderrMode, ...] = ("all", "minimal", "none")

#: servo's per-line timeout, T; also what a limit taken from it is said to come from.
IO_TIMEOUT_VAR = "OPTUNE_IO_TIMEOUT"
#: Where T comes from when servo sets none and config.yaml's `io_timeout` stands in.
CONFIG_IO_TIMEOUT = "io_timeout in config.yaml"


class ServoEnvironment(NamedTuple):
    """What servo told us through the environment, with T the one value every limit
    derived from it uses, wherever it came from."""

    io_timeout: float | None  # T; None = no limit
    stderr_mode: StderrMode  # OPTUNE_VERBOSE_STDERR
    #: where T came from: every message that names a limit derived from it says so
    io_timeout_source: str = IO_TIMEOUT_VAR

    @property
    def line_limit(self) -> float | None:
        return line_limit_for(self.io_timeout)

    def with_fallback(self, io_timeout: float | None, source: str) -> ServoEnvironment:
        """T from `source` where servo set none (unset, empty or 0); servo's own wins."""
        if self.io_timeout is not None or io_timeout is None:
            return self
        return self._replace(io_timeout=io_timeout, io_timeout_source=source)


def line_limit_for(io_timeout: float | None) -> float | None:
    """Longest wait for a driver's next line: T-1, or T/2 when T <= 2.

    The aggregator must notice a silent driver before servo notices a silent aggregator.
    """
    if io_timeout is None:
        return None
    return io_timeout - 1.0 if io_timeout > 2.0 else io_timeout / 2.0


def kill_grace_for(io_timeout: float | None, kill_grace: float) -> float:
    """The SIGTERM->SIGKILL grace, shortened when servo's timeout leaves no room for all
    of it: half of what is left after the line limit."""
    limit = line_limit_for(io_timeout)
    if io_timeout is None or limit is None:
        return kill_grace
    return min(kill_grace, (io_timeout - limit) / 2)


def cancel_grace_for(io_timeout: float | None, cancel_grace: float) -> float:
    """How long a canceled driver may take to end its own way: at most the line limit,
    since servo waits no longer for our next line."""
    limit = line_limit_for(io_timeout)
    return cancel_grace if limit is None else min(cancel_grace, limit)


def parse_io_timeout(raw: str | None) -> float | None:
    """Seconds, within 0..MAX_IO_TIMEOUT_SECONDS; None for no limit."""
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise AggregatorError(
            "bad-env",
            f"OPTUNE_IO_TIMEOUT={brief(raw)} is not a non-negative number of seconds "
            "(unset, empty or 0 means no limit)",
        )
    if value > MAX_IO_TIMEOUT_SECONDS:
        raise AggregatorError(
            "bad-env",
            f"OPTUNE_IO_TIMEOUT={brief(raw)} is over the {MAX_IO_TIMEOUT_SECONDS:.0f} s "
            f"({MAX_IO_TIMEOUT_SECONDS / 86400:g} days) servo-agg accepts (unset, empty "
            "or 0 means no limit)",
        )
    return None if value == 0 else value


def parse_stderr_mode(raw: str | None) -> StderrMode:
    if raw is None or raw.strip() == "":
        return "all"
    mode = raw.strip().lower()
    for known in STDERR_MODES:
        if mode == known:
            return known
    raise AggregatorError(
        "bad-env",
        f"OPTUNE_VERBOSE_STDERR={brief(raw)} is not one of {', '.join(STDERR_MODES)}",
    )


def servo_posts_stderr(raw: str | None) -> bool:
    """Whether servo adds what we write on stderr to the message it posts for a command
    that exited non-zero. servo reads OPTUNE_VERBOSE_STDERR itself, as it is: unset is
    `all`; `all` adds everything, `minimal` the first two chunks it read, anything else
    (`none`, and every value servo does not know) nothing."""
    return (raw if raw is not None else "all") in ("all", "minimal")


def read_environment(env: Mapping[str, str]) -> ServoEnvironment:
    return ServoEnvironment(
        io_timeout=parse_io_timeout(env.get(IO_TIMEOUT_VAR)),
        stderr_mode=parse_stderr_mode(env.get("OPTUNE_VERBOSE_STDERR")),
    )
