"""What servo-agg and its drivers run on, for `--check`: servo-agg's Python, its
dependencies against the declared minimums, and the interpreter a driver's
`#!/usr/bin/env NAME` line finds on the drivers' PATH.

The minimums are aggregator/requirements.txt, the one list: pyproject.toml reads its
dependencies from it, the copied-files route installs it, noxfile.py's `lowest` session
proves it, and it travels with the package however it is deployed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.root.discovery import Driver
from aggregator.root.shebang import shebang_of

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
#: The module each distribution is imported as (its version, when no metadata is there).
MODULE_OF = {"trio": "trio", "PyYAML": "yaml"}


def declared_minimums(path: Path = REQUIREMENTS) -> dict[str, str]:
    """{distribution: the lowest version allowed}, from `name>=version` lines."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        requirement = line.partition("#")[0].strip()
        if requirement:
            name, _, version = requirement.partition(">=")
            found[name.strip()] = version.strip()
    return found


def version_key(text: str) -> tuple[int, ...]:
    """`0.22.2` as (0, 22, 2), for comparing release numbers: each part's leading digits
    (a pre-release such as 0.25.0rc1 counts as its release), missing parts as 0."""
    parts = []
    for part in text.split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits) if digits else 0)
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def installed_version(distribution: str) -> str | None:
    """The version servo-agg's Python imports, by the distribution's metadata, else by
    the module's own `__version__` (a copy without metadata); None when missing."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(MODULE_OF.get(distribution, distribution.lower()))
    except ImportError:
        return None
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


@dataclass(frozen=True)
class Dependency:
    name: str
    minimum: str
    installed: str | None

    @property
    def too_old(self) -> bool:
        return self.installed is not None and (version_key(self.installed)
                                               < version_key(self.minimum))


def dependencies(path: Path = REQUIREMENTS) -> list[Dependency]:
    return [Dependency(name, minimum, installed_version(name))
            for name, minimum in declared_minimums(path).items()]


def own_python() -> str:
    return f"Python {platform.python_version()} at {sys.executable}"


def env_interpreter(path: Path) -> str | None:
    """NAME of a `#!/usr/bin/env [options] NAME ...` line, the interpreter the driver's
    PATH decides; None for any other script or binary."""
    found = shebang_of(path)
    if found is None or os.path.basename(found[0]) != "env":
        return None
    words = [w for w in found[1].split() if not w.startswith("-")]
    return words[0] if words else None


@dataclass(frozen=True)
class Interpreter:
    """An interpreter drivers name through env, and what their PATH makes of it."""

    name: str
    drivers: tuple[str, ...]
    found: str | None  # the path on the drivers' PATH, None when there is none
    real: str | None  # where that path leads, when a symlink


def env_interpreters(drivers: Sequence[Driver], env: Mapping[str, str]) -> list[Interpreter]:
    """Each NAME the drivers' `#!/usr/bin/env NAME` lines use (python3 always, since
    that is what most drivers are), resolved on the PATH the drivers get."""
    users: dict[str, list[str]] = {"python3": []}
    for driver in drivers:
        name = env_interpreter(driver.path)
        if name is not None:
            users.setdefault(name, []).append(driver.name)
    path = env.get("PATH", os.defpath)
    found = []
    for name, names in users.items():
        where = shutil.which(name, path=path)
        real = os.path.realpath(where) if where is not None else None
        found.append(Interpreter(name, tuple(names), where,
                                 real if real is not None and real != where else None))
    return found
