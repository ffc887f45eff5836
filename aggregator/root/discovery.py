"""Which files in the drivers directory are drivers, and in what order, as the types the
commands work with. The rules themselves are `layout.py`'s (which --info uses alone).

Stdlib only: no trio, no yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aggregator.root.layout import listing


@dataclass(frozen=True)
class Driver:
    """One executable in the drivers directory; `name` is its file name."""

    name: str
    path: Path


@dataclass(frozen=True)
class Candidate:
    """A file in the drivers directory and why it is or is not a driver (for `--check`)."""

    name: str
    path: Path
    is_driver: bool
    why: str


def scan(drivers_dir: Path) -> list[Candidate]:
    """Every entry of `drivers_dir`, classified, in bytewise name order."""
    return [Candidate(name, Path(path), is_driver, why)
            for name, path, is_driver, why in listing(drivers_dir)]


def find_drivers(drivers_dir: Path, disabled: frozenset[str] = frozenset()) -> list[Driver]:
    """The drivers to run, in file-name order (bytewise), leaving out disabled ones."""
    return [Driver(c.name, c.path) for c in scan(drivers_dir)
            if c.is_driver and c.name not in disabled]
