"""Which files in the drivers directory are drivers, and in what order, as the types the
commands work with. The rules themselves are `layout.py`'s (which --info uses alone).

Stdlib only: no trio, no yaml.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from aggregator.protocol.text import clip, one_line
from aggregator.root.layout import NOT_EXECUTABLE, listing, program_look


class Driver(NamedTuple):
    """One executable in the drivers directory; `name` is its file name."""

    name: str
    path: Path


class Candidate(NamedTuple):
    """A file in the drivers directory and why it is or is not a driver (for `--check`)."""

    name: str
    path: Path
    is_driver: bool
    why: str
    #: not executable, yet it looks like a program (why): most likely a driver that lost
    #: its execute bit, silently not run; None for every other file
    program: str | None = None


def scan(drivers_dir: Path) -> list[Candidate]:
    """Every entry of `drivers_dir`, classified, in bytewise name order; each file left
    out only for its missing execute bit is looked into, to tell a program from data."""
    return [Candidate(name, Path(path), is_driver, why,
                      program_look(path) if why == NOT_EXECUTABLE else None)
            for name, path, is_driver, why in listing(drivers_dir)]


def drivers_among(candidates: Sequence[Candidate],
                  disabled: frozenset[str] = frozenset()) -> list[Driver]:
    """The drivers to run, in the candidates' order, leaving out disabled ones."""
    return [Driver(c.name, c.path) for c in candidates
            if c.is_driver and c.name not in disabled]


def find_drivers(drivers_dir: Path, disabled: frozenset[str] = frozenset()) -> list[Driver]:
    """The drivers to run, in file-name order (bytewise), leaving out disabled ones."""
    return drivers_among(scan(drivers_dir), disabled)


def program_fix(drivers_dir: str, candidate: Candidate) -> str:
    """The command that makes a program found without its execute bit a driver."""
    return f"chmod +x {clip(one_line(os.path.join(drivers_dir, candidate.name)))}"


def unrun_programs(drivers_dir: str, candidates: Sequence[Candidate]) -> list[str]:
    """A warning for each file that looks like a program but will not run (no execute
    bit), for every command that runs drivers; data files are not named."""
    return [f"{clip(one_line(os.path.join(drivers_dir, c.name)))} is not executable, though "
            f"{c.program}: it is not run as a driver ({program_fix(drivers_dir, c)} makes "
            "it one; a data file for the drivers needs no change)"
            for c in candidates if c.program is not None]
