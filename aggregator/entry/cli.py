"""Entry point: `--info` answered at once, everything else handed to the trio app.

This module imports nothing heavy (not even typing, which loads re), so `adjust --info`
stays as cheap as Python's start.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms)
if TYPE_CHECKING:
    from typing import NoReturn


def main(argv: list[str] | None = None, program: str | None = None) -> int:
    """`adjust ...` or `measure ...`, by the name it is run under (or `servo-agg adjust|
    measure ...`)."""
    from aggregator.root.layout import front_end_name

    front, args = front_end_name(program or sys.argv[0], sys.argv[1:] if argv is None else argv)
    if "--info" in args:  # the one place that answers it: before anything else loads
        from aggregator.entry.info import print_info

        return print_info(front)
    from aggregator.entry.launch import run
    from aggregator.root.front_end import FrontEnd

    return run(args, FrontEnd(front))


def exit_now(code: int) -> NoReturn:
    """Flush and leave without interpreter teardown (~20 ms, paid on every servo call).

    Safe because by now every driver has been reaped and every line written.
    """
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would cost --info 4 ms of imports
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    os._exit(code)


def console_main() -> None:
    exit_now(main())
