"""The aggregator's own optional `aggregator:` section of the servo root's config.yaml."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from aggregator.limits import (
    DEFAULT_CANCEL_GRACE,
    DEFAULT_JOURNAL_MAX_BYTES,
    DEFAULT_KILL_GRACE,
    DEFAULT_PROGRESS_INTERVAL_SECONDS,
    MAX_CPU_LIMIT,
    MAX_DEADLINE_SECONDS,
    MAX_GRACE_SECONDS,
    MAX_IO_TIMEOUT_SECONDS,
    MAX_JOURNAL_MAX_BYTES,
    MAX_MEMORY_LIMIT_BYTES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    MAX_PIDS_LIMIT,
    MAX_PROGRESS_INTERVAL_SECONDS,
    MAX_WEIGHT,
    MAX_WINDOW_GRACE_SECONDS,
    MIN_CPU_LIMIT,
    MIN_JOURNAL_MAX_BYTES,
    MIN_MEMORY_LIMIT_BYTES,
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
#: adjust: which drivers may run at the same time. `none`: one at a time (the default);
#: `prefix`: drivers whose file names share their leading digits run together.
GroupMode = Literal["none", "prefix"]
GROUP_MODE_CHOICES: tuple[GroupMode, ...] = ("none", "prefix")
#: measure: a requested metric that its driver describes but does not return is noted
#: (stderr and the result's annotations) or fails that driver.
MissingMetrics = Literal["note", "fail"]
MISSING_METRICS_CHOICES: tuple[MissingMetrics, ...] = ("note", "fail")


#: The keys of `limits:`.
LIMIT_KEYS = ("memory", "pids", "cpu")
#: The drivers of a config without a `drivers:` key: none, read-only, shared by every
#: config (a NamedTuple's default is one object).
NO_DRIVERS: Mapping[str, Any] = MappingProxyType({})


class ResourceLimits(NamedTuple):
    """What one driver call may use (`limits:`); None: no limit. The process layer reads
    these fields (process.resources.CallLimits)."""

    memory: int | None = None  # bytes, as memory.max takes them
    pids: int | None = None  # processes and threads at once, as pids.max
    cpu: float | None = None  # CPUs: 1.5 is one and a half (cpu.max)

    def over(self, base: ResourceLimits) -> ResourceLimits:
        """These limits, each one not set taken from `base`: a driver's own replace the
        global ones key by key."""
        return ResourceLimits(
            memory=base.memory if self.memory is None else self.memory,
            pids=base.pids if self.pids is None else self.pids,
            cpu=base.cpu if self.cpu is None else self.cpu,
        )

    @property
    def limited(self) -> tuple[str, ...]:
        """The keys that hold a limit, in LIMIT_KEYS order."""
        return tuple(key for key in LIMIT_KEYS if getattr(self, key) is not None)


class DriverBounds(NamedTuple):
    """Everything one driver's calls are held to besides servo's line limit."""

    limits: ResourceLimits = ResourceLimits()
    #: seconds each call of it may run from its start, however much it prints; None: no
    #: deadline
    deadline: float | None = None


class RunBounds(NamedTuple):
    """Each driver's bounds in one run, by file name; a driver not in it has none."""

    drivers: Mapping[str, DriverBounds] = NO_DRIVERS

    def of(self, driver_name: str) -> DriverBounds:
        return self.drivers.get(driver_name, DriverBounds())

    @property
    def limited(self) -> tuple[str, ...]:
        """The resource limits some driver has, in LIMIT_KEYS order."""
        found = {key for bounds in self.drivers.values() for key in bounds.limits.limited}
        return tuple(key for key in LIMIT_KEYS if key in found)


class DriverPolicy(NamedTuple):
    weight: float = 1.0
    enabled: bool = True
    limits: ResourceLimits = ResourceLimits()  # its own: the global ones fill the rest
    deadline: float | None = None  # its own: None takes the global one
    #: the adjust group it runs in, at the same time as the group's other drivers (None:
    #: as `groups` says)
    group: str | None = None


def disabled_in(policies: Mapping[str, DriverPolicy]) -> frozenset[str]:
    return frozenset(name for name, p in policies.items() if not p.enabled)


