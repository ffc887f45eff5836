"""The aggregator's own optional `aggregator:` section of the servo root's config.yaml."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aggregator.limits import (
    DEFAULT_CANCEL_GRACE,
    DEFAULT_KILL_GRACE,
    DEFAULT_PROGRESS_INTERVAL_SECONDS,
    MAX_GRACE_SECONDS,
    MAX_PROGRESS_INTERVAL_SECONDS,
    MAX_WEIGHT,
    MAX_WINDOW_GRACE_SECONDS,
)
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.text import brief, clip, one_line
from aggregator.protocol.validation import show
from aggregator.root.config_probe import (
    CONFIG_FILE,
    may_configure_aggregator,
    misspelled_sections,
    read_config_text,
)

SECTION = "aggregator"
OnFailure = Literal["continue", "stop", "rollback"]
ON_FAILURE_CHOICES: tuple[OnFailure, ...] = ("continue", "stop", "rollback")
#: measure: a failed driver cancels the others (`cancel`), or lets them finish.
MeasureOnFailure = Literal["cancel", "continue"]
MEASURE_ON_FAILURE_CHOICES: tuple[MeasureOnFailure, ...] = ("cancel", "continue")


@dataclass(frozen=True)
class DriverPolicy:
    weight: float = 1.0
    enabled: bool = True


def disabled_in(policies: Mapping[str, DriverPolicy]) -> frozenset[str]:
    return frozenset(name for name, p in policies.items() if not p.enabled)


@dataclass(frozen=True)
class MeasureConfig:
    """`aggregator.measure`: how ./measure runs the drivers in its own directory."""

    drivers_dir: str = "measure.d"
    kill_grace: float = DEFAULT_KILL_GRACE
    cancel_grace: float = DEFAULT_CANCEL_GRACE
    on_failure: MeasureOnFailure = "cancel"
    #: the overall limit, off when None: a driver still running this long after the
    #: window its control implies is killed as a timeout
    window_grace: float | None = None
    drivers: Mapping[str, DriverPolicy] = field(default_factory=dict)
    #: the aggregator's own `progress_interval`: servo's cost per line is the same for both
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL_SECONDS

    @property
    def disabled(self) -> frozenset[str]:
        return disabled_in(self.drivers)


@dataclass(frozen=True)
class AggregatorConfig:
    drivers_dir: str = "adjust.d"
    kill_grace: float = DEFAULT_KILL_GRACE
    cancel_grace: float = DEFAULT_CANCEL_GRACE
    on_failure: OnFailure = "continue"
    parallel_queries: bool = False
    #: at most one progress line per this many seconds to servo (the newest state)
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL_SECONDS
    drivers: Mapping[str, DriverPolicy] = field(default_factory=dict)
    measure: MeasureConfig = field(default_factory=MeasureConfig)

    def policy(self, driver_name: str) -> DriverPolicy:
        return self.drivers.get(driver_name, DriverPolicy())

    @property
    def disabled(self) -> frozenset[str]:
        return disabled_in(self.drivers)


def _bad(key: str, problem: str) -> AggregatorError:
    return AggregatorError("bad-config", f"{CONFIG_FILE}: {SECTION}.{clip(one_line(key))}: "
                                         f"{problem}")


def _seconds(key: str, value: Any, most: float = MAX_GRACE_SECONDS) -> float:
    """A grace period (or another time) in seconds, within 0..most (compared before
    float(), which a 400-digit YAML int would overflow)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, f"must be a number of seconds, not {brief(value)}")
    if not 0 <= value <= most:  # NaN fails both comparisons
        raise _bad(key, f"must be a finite number of seconds from 0 to "
                        f"{show(most)}, not {brief(value)}")
    return float(value)


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, f"must be true or false, not {brief(value)}")
    return value


