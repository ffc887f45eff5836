"""Which front-end a servo root is asked for: `adjust` (drivers in adjust.d, one at a
time) or `measure` (drivers in measure.d, all at once). Chosen by the name the
executable is run under, or by a subcommand of the installed `servo-agg` (the rule is
`layout.front_end_name`, which --info uses without this enum). Trio-free.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from aggregator.root import layout

if TYPE_CHECKING:  # --info chooses its front-end without loading the config module
    from aggregator.root.config import AggregatorConfig


class FrontEnd(StrEnum):
    ADJUST = layout.ADJUST
    MEASURE = layout.MEASURE


def front_end_for(program: str, args: list[str]) -> tuple[FrontEnd, list[str]]:
    """The front-end and its arguments (see `layout.front_end_name`)."""
    name, rest = layout.front_end_name(program, args)
    return FrontEnd(name), rest


def drivers_of(config: AggregatorConfig, front: str) -> tuple[str, frozenset[str]]:
    """The front-end's drivers directory (relative to the servo root) and its disabled
    drivers."""
    if front == layout.MEASURE:
        return config.measure.drivers_dir, config.measure.disabled
    return config.drivers_dir, config.disabled