class MeasureConfig(NamedTuple):
    """`aggregator.measure`: how ./measure runs the drivers in its own directory."""

    drivers_dir: str = "measure.d"
    kill_grace: float = DEFAULT_KILL_GRACE
    cancel_grace: float = DEFAULT_CANCEL_GRACE
    on_failure: MeasureOnFailure = "cancel"
    #: the overall limit, off when None: a driver still running this long after the
    #: window its control implies is killed as a timeout
    window_grace: float | None = None
    drivers: Mapping[str, DriverPolicy] = NO_DRIVERS
    #: the aggregator's own `progress_interval`: servo's cost per line is the same for both
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL_SECONDS
    missing_metrics: MissingMetrics = "note"
    #: the aggregator's global `limits` and `deadline`: they apply to both front-ends
    limits: ResourceLimits = ResourceLimits()
    deadline: float | None = None

    @property
    def disabled(self) -> frozenset[str]:
        return disabled_in(self.drivers)

    def bounds(self, driver_name: str) -> DriverBounds:
        return bounds_of(self.drivers.get(driver_name, DriverPolicy()), self.limits,
                         self.deadline)

    def run_bounds(self, driver_names: Iterable[str]) -> RunBounds:
        return RunBounds({name: self.bounds(name) for name in driver_names})


class JournalConfig(NamedTuple):
    """`aggregator.journal`: where every run is recorded (docs/journal.md)."""

    dir: str = ".servo-agg"  # relative to the servo root, inside it
    max_bytes: int = DEFAULT_JOURNAL_MAX_BYTES  # all its files together
    enabled: bool = True


class AggregatorConfig(NamedTuple):
    drivers_dir: str = "adjust.d"
    kill_grace: float = DEFAULT_KILL_GRACE
    cancel_grace: float = DEFAULT_CANCEL_GRACE
    on_failure: OnFailure = "continue"
    parallel_queries: bool = False
    groups: GroupMode = "none"
    #: at most one progress line per this many seconds to servo (the newest state)
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL_SECONDS
    drivers: Mapping[str, DriverPolicy] = NO_DRIVERS
    measure: MeasureConfig = MeasureConfig()
    #: T where servo sets no OPTUNE_IO_TIMEOUT (or 0), used exactly as servo's; None: none
    io_timeout: float | None = None
    #: every driver's resource limits, unless its own replace them (key by key)
    limits: ResourceLimits = ResourceLimits()
    #: every driver call's total time, unless the driver has its own; None: none
    deadline: float | None = None
    journal: JournalConfig = JournalConfig()
    #: a Prometheus text file (node_exporter's textfile collector) each run updates
    metrics_file: str | None = None

    def policy(self, driver_name: str) -> DriverPolicy:
        return self.drivers.get(driver_name, DriverPolicy())

    @property
    def disabled(self) -> frozenset[str]:
        return disabled_in(self.drivers)

    def bounds(self, driver_name: str) -> DriverBounds:
        return bounds_of(self.policy(driver_name), self.limits, self.deadline)

    def run_bounds(self, driver_names: Iterable[str]) -> RunBounds:
        return RunBounds({name: self.bounds(name) for name in driver_names})


def bounds_of(policy: DriverPolicy, limits: ResourceLimits,
              deadline: float | None) -> DriverBounds:
    """A driver's bounds: its own, the global ones where it sets none."""
    return DriverBounds(limits=policy.limits.over(limits),
                        deadline=deadline if policy.deadline is None else policy.deadline)


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
                     keys: tuple[str, ...] = ("weight", "enabled", "limits", "deadline"),
                     ) -> dict[str, DriverPolicy]:
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
        group = _group(f"{key}.group", raw["group"]) if "group" in raw else None
        policies[str(name)] = DriverPolicy(weight=float(weight), enabled=enabled,
                                           limits=_limits(f"{key}.limits", raw.get("limits")),
                                           deadline=_deadline(f"{key}.deadline",
                                                              raw.get("deadline")),
                                           group=group)
    return policies


#: Where config.yaml names a group: read as text as written (`group: 010` is "010", not
#: yaml's octal 8), so that it matches the leading digits `groups: prefix` takes.
GROUP_NAMES = (("drivers", "*", "group"),)


