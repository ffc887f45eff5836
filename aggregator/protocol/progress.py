"""A driver's progress value, as servo reads it. Pure."""

from __future__ import annotations

import math
from typing import Any


def progress_value(raw: Any) -> float | None:
    """A driver's progress as 0..100, or None when it is not a number at all."""
    kind = type(raw)
    if kind is int or kind is float:  # the usual case, first: this runs for every line
        if raw != raw:  # NaN
            return None
        return 0.0 if raw < 0 else 100.0 if raw > 100 else float(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if math.isnan(value):
        return None
    return min(100.0, max(0.0, value))
