"""servo's measure protocol as pure formats: the request, each driver's share of it, the
drivers' metric descriptions, and their results folded into one. No I/O."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeGuard

from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.request import bad_request, load_request
from aggregator.protocol.text import DistinctNames, brief, clash_message, clip, shown_name
from aggregator.protocol.validation import show
from aggregator.protocol.vocabulary import Reason

Metrics = list[str] | dict[str, Any]  # the request's form: names, or {name: {...}}


class MeasureRequest(NamedTuple):
    metrics: Metrics
    control: dict[str, Any] | None
    extra: dict[str, Any]  # other top-level keys, passed on to every driver

    @property
    def names(self) -> list[str]:
        return list(self.metrics)


def parse_measure_request(data: bytes, drivers: Iterable[str] = ()) -> MeasureRequest:
    """The optimizer's MEASURE parameter, checked before any driver runs; `drivers` are
    the names an override in control.userdata may be keyed by."""
    document = load_request(data, "measure")
    metrics = document.get("metrics", [])
    if isinstance(metrics, list):
        for name in metrics:
            if not isinstance(name, str):
                raise bad_request(f"'metrics' must list metric names, not {brief(name)}",
                                  "measure")
    elif not isinstance(metrics, dict):
        raise bad_request("'metrics' must be a list of names or an object keyed by name, "
                          f"not {type(metrics).__name__}", "measure")
    control = document.get("control")
    if control is not None and not isinstance(control, dict):
        raise bad_request("'control' is not an object", "measure")
    if control is not None:
        _check_overrides(control.get("userdata"), drivers)
    extra = {k: v for k, v in document.items() if k not in ("metrics", "control")}
    return MeasureRequest(metrics, control, extra)


def _holds_override(entry: Any) -> TypeGuard[dict[str, Any]]:
    """Whether userdata's entry under a driver's name is that driver's override."""
    return isinstance(entry, dict) and "control" in entry


def _check_overrides(userdata: Any, drivers: Iterable[str]) -> None:
    """A driver's override that could not be applied would be dropped without a word."""
    if not isinstance(userdata, dict):
        return
    for driver in drivers:
        entry = userdata.get(driver)
        if not _holds_override(entry):
            continue
        where = f"control.userdata.{clip(driver)}.control ({clip(driver)}'s override)"
        override = entry["control"]
        if not isinstance(override, dict):
            raise bad_request(f"{where} must be an object of control keys, not "
                              f"{type(override).__name__}", "measure")
        if "userdata" in override:
            raise bad_request(f"{where} may not hold userdata: every driver gets "
                              "control.userdata itself", "measure")


class MetricsShapeError(ValueError):
    """A driver's --describe output is not a metrics description."""


def described_metrics(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics a driver's --describe line offers (with or without `status`; a load
    generator may describe none)."""
    metrics = raw.get("metrics", {})
    if not isinstance(metrics, dict):
        raise MetricsShapeError("'metrics' is not an object keyed by metric name")
    for name, spec in metrics.items():
        if not isinstance(spec, dict):
            raise MetricsShapeError(f"metric {clip(name)} is not an object")
    return metrics


def duplicate_metric(name: str, first: str, second: str, what: str) -> AggregatorError:
    return AggregatorError(Reason.DUPLICATE_METRIC,
                           f"metric {clip(name)} is {what} by both {first} and {second}; "
                           "each metric must belong to exactly one driver")


def _distinct_metric(names: DistinctNames, name: str, driver: str) -> None:
    """A metric whose name servo would get as another's is as ambiguous as a duplicate."""
    first = names.clash((name,), driver)
    if first is not None:
        raise AggregatorError(Reason.DUPLICATE_METRIC,
                              clash_message("metric", first, (name,), driver))


def merge_descriptions(
        described: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any],
                                                                        dict[str, str]]:
    """All drivers' metrics as one description, and who owns each metric. A metric two
    drivers describe, or two names servo would get as one, is an error."""
    merged: dict[str, Any] = {}
    owner: dict[str, str] = {}
    names = DistinctNames()
    for driver, metrics in described:
        for name, spec in metrics.items():
            if name in owner:
                raise duplicate_metric(name, owner[name], driver, "described")
            _distinct_metric(names, name, driver)
            owner[name] = driver
            merged[name] = spec
    return merged, owner