def _group(key: str, value: Any) -> str:
    """A group's name is text; `group: 10` is the group "10" (parse_document keeps a
    number's text as written; a section built in code may hold an int)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise _bad(key, f"must be a group name (text, or a whole number such as 10), "
                        f"not {brief(value)}")
    return str(value)


def _deadline(key: str, value: Any) -> float | None:
    """Seconds a driver call may run in all, above 0 and up to MAX_DEADLINE_SECONDS."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not 0 < value <= MAX_DEADLINE_SECONDS):  # NaN fails both comparisons
        raise _bad(key, f"must be a number of seconds above 0 and up to "
                        f"{show(MAX_DEADLINE_SECONDS)} (absent: no deadline), "
                        f"not {brief(value)}")
    return float(value)


#: A memory size written as text; compiled (and cached) by re when one is first read, not
#: at every start. The suffix's case is spelled out: under re.IGNORECASE, K also matches
#: U+212A, the Kelvin sign.
_MEMORY = r"([0-9]+)([KMGkmg]?)"
_BINARY = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def _memory(key: str, value: Any) -> int:
    """Bytes, with an optional binary suffix as memory.max takes them (512M is 512 MiB)."""
    problem = (f"must be a number of bytes with an optional K, M or G (binary: 512M is "
               f"512 MiB), from 1M to {MAX_MEMORY_LIMIT_BYTES >> 30}G, not {brief(value)}")
    if isinstance(value, bool):
        raise _bad(key, problem)
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (found := re.fullmatch(_MEMORY, value.strip())):
        digits, unit = found.groups()
        if len(digits) > 20:  # int() of thousands of digits is refused (or slow)
            raise _bad(key, problem)
        size = int(digits) * _BINARY[unit.upper()]
    else:
        raise _bad(key, problem)
    if not MIN_MEMORY_LIMIT_BYTES <= size <= MAX_MEMORY_LIMIT_BYTES:
        raise _bad(key, problem)
    return size


def _limits(key: str, value: Any) -> ResourceLimits:
    """`limits: {memory: 512M, pids: 512, cpu: 1.5}`, every key optional."""
    if value is None:
        return ResourceLimits()
    shown = ", ".join(LIMIT_KEYS)
    if not isinstance(value, dict):
        raise _bad(key, f"must be a mapping with optional {shown}, not {brief(value)}")
    unknown = sorted(set(map(str, value)) - set(LIMIT_KEYS))
    if unknown:
        raise _bad(f"{key}.{unknown[0]}", f"unknown key (known: {shown})")
    memory, pids, cpu = (value.get(k) for k in LIMIT_KEYS)
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int)
                             or not 1 <= pids <= MAX_PIDS_LIMIT):
        raise _bad(f"{key}.pids", f"must be a whole number of processes from 1 to "
                                  f"{MAX_PIDS_LIMIT}, not {brief(pids)}")
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int | float)
                            or not MIN_CPU_LIMIT <= cpu <= MAX_CPU_LIMIT):  # NaN fails
        raise _bad(f"{key}.cpu", f"must be a number of CPUs from {show(MIN_CPU_LIMIT)} to "
                                 f"{show(MAX_CPU_LIMIT)} (1.5 is one and a half), "
                                 f"not {brief(cpu)}")
    return ResourceLimits(memory=None if memory is None else _memory(f"{key}.memory", memory),
                          pids=pids, cpu=None if cpu is None else float(cpu))


