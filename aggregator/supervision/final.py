"""The final line of a command that ran its drivers to the end: ok, or every failure
folded into one (any front-end)."""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.protocol.result import DriverFailure, fold
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