def share_of(request: MeasureRequest, owned: Iterable[str]) -> Metrics:
    """The requested metrics `owned` by one driver, in the request's own form and order."""
    mine = set(owned)
    if isinstance(request.metrics, dict):
        return {name: spec for name, spec in request.metrics.items() if name in mine}
    return [name for name in request.metrics if name in mine]


def unowned(request: MeasureRequest, owner: Mapping[str, str]) -> list[str]:
    """Requested metrics no driver describes (derived ones: not an error)."""
    return [name for name in request.names if name not in owner]


def unused_overrides(control: Mapping[str, Any] | None, drivers: Iterable[str]) -> list[str]:
    """Keys of control.userdata that hold an override (`{"control": {...}}`) but name no
    driver that runs: the override takes effect nowhere."""
    userdata = control.get("userdata") if control else None
    if not isinstance(userdata, dict):
        return []
    names = set(drivers)
    return [key for key, entry in userdata.items()
            if key not in names and _holds_override(entry)]


def not_returned(asked: Iterable[str], result: Mapping[str, Any]) -> list[str]:
    """The metrics a driver was asked for (and describes) that its result lacks."""
    got = result.get("metrics") or {}
    return [name for name in asked if name not in got]


#: The key of servo-agg's own entry in an ok measure result's `annotations`: a list of
#: what was asked for and did not come (servo passes annotations on to the optimizer).
OWN_ANNOTATION = "servo-agg"


def _names(names: Iterable[str]) -> str:
    return ", ".join(shown_name(name) for name in names)


def not_returned_notice(driver: str, names: Sequence[str]) -> str:
    return (f"{driver} did not return {_names(names)}, which it describes and was asked "
            "for")


def undescribed_notice(names: Sequence[str]) -> str:
    return (f"no driver describes {_names(names)}; asked for anyway (the optimizer may "
            "derive them)")


def unused_override_notice(key: str, disabled: bool) -> str:
    why = (f"{shown_name(key)} is disabled (measure.drivers.{shown_name(key)}.enabled)"
           if disabled else f"no measure driver is called {shown_name(key)}")
    return f"control.userdata.{shown_name(key)}.control took effect nowhere: {why}"


def driver_control(control: Mapping[str, Any] | None, driver: str,
                   drivers: Iterable[str]) -> dict[str, Any] | None:
    """The control one driver receives.

    `control.userdata.<driver file name>.control` is that driver's override: its keys are
    merged over the top level. No driver sees any driver's override in userdata; the rest
    of userdata reaches every driver unchanged.
    """
    if control is None:
        return None
    merged = dict(control)
    userdata = control.get("userdata")
    if not isinstance(userdata, dict):
        return merged
    names = set(drivers)
    entry = userdata.get(driver)
    if isinstance(entry, dict) and isinstance(entry.get("control"), dict):
        merged.update(entry["control"])  # parse_measure_request refused anything else
    kept: dict[str, Any] = {}
    for key, value in userdata.items():
        if key in names and _holds_override(value):
            rest = {k: v for k, v in value.items() if k != "control"}
            if rest:
                kept[key] = rest
            continue
        kept[key] = value
    merged["userdata"] = kept
    return merged


def driver_request(request: MeasureRequest, driver: str, owned: Iterable[str],
                   drivers: Iterable[str]) -> bytes:
    """One driver's request: its metrics (the key always there: some drivers fail
    without it) and its control."""
    document: dict[str, Any] = dict(request.extra)
    document["metrics"] = share_of(request, owned)
    control = driver_control(request.control, driver, drivers)
    if control is not None:
        document["control"] = control
    return (json.dumps(document) + "\n").encode()