def parse_section(section: Any) -> AggregatorConfig:
    """Validate the `aggregator:` section; every key is optional, unknown keys are errors."""
    if section is None:
        return AggregatorConfig()
    if not isinstance(section, dict):
        raise AggregatorError("bad-config", f"{CONFIG_FILE}: {SECTION}: must be a mapping")
    known = {"drivers_dir", "kill_grace", "cancel_grace", "on_failure",
             "parallel_queries", "groups", "progress_interval", "drivers", "measure",
             "io_timeout", "limits", "deadline", "journal", "metrics_file"}
    for key in section:
        if key not in known:
            raise _bad(str(key), f"unknown key (known: {', '.join(sorted(known))})")
    defaults = AggregatorConfig()
    drivers_dir = _drivers_dir("drivers_dir", section.get("drivers_dir", defaults.drivers_dir))
    on_failure = section.get("on_failure", defaults.on_failure)
    if on_failure not in ON_FAILURE_CHOICES:
        raise _bad("on_failure", f"must be one of {', '.join(ON_FAILURE_CHOICES)}, "
                                 f"not {brief(on_failure)}")
    groups = section.get("groups", defaults.groups)
    if groups not in GROUP_MODE_CHOICES:
        raise _bad("groups", f"must be one of {', '.join(GROUP_MODE_CHOICES)}, "
                             f"not {brief(groups)}")
    kill_grace = _seconds("kill_grace", section.get("kill_grace", defaults.kill_grace))
    cancel_grace = _seconds("cancel_grace", section.get("cancel_grace", defaults.cancel_grace))
    interval = _seconds("progress_interval", section.get("progress_interval",
                                                         defaults.progress_interval),
                        MAX_PROGRESS_INTERVAL_SECONDS)
    limits = _limits("limits", section.get("limits"))
    deadline = _deadline("deadline", section.get("deadline"))
    measure = _measure_section(section.get("measure"), kill_grace, cancel_grace, interval,
                               limits, deadline)
    return AggregatorConfig(
        drivers_dir=drivers_dir,
        kill_grace=kill_grace,
        cancel_grace=cancel_grace,
        on_failure=on_failure,
        parallel_queries=_boolean("parallel_queries",
                                  section.get("parallel_queries", False)),
        groups=groups,
        progress_interval=interval,
        drivers=_driver_policies(section.get("drivers"),
                                 keys=("weight", "enabled", "limits", "deadline", "group")),
        measure=measure,
        io_timeout=_io_timeout(section.get("io_timeout")),
        limits=limits,
        deadline=deadline,
        journal=_journal_section(section.get("journal"),
                                 (drivers_dir, measure.drivers_dir)),
        metrics_file=_metrics_file(section.get("metrics_file")),
    )


def _io_timeout(value: Any) -> float | None:
    """servo's T when servo sets none: 0..MAX_IO_TIMEOUT_SECONDS as OPTUNE_IO_TIMEOUT
    takes it (absent or 0: no limit)."""
    if value is None:
        return None
    seconds = _seconds("io_timeout", value, MAX_IO_TIMEOUT_SECONDS)
    return seconds or None


