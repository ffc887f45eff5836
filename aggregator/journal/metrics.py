"""The Prometheus text file (config.yaml `metrics_file`) for node_exporter's textfile
collector, updated by every run from its record.

Written with prometheus_client: this module is imported only when a metrics file is
configured, since the library's import costs a run about 25 ms (after servo has its
final line). Metric names are
prefixed `servo_agg_`, no sample timestamps, replaced atomically by a rename from a
temporary file beside it whose name does not end in `.prom`, so a scrape never sees half
a file. Counters never go down: the file's previous values are read back with
prometheus_client's parser and added to, under a lock (`.<name>.lock` beside it) that
two runs ending at once take in turn. What it holds (docs/journal.md): runs by
front-end, command and status; driver failures by driver and reason; the last run's
duration and end time, and the last success, by front-end and command. Trio-free.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from aggregator.journal.show import failed_on_its_own
from aggregator.journal.store import locked, open_file
from aggregator.protocol.text import clip, scrub

PREFIX = "servo_agg_"
RUNS = f"{PREFIX}runs"
FAILURES = f"{PREFIX}driver_failures"
LAST_DURATION = f"{PREFIX}last_run_duration_seconds"
LAST_END = f"{PREFIX}last_run_end_time_seconds"
LAST_SUCCESS = f"{PREFIX}last_success_time_seconds"

#: Each family: its kind, its help and its labels.
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    RUNS: ("counter", "Runs of servo-agg, by front-end, command and status.",
           ("front_end", "command", "status")),
    FAILURES: ("counter", "Driver calls that failed on their own account (not those "
               "servo-agg stopped or canceled), by driver and reason.",
               ("front_end", "driver", "reason")),
    LAST_DURATION: ("gauge", "How long the last run took, in seconds.",
                    ("front_end", "command")),
    LAST_END: ("gauge", "When the last run ended, in seconds since the epoch.",
               ("front_end", "command")),
    LAST_SUCCESS: ("gauge", "When the last run with status ok ended, in seconds since the "
                   "epoch.", ("front_end", "command")),
}

Labels = tuple[str, ...]


@dataclass(eq=False)  # a registry keeps its collectors in a dict: hashed by identity
class Values:
    """Every family's samples: {family: {label values: value}}."""

    families: dict[str, dict[Labels, float]] = field(
        default_factory=lambda: {name: {} for name in FAMILIES})

    def add(self, family: str, labels: Labels, amount: float = 1.0) -> None:
        samples = self.families[family]
        samples[labels] = samples.get(labels, 0.0) + amount

    def set(self, family: str, labels: Labels, value: float) -> None:
        self.families[family][labels] = value

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's Collector: the families, sorted for a stable file."""
        for name, (kind, help_text, labels) in FAMILIES.items():
            maker = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = maker(name, help_text, labels=list(labels))
            for values, value in sorted(self.families[name].items()):
                family.add_metric(list(values), value)
            yield family


def parse(text: str) -> Values:
    """A previous file's values (what prometheus_client's parser makes of it); a
    ValueError when it cannot be read."""
    values = Values()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name.removesuffix("_total")
            if name not in FAMILIES or (FAMILIES[name][0] == "counter"
                                        and not sample.name.endswith("_total")):
                continue
            labels = tuple(sample.labels.get(key, "") for key in FAMILIES[name][2])
            values.set(name, labels, float(sample.value))
    return values


def _label(value: Any) -> str:
    """A label's value: text, valid UTF-8 (a driver's file name need not be), bounded."""
    return scrub(clip(str(value), 100))


def _failures(record: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(driver, reason) of each call that failed on its own account."""
    for call in record.get("calls") or []:
        if isinstance(call, Mapping) and failed_on_its_own(call):
            yield _label(call.get("driver")), _label(call.get("reason"))


def count(values: Values, record: Mapping[str, Any], end_time: float) -> Values:
    """`values` with the run of `record` (which ended at `end_time`) counted in."""
    front = _label(record.get("front_end"))
    command = _label(record.get("command") or "unknown")
    status = _label(record.get("status"))
    values.add(RUNS, (front, command, status))
    for driver, reason in _failures(record):
        values.add(FAILURES, (front, driver, reason))
    duration = record.get("duration")
    if isinstance(duration, int | float):
        values.set(LAST_DURATION, (front, command), float(duration))
    values.set(LAST_END, (front, command), end_time)
    if status == "ok":
        values.set(LAST_SUCCESS, (front, command), end_time)
    return values


def _previous(dir_fd: int, name: str) -> tuple[Values, str | None]:
    """The values in the file as it is (none when there is none), and a note when they
    cannot be read (bytes that are not UTF-8 are read as U+FFFD). Opened as the journal's
    files are, so a FIFO there cannot block this run, nor a symlink lead elsewhere: that
    is an OSError (the file is then left alone)."""
    try:
        fd = open_file(dir_fd, name, os.O_RDONLY)
    except FileNotFoundError:
        return Values(), None
    with open(fd, "rb") as file:
        data = file.read()
    try:
        return parse(data.decode("utf-8", "replace")), None
    except ValueError as exc:
        return Values(), (f"its previous values could not be read ({clip(str(exc), 200)}), "
                          "so its counters start again")


def _replace(dir_fd: int, name: str, data: bytes) -> None:
    """The file `name` replaced whole by `data`: written to a hidden temporary beside it
    (whose name does not end in .prom, so the textfile collector never reads it), then
    renamed over it."""
    temporary = f".{name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):  # left by a run killed mid-write
        os.unlink(temporary, dir_fd=dir_fd)
    fd = open_file(dir_fd, temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        raise


def update(path: Path, record: Mapping[str, Any], end_time: float) -> str | None:
    """Count the run in the file at `path`; a note when its previous values could not be
    read (the counters then start again). OSError when it cannot be written, or is not
    a regular file."""
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with locked(dir_fd, name=f".{path.name}.lock"):
            values, why = _previous(dir_fd, path.name)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(count(values, record, end_time))
            _replace(dir_fd, path.name, generate_latest(registry))
    finally:
        os.close(dir_fd)
    return None if why is None else f"{path}: {why}"
