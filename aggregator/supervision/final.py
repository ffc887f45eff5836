"""The final line of a command whose drivers failed, at any step (any front-end): every
failure folded into one (protocol/result.fold), written the one way (Output.failure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.result import DriverFailure, fold
from aggregator.protocol.vocabulary import Reason
from aggregator.supervision.output import Output


def finish_with_failures(output: Output, failures: Sequence[DriverFailure],
                         extra: Sequence[str] = (), extra_reasons: Sequence[str] = (),
                         keys: Mapping[str, Any] | None = None) -> int:
    """One JSON line: ok, or every failure folded (with `keys` added); the exit code
    servo expects."""
    result = fold(failures, extra)
    if not failures:
        output.json_line(result)
        return 0
    if extra_reasons:
        result["reason"] = "; ".join([result["reason"], *extra_reasons])
    result.update(keys or {})
    more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
    output.failure(result, f"error ({result['reason']})",
                   result["message"].split("\n")[0] + more)
    return 1


def could_not_ask(failures: Sequence[DriverFailure], owns: str, consequence: str,
                  many: Reason) -> AggregatorError:
    """The error that ends a command before it changes or measures anything: some drivers
    could not say what they own. One driver's own reason, or `many` for several; the same
    fold as any failure, so each driver's stderr and `failed_drivers` come with it."""
    names = ", ".join(f.driver for f in failures)
    result = fold(failures, headline=f"could not learn which driver owns which {owns}: "
                                     f"{names} could not be asked; {consequence}")
    return AggregatorError(failures[0].reason if len(failures) == 1 else many,
                           result["message"], result["status"],
                           tuple(result["failed_drivers"]))