def _drivers_dir(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(key, f"must be a non-empty path, not {brief(value)}")
    return value


def _measure_section(section: Any, kill_grace: float, cancel_grace: float,
                     progress_interval: float,
                     limits: ResourceLimits, deadline: float | None) -> MeasureConfig:
    """`aggregator.measure`; its graces default to the aggregator's own, and the progress
    interval, the global limits and deadline are the aggregator's (one key each: what a
    line costs servo is the same, and a bound is for every driver)."""
    if section is None:
        return MeasureConfig(kill_grace=kill_grace, cancel_grace=cancel_grace,
                             progress_interval=progress_interval, limits=limits,
                             deadline=deadline)
    if not isinstance(section, dict):
        raise _bad("measure", "must be a mapping")
    known = {"drivers_dir", "kill_grace", "cancel_grace", "on_failure", "window_grace",
             "drivers", "missing_metrics"}
    for key in section:
        if key not in known:
            raise _bad(f"measure.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    on_failure = section.get("on_failure", "cancel")
    if on_failure not in MEASURE_ON_FAILURE_CHOICES:
        raise _bad("measure.on_failure", f"must be one of "
                   f"{', '.join(MEASURE_ON_FAILURE_CHOICES)}, not {brief(on_failure)}")
    grace = section.get("window_grace")
    missing_metrics = section.get("missing_metrics", "note")
    if missing_metrics not in MISSING_METRICS_CHOICES:
        raise _bad("measure.missing_metrics", f"must be one of "
                   f"{', '.join(MISSING_METRICS_CHOICES)}, not {brief(missing_metrics)}")
    return MeasureConfig(
        drivers_dir=_drivers_dir("measure.drivers_dir",
                                 section.get("drivers_dir", MeasureConfig().drivers_dir)),
        kill_grace=_seconds("measure.kill_grace", section.get("kill_grace", kill_grace)),
        cancel_grace=_seconds("measure.cancel_grace",
                              section.get("cancel_grace", cancel_grace)),
        on_failure=on_failure,
        window_grace=None if grace is None else _window_grace(grace),
        drivers=_driver_policies(section.get("drivers"), "measure.drivers",
                                 ("enabled", "limits", "deadline")),
        progress_interval=progress_interval,
        missing_metrics=missing_metrics,
        limits=limits,
        deadline=deadline,
    )


def _journal_section(section: Any, drivers_dirs: tuple[str, ...]) -> JournalConfig:
    """`aggregator.journal`: its directory must be inside the servo root and apart from
    the drivers (a file in a drivers directory could be taken for a driver)."""
    if section is None:
        return JournalConfig()
    if not isinstance(section, dict):
        raise _bad("journal", "must be a mapping with optional dir, max_bytes and enabled")
    known = ("dir", "max_bytes", "enabled")
    for key in section:
        if key not in known:
            raise _bad(f"journal.{key}", f"unknown key (known: {', '.join(known)})")
    defaults = JournalConfig()
    directory = section.get("dir", defaults.dir)
    if not isinstance(directory, str) or not directory:
        raise _bad("journal.dir", f"must be a non-empty path, not {brief(directory)}")
    _openable("journal.dir", directory)
    inside = os.path.normpath(directory)
    if os.path.isabs(directory) or inside in (".", "..") or inside.startswith("../"):
        raise _bad("journal.dir", f"must be a directory inside the servo root (a relative "
                                  f"path without ..), not {brief(directory)}")
    for drivers in drivers_dirs:
        where = os.path.normpath(drivers)
        if "dir" in section and (inside == where or inside.startswith(where + "/")):
            raise _bad("journal.dir", f"{brief(directory)} is in the drivers directory "
                                      f"{brief(drivers)}: keep the journal apart from the "
                                      "drivers")
    size = section.get("max_bytes", defaults.max_bytes)
    if (isinstance(size, bool) or not isinstance(size, int)
            or not MIN_JOURNAL_MAX_BYTES <= size <= MAX_JOURNAL_MAX_BYTES):
        raise _bad("journal.max_bytes", f"must be a whole number of bytes from "
                                        f"{MIN_JOURNAL_MAX_BYTES} (64 KiB) to "
                                        f"{MAX_JOURNAL_MAX_BYTES} (1 GiB), not {brief(size)}")
    return JournalConfig(dir=directory, max_bytes=size,
                         enabled=_boolean("journal.enabled", section.get("enabled", True)))


def _metrics_file(value: Any) -> str | None:
    """A path (relative to the servo root, or absolute) that node_exporter's textfile
    collector reads: it reads only files ending in .prom."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.endswith(".prom") or value == ".prom":
        raise _bad("metrics_file", f"must be the path of a file ending in .prom (node_exporter's "
                                   f"textfile collector reads only those), not {brief(value)}")
    _openable("metrics_file", value)
    return value


def _openable(key: str, path: str) -> None:
    """A path the system could open at all: no NUL byte (Python refuses it: a traceback
    at the end of every run), one it can encode (a lone surrogate from a YAML escape),
    and within PATH_MAX and NAME_MAX."""
    if "\0" in path:
        raise _bad(key, f"must not contain a NUL byte (no file name can), not {brief(path)}")
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        raise _bad(key, f"is no file name this system can encode: {brief(path)}") from None
    if len(encoded) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES
                                            for part in encoded.split(b"/")):
        raise _bad(key, f"is longer than a path may be ({MAX_PATH_BYTES} bytes, each name "
                        f"in it {MAX_NAME_BYTES}): {brief(path)}")


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
        # a safe loader (subclass); a group's name is text as written (`group: 010`)
        document = yaml.load(text, Loader=bounded_loader(SECTION, GROUP_NAMES))
    except AliasExpansionError as exc:
        where = f" line {exc.line}:" if exc.line else ""
        raise AggregatorError("bad-config", f"{path}:{where} refused: {exc.problem}") from None
    except DuplicateKeyError as exc:
        spelled = ("" if exc.written is None else
                   f", as {clip(one_line(exc.written[0]))} and "
                   f"{clip(one_line(exc.written[1]))}, which servo-agg reads as one")
        raise AggregatorError(
            "bad-config", f"{path}: {clip(one_line(exc.path))} is written twice, "
                          + (f"on lines {exc.first_line} and {exc.second_line}"
                             if exc.first_line != exc.second_line
                             else f"both on line {exc.first_line}")
                          + f"{spelled} (only the second would be used, silently): "
                            "keep one") from None
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
