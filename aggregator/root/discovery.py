"""Which files in the drivers directory are drivers, and in what order.

Stdlib only: `--info` uses it and must not pay for trio or yaml.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from aggregator.protocol.errors import AggregatorError

#: Suffixes left behind by editors, patch and package managers: never drivers.
BACKUP_SUFFIXES = (".bak", ".orig", ".rej", ".swp", ".rpmnew", ".rpmsave")


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


def _classify(entry: os.DirEntry[str]) -> Candidate:
    name, path = entry.name, Path(entry.path)
    if name.startswith("."):
        return Candidate(name, path, False, "hidden file (name starts with '.')")
    if name.endswith("~"):
        return Candidate(name, path, False, "editor backup (name ends with '~')")
    if name.endswith(BACKUP_SUFFIXES) or ".dpkg-" in name:
        return Candidate(name, path, False, "backup or package-manager leftover")
    try:
        st = os.stat(entry.path)  # follows symlinks: a link to a driver is a driver
    except OSError as exc:
        return Candidate(name, path, False, f"cannot stat ({exc.strerror}; broken symlink?)")
    if stat.S_ISDIR(st.st_mode):
        return Candidate(name, path, False, "directory")
    if not stat.S_ISREG(st.st_mode):
        return Candidate(name, path, False, "not a regular file")
    if not os.access(entry.path, os.X_OK):
        return Candidate(name, path, False, "not executable (data for the drivers)")
    return Candidate(name, path, True, "executable regular file")


def scan(drivers_dir: Path) -> list[Candidate]:
    """Every entry of `drivers_dir`, classified, in bytewise name order."""
    try:
        with os.scandir(drivers_dir) as entries:
            found = [_classify(e) for e in entries]
    except FileNotFoundError:
        raise AggregatorError(
            "no-drivers-dir",
            f"drivers directory {str(drivers_dir)!r} does not exist; create it and put "
            "the adjust drivers to aggregate in it (run from the servo root)",
        ) from None
    except NotADirectoryError:
        raise AggregatorError(
            "no-drivers-dir", f"{str(drivers_dir)!r} is not a directory"
        ) from None
    except PermissionError:
        raise AggregatorError(
            "no-drivers-dir", f"drivers directory {str(drivers_dir)!r} cannot be read"
        ) from None
    return sorted(found, key=lambda c: os.fsencode(c.name))


def find_drivers(drivers_dir: Path, disabled: frozenset[str] = frozenset()) -> list[Driver]:
    """The drivers to run, in file-name order (bytewise), leaving out disabled ones."""
    return [
        Driver(c.name, c.path)
        for c in scan(drivers_dir)
        if c.is_driver and c.name not in disabled
    ]
