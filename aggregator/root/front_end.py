"""Which front-end a servo root is asked for: `adjust` (drivers in adjust.d, one at a
time) or `measure` (drivers in measure.d, all at once). Chosen by the name the
executable is run under, or by a subcommand of the installed `servo-agg`. Trio-free.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # --info chooses its front-end without loading the config module
    from aggregator.root.config import AggregatorConfig


class FrontEnd(StrEnum):
    ADJUST = "adjust"
    MEASURE = "measure"


def front_end_for(program: str, args: list[str]) -> tuple[FrontEnd, list[str]]:
    """The front-end and its arguments: `measure ...` and `adjust ...` by the program's
    name (a copy or a symlink in the servo root), `servo-agg measure ...` by subcommand;
    anything else is adjust, as servo-agg always was."""
    name = os.path.basename(program)
    for front in FrontEnd:
        if name == front.value:
            return front, args
    if args and args[0] in (FrontEnd.ADJUST.value, FrontEnd.MEASURE.value):
        return FrontEnd(args[0]), args[1:]
    return FrontEnd.ADJUST, args


def drivers_of(config: AggregatorConfig, front: FrontEnd) -> tuple[str, frozenset[str]]:
    """The front-end's drivers directory (relative to the servo root) and its disabled
    drivers."""
    if front is FrontEnd.MEASURE:
        return config.measure.drivers_dir, config.measure.disabled
    return config.drivers_dir, config.disabled