def _driver_policies(value: Any, where: str = "drivers",
                     keys: tuple[str, ...] = ("weight", "enabled")) -> dict[str, DriverPolicy]:
    if value is None:
        return {}
    shown = ", ".join(keys)
    if not isinstance(value, dict):
        raise _bad(where, f"must map driver file names to {{{shown}}}")
    policies: dict[str, DriverPolicy] = {}
    for name, raw in value.items():
        key = f"{where}.{name}"
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise _bad(key, f"must be a mapping with optional {' and '.join(map(repr, keys))}")
        unknown = sorted(set(map(str, raw)) - set(keys))
        if unknown:
            raise _bad(f"{key}.{unknown[0]}", f"unknown key (known: {shown})")
        weight = raw.get("weight", 1.0)
        if (isinstance(weight, bool) or not isinstance(weight, int | float)
                or not 0 < weight <= MAX_WEIGHT):  # NaN fails both comparisons
            raise _bad(f"{key}.weight", f"must be a positive number up to "
                                        f"{show(MAX_WEIGHT)}, not {brief(weight)}")
        enabled = _boolean(f"{key}.enabled", raw.get("enabled", True))
        policies[str(name)] = DriverPolicy(weight=float(weight), enabled=enabled)
    return policies


def parse_section(section: Any) -> AggregatorConfig:
    """Validate the `aggregator:` section; every key is optional, unknown keys are errors."""
    if section is None:
        return AggregatorConfig()
    if not isinstance(section, dict):
        raise AggregatorError("bad-config", f"{CONFIG_FILE}: {SECTION}: must be a mapping")
    known = {"drivers_dir", "kill_grace", "cancel_grace", "on_failure",
             "parallel_queries", "progress_interval", "drivers", "measure"}
    for key in section:
        if key not in known:
            raise _bad(str(key), f"unknown key (known: {', '.join(sorted(known))})")
    defaults = AggregatorConfig()
    drivers_dir = _drivers_dir("drivers_dir", section.get("drivers_dir", defaults.drivers_dir))
    on_failure = section.get("on_failure", defaults.on_failure)
    if on_failure not in ON_FAILURE_CHOICES:
        raise _bad("on_failure", f"must be one of {', '.join(ON_FAILURE_CHOICES)}, "
                                 f"not {brief(on_failure)}")
    kill_grace = _seconds("kill_grace", section.get("kill_grace", defaults.kill_grace))
    cancel_grace = _seconds("cancel_grace", section.get("cancel_grace", defaults.cancel_grace))
    interval = _seconds("progress_interval", section.get("progress_interval",
                                                         defaults.progress_interval),
                        MAX_PROGRESS_INTERVAL_SECONDS)
    return AggregatorConfig(
        drivers_dir=drivers_dir,
        kill_grace=kill_grace,
        cancel_grace=cancel_grace,
        on_failure=on_failure,
        parallel_queries=_boolean("parallel_queries",
                                  section.get("parallel_queries", False)),
        progress_interval=interval,
        drivers=_driver_policies(section.get("drivers")),
        measure=_measure_section(section.get("measure"), kill_grace, cancel_grace, interval),
    )


