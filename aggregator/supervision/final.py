"""The final line of a command that ran its drivers to the end: ok, or every failure
folded into one (any front-end)."""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.result import DriverFailure, fold
from aggregator.protocol.vocabulary import Reason
from aggregator.supervision.output import Output


def finish_with_failures(output: Output, failures: Sequence[DriverFailure],
                         extra: Sequence[str] = (), extra_reasons: Sequence[str] = ()) -> int:
    """One JSON line: ok, or every failure folded; the exit code servo expects."""
    result = fold(failures, extra)
    if failures and extra_reasons:
        result["reason"] = "; ".join([result["reason"], *extra_reasons])
    output.json_line(result)
    if failures:
        output.note(f"error ({result['reason']}): " + result["message"].split("\n")[0]
                    + (f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""))
        return 1
    return 0


def could_not_ask(failures: Sequence[DriverFailure], owns: str, consequence: str,
                  many: Reason) -> AggregatorError:
    """The error that ends a command before it changes or measures anything: some drivers
    could not say what they own. One driver's own reason, or `many` for several."""
    names = ", ".join(f.driver for f in failures)
    details = "\n".join(f.line() for f in failures)
    return AggregatorError(
        failures[0].reason if len(failures) == 1 else many,
        f"could not learn which driver owns which {owns}: {names} could not be asked; "
        f"{consequence}\n{details}")
