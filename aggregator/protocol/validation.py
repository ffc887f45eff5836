"""The descriptor rules, in one place: `--check` enforces them, `--dry-run` flags by them.

A range has numeric min < max, min <= value <= max and, where `step` is set, a value on
the grid min + k*step. An enum's value is one of its `values`. `type` defaults to range.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeGuard

KNOWN_TYPES = ("range", "enum")

#: How far off the step grid a float may be and still count as on it (in steps).
STEP_TOLERANCE = 1e-6


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def show(value: Any) -> str:
    """A value as people read it: strings bare, everything else as JSON would write it."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return json.dumps(value)


def setting_type(spec: dict[str, Any]) -> Any:
    return spec.get("type", "range")


def _bounds(spec: dict[str, Any]) -> tuple[float, float] | None:
    lo, hi = spec.get("min"), spec.get("max")
    if is_number(lo) and is_number(hi) and lo < hi:
        return float(lo), float(hi)
    return None


def _step(spec: dict[str, Any]) -> float | None:
    step = spec.get("step")
    return float(step) if is_number(step) and step > 0 else None


def range_value_problems(spec: dict[str, Any], value: Any) -> list[str]:
    """Why `value` does not fit this range setting ([] when it does, or when the setting's
    own bounds are too broken to judge it: those are reported by setting_problems)."""
    if not is_number(value):
        return [f"{json.dumps(value)} is not a number"]
    bounds = _bounds(spec)
    if bounds is None:
        return []
    lo, hi = bounds
    if not lo <= value <= hi:
        return [f"{show(value)} is outside {show(spec['min'])}..{show(spec['max'])}"]
    step = _step(spec)
    if step is not None:
        steps = (value - lo) / step
        if abs(steps - round(steps)) > STEP_TOLERANCE * max(1.0, abs(steps)):
            return [f"{show(value)} is not on the step grid "
                    f"({show(spec['min'])} + k × {show(spec['step'])})"]
    return []


def enum_value_problems(spec: dict[str, Any], value: Any) -> list[str]:
    values = spec.get("values")
    if isinstance(values, list) and values and value not in values:
        return [f"{show(value)} is not one of {', '.join(show(v) for v in values)}"]
    return []


def value_problems(spec: dict[str, Any], value: Any) -> list[str]:
    """Why a value (current or requested) does not fit the setting it is meant for."""
    kind = setting_type(spec)
    if kind == "range":
        return range_value_problems(spec, value)
    if kind == "enum":
        return enum_value_problems(spec, value)
    return []  # an unknown type cannot be judged; setting_problems names it


def setting_problems(spec: dict[str, Any]) -> list[str]:
    """What is wrong with one setting of a descriptor ([] when it follows the rules)."""
    kind = setting_type(spec)
    problems: list[str] = []
    if kind == "range":
        for key in ("min", "max"):
            if key not in spec:
                problems.append(f"range has no {key}")
            elif not is_number(spec[key]):
                problems.append(f"{key} {json.dumps(spec[key])} is not a number")
        lo, hi = spec.get("min"), spec.get("max")
        if is_number(lo) and is_number(hi) and not lo < hi:
            problems.append(f"min {show(lo)} is not below max {show(hi)}")
        step = spec.get("step")
        if step is not None and not (is_number(step) and step > 0):
            problems.append(f"step {show(step)} is not a positive number")
    elif kind == "enum":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            problems.append("enum has no list of values")
    else:
        return [f"unknown type {show(kind)} (known: {', '.join(KNOWN_TYPES)})"]
    if "value" not in spec:
        problems.append("has no current value")
    else:
        problems.extend("value " + p for p in value_problems(spec, spec["value"]))
    return problems


def describe_setting(spec: dict[str, Any]) -> str:
    """A one-line summary, e.g. `range 1 (0.5..4 step 0.5 cores)` or `enum lru (lru|lfu)`."""
    kind = setting_type(spec)
    value = show(spec.get("value"))
    if kind == "range":
        grid = f" step {show(spec['step'])}" if spec.get("step") is not None else ""
        unit = f" {spec['unit']}" if isinstance(spec.get("unit"), str) else ""
        return (f"range {value} ({show(spec.get('min'))}..{show(spec.get('max'))}"
                f"{grid}{unit})")
    if kind == "enum":
        values = spec.get("values")
        shown = "|".join(show(v) for v in values) if isinstance(values, list) else "?"
        return f"enum {value} ({shown})"
    return f"{show(kind)} {value}"