def _seconds(value: Any) -> float | None:
    """A timing value as seconds (an int too large for a float is infinite); None when
    it is not a number of seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return math.inf
    return None if math.isnan(seconds) else seconds


class MeasurementWindow(NamedTuple):
    """The window a control implies: `seconds`, or None when there is none: the control
    gives no timing, or (`unusable` says how) timing no window can be computed from."""

    seconds: float | None = None
    unusable: str = ""

    def shown(self) -> str:
        """In words, for --dry-run."""
        if self.seconds is not None:
            return f"{show(self.seconds)} s"
        return f"none ({self.unusable})" if self.unusable else "none"


def measurement_window(control: Mapping[str, Any] | None) -> MeasurementWindow:
    """How long a measurement lasts by its control: warmup + duration + delay (`past`
    counts as delay), or load.t_warmup + load.t_limit, whichever is larger. A timing
    key that is not a number of seconds >= 0, or parts that add up past any float,
    give no window, and say why: a window guessed from the other parts would cut a
    measurement short, and none at all must not pass unsaid (window_grace needs one)."""
    if not control:
        return MeasurementWindow()
    delay = "delay" if control.get("delay") is not None else "past"
    groups = [[(key, control.get(key)) for key in ("warmup", "duration", delay)]]
    load = control.get("load")
    if isinstance(load, dict):
        groups.append([(f"load.{key}", load.get(key)) for key in ("t_warmup", "t_limit")])
    given = [[(key, value) for key, value in group if value is not None] for group in groups]
    bad = [f"{key} {clip(json.dumps(value), 40)}" for group in given for key, value in group
           if _seconds(value) is None]
    if bad:
        return MeasurementWindow(None, f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'}"
                                       " not a number of seconds >= 0")
    windows = [(sum(_seconds(value) or 0.0 for _, value in group),
                [key for key, _ in group]) for group in given if group]
    if not windows:
        return MeasurementWindow()
    seconds, keys = max(windows, key=lambda window: window[0])
    if not math.isfinite(seconds):
        return MeasurementWindow(None, f"window {' + '.join(keys)} is infinite")
    return MeasurementWindow(seconds)


def window_grace_notice(drivers: Sequence[str], unusable: str) -> str:
    """measure.window_grace is set, but these drivers' control gives no window to add
    it to: their measure runs without that limit, which must not pass unsaid."""
    whose = "its" if len(drivers) == 1 else "their"
    return (f"measure.window_grace does not limit {', '.join(drivers)}: {whose} control's "
            f"{unusable}, so no measurement window can be computed")


def merge_results(results: Sequence[tuple[str, Mapping[str, Any]]],
                  notices: Sequence[str] = ()) -> dict[str, Any]:
    """Every driver's metrics, untouched, and annotations, as one ok result. A metric
    from two drivers (or two names servo would get as one) is an error; an annotation
    two drivers set keeps both values, each marked with its driver (so do two keys servo
    would get as one: under the first key). `notices` (what was asked for and did not
    come) are servo-agg's own annotation, OWN_ANNOTATION, marked like a driver's should a
    driver use that key too."""
    metrics: dict[str, Any] = {}
    source: dict[str, str] = {}
    names = DistinctNames()
    annotations: dict[str, Any] = {}
    annotated_by: dict[str, list[tuple[str, Any]]] = {}
    keys = DistinctNames()
    for driver, result in results:
        got = result.get("metrics") or {}
        for name, value in got.items():
            if name in source:
                raise duplicate_metric(name, source[name], driver, "returned")
            _distinct_metric(names, name, driver)
            source[name] = driver
            metrics[name] = value
        extra = result.get("annotations") or {}
        for key, value in extra.items():
            first = keys.clash((key,), driver)
            annotated_by.setdefault(key if first is None else first[0][0],
                                    []).append((driver, value))
    if notices:
        annotated_by.setdefault(OWN_ANNOTATION, []).append((OWN_ANNOTATION, list(notices)))
    for key, values in annotated_by.items():
        if len(values) == 1:
            annotations[key] = values[0][1]
            continue
        marked: list[Any] = []
        for driver, value in values:
            items = value if isinstance(value, list) else [value]
            marked.extend(f"{driver}: {item}" for item in items)
        annotations[key] = marked
    final: dict[str, Any] = {"status": "ok", "metrics": metrics}
    if annotations:
        final["annotations"] = annotations
    return final


def result_shape_problem(result: Mapping[str, Any]) -> str | None:
    """Why a driver's measure result cannot be merged (None when it can)."""
    if not isinstance(result.get("metrics", {}), dict):
        return "'metrics' is not an object keyed by metric name"
    annotations = result.get("annotations", {})
    if annotations is not None and not isinstance(annotations, dict):
        return "'annotations' is not an object"
    return None