def _drivers_dir(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(key, f"must be a non-empty path, not {brief(value)}")
    return value


def _measure_section(section: Any, kill_grace: float, cancel_grace: float,
                     progress_interval: float) -> MeasureConfig:
    """`aggregator.measure`; its graces default to the aggregator's own, and the progress
    interval is the aggregator's (one key: what a line costs servo is the same)."""
    if section is None:
        return MeasureConfig(kill_grace=kill_grace, cancel_grace=cancel_grace,
                             progress_interval=progress_interval)
    if not isinstance(section, dict):
        raise _bad("measure", "must be a mapping")
    known = {"drivers_dir", "kill_grace", "cancel_grace", "on_failure", "window_grace",
             "drivers"}
    for key in section:
        if key not in known:
            raise _bad(f"measure.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    on_failure = section.get("on_failure", "cancel")
    if on_failure not in MEASURE_ON_FAILURE_CHOICES:
        raise _bad("measure.on_failure", f"must be one of "
                   f"{', '.join(MEASURE_ON_FAILURE_CHOICES)}, not {brief(on_failure)}")
    grace = section.get("window_grace")
    return MeasureConfig(
        drivers_dir=_drivers_dir("measure.drivers_dir",
                                 section.get("drivers_dir", MeasureConfig.drivers_dir)),
        kill_grace=_seconds("measure.kill_grace", section.get("kill_grace", kill_grace)),
        cancel_grace=_seconds("measure.cancel_grace",
                              section.get("cancel_grace", cancel_grace)),
        on_failure=on_failure,
        window_grace=None if grace is None else _window_grace(grace),
        drivers=_driver_policies(section.get("drivers"), "measure.drivers", ("enabled",)),
        progress_interval=progress_interval,
    )


def _window_grace(value: Any) -> float:
    """Seconds past the measurement window; up to a day (a window is minutes)."""
    key = "measure.window_grace"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, f"must be a number of seconds (or absent: no overall limit), "
                        f"not {brief(value)}")
    if not 0 <= value <= MAX_WINDOW_GRACE_SECONDS:
        raise _bad(key, f"must be a finite number of seconds from 0 to "
                        f"{show(MAX_WINDOW_GRACE_SECONDS)}, not {brief(value)}")
    return float(value)


def parse_document(text: str, path: Path) -> dict[str, Any] | None:
    """config.yaml's text as a mapping of sections (None when empty); an error names the
    file and, where yaml knows it, the line."""
    import yaml  # deferred: only commands that need the config pay for it

    from aggregator.root.safe_yaml import AliasExpansionError, DuplicateKeyError, bounded_loader

    try:
        document = yaml.load(text, Loader=bounded_loader(SECTION))  # a safe loader (subclass)
    except AliasExpansionError as exc:
        where = f" line {exc.line}:" if exc.line else ""
        raise AggregatorError("bad-config", f"{path}:{where} refused: {exc.problem}") from None
    except DuplicateKeyError as exc:
        raise AggregatorError(
            "bad-config", f"{path}: {clip(one_line(exc.path))} is written twice, "
                          + (f"on lines {exc.first_line} and {exc.second_line}"
                             if exc.first_line != exc.second_line
                             else f"both on line {exc.first_line}")
                          + " (YAML would silently keep the second): keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise AggregatorError(
            "bad-config", f"{path}:{where}: not valid YAML: {clip(one_line(problem))}"
        ) from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # Valid YAML whose values Python cannot build: a date like 2001-13-01, an int of
        # more than 4300 digits, nesting deeper than the pure-Python loader can follow.
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise AggregatorError(
            "bad-config", f"{path}: a value cannot be loaded: {clip(one_line(problem))}"
        ) from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise AggregatorError("bad-config", f"{path}: must be a mapping of sections")
    return document


def load_document(servo_root: Path) -> dict[str, Any] | None:
    """The whole config.yaml (None when absent or empty); read as read_config_text allows."""
    text = read_config_text(servo_root)
    return None if text is None else parse_document(text, servo_root / CONFIG_FILE)


def config_from_text(servo_root: Path, text: str | None) -> AggregatorConfig:
    """The aggregator's settings from config.yaml's text (as read_config_text gave it);
    yaml is imported only when the text mentions them."""
    if not may_configure_aggregator(text):
        return AggregatorConfig()
    assert text is not None
    document = parse_document(text, servo_root / CONFIG_FILE)
    return parse_section(None if document is None else document.get(SECTION))


def misspelling_warnings(text: str | None) -> list[str]:
    """A warning for each top-level section that looks like `aggregator:` mistyped."""
    return [f"{CONFIG_FILE}: the top-level section {clip(one_line(name))!r} looks like a "
            f"misspelling: did you mean {SECTION}? servo-agg reads only `{SECTION}:`, so "
            f"what is under {clip(one_line(name))!r} is not used (if a driver's own section "
            "is named so, this warning is about nothing)"
            for name in misspelled_sections(text)]


def load_config(servo_root: Path,
                warn: Callable[[str], None] | None = None) -> AggregatorConfig:
    """The aggregator's settings; config.yaml is read once, and parsed only when it
    mentions them. `warn` is told of a section name that looks like a typo."""
    text = read_config_text(servo_root)
    if warn is not None:
        for warning in misspelling_warnings(text):
            warn(warning)
    return config_from_text(servo_root, text)
