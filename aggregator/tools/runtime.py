"""What servo-agg and its drivers run on, for `--check`: servo-agg's Python, its
dependencies against the declared minimums, and the interpreter a driver's
`#!/usr/bin/env ...` line finds on the drivers' PATH (or the one the line sets; how env
reads the line: env_line.py).

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
from pathlib import Path
from typing import NamedTuple

from aggregator.root.discovery import Driver
from aggregator.root.shebang import shebang_of
from aggregator.tools.env_line import BLANKS, EnvRefusal, env_line

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
#: The module each distribution is imported as (its version, when no metadata is there).
MODULE_OF = {"trio": "trio", "PyYAML": "yaml", "prometheus-client": "prometheus_client"}
#: Dependencies only one config.yaml key needs (imported only when it is set).
NEEDED_ONLY_FOR = {"prometheus-client": "metrics_file"}


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


def installed(distribution: str) -> tuple[bool, str | None]:
    """Whether servo-agg's Python imports `distribution`, and its version: by the
    distribution's metadata, else by the module's own `__version__` (a copy without
    metadata); None when it says none."""
    try:
        return True, importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(MODULE_OF.get(distribution, distribution.lower()))
    except ImportError:
        return False, None
    version = getattr(module, "__version__", None)
    return True, str(version) if version is not None else None


class Dependency(NamedTuple):
    name: str
    minimum: str
    found: bool
    installed: str | None  # its version; None when missing or when it says none

    @property
    def too_old(self) -> bool:
        return self.installed is not None and (version_key(self.installed)
                                               < version_key(self.minimum))


def dependencies(path: Path = REQUIREMENTS) -> list[Dependency]:
    return [Dependency(name, minimum, *installed(name))
            for name, minimum in declared_minimums(path).items()]


def own_python() -> str:
    return f"Python {platform.python_version()} at {sys.executable}"


def env_argument(path: Path) -> str | None:
    """The argument of a `#!/usr/bin/env ARGUMENT` line (the rest of the line, as the
    kernel gives it); None for any other script or binary."""
    found = shebang_of(path)
    if found is None or os.path.basename(found[0]) != "env":
        return None
    return found[1]


class Interpreter(NamedTuple):
    """A program drivers name through env, and what their PATH (or the one their line
    sets) makes of it."""

    name: str
    drivers: tuple[str, ...]
    found: str | None  # the path on that PATH, None when there is none
    real: str | None  # where that path leads, when a symlink
    #: how the drivers' lines change the PATH it is looked up on ("" when they do not)
    path_from: str = ""
    search_path: str | None = None


class UnrunLine(NamedTuple):
    """A driver whose `#!/usr/bin/env` line runs no interpreter, and why."""

    driver: str
    argument: str
    why: str

    def fix(self, environ: Mapping[str, str]) -> str:
        """How to write it, when the words are right but not split: Linux gives env the
        whole rest of the line as one argument, and only -S splits it."""
        if self.argument.startswith("-S") or not any(b in self.argument for b in BLANKS):
            return ""
        try:
            meant = env_line(f"-S {self.argument}", environ)
        except EnvRefusal:
            return ""
        return (f"#!/usr/bin/env -S {self.argument} runs {meant.name}: env splits what "
                "follows -S into words, Linux does not")


def env_interpreters(drivers: Sequence[Driver], env: Mapping[str, str],
                     ) -> tuple[list[Interpreter], list[UnrunLine]]:
    """Each program the drivers' `#!/usr/bin/env` lines run (python3 always, since that
    is what most drivers are), resolved on the PATH the drivers get or the one their line
    sets; and the lines that run none."""
    users: dict[tuple[str, str | None, str], list[str]] = {("python3", None, ""): []}
    unrun = []
    for driver in drivers:
        argument = env_argument(driver.path)
        if argument is None:
            continue
        try:
            line = env_line(argument, env)
        except EnvRefusal as refused:
            unrun.append(UnrunLine(driver.name, argument, str(refused)))
            continue
        users.setdefault((line.name, line.search_path, line.path_from), []).append(driver.name)
    found = []
    for (name, search_path, path_from), names in users.items():
        where = shutil.which(name, path=env.get("PATH", os.defpath) if search_path is None
                             else search_path)
        real = os.path.realpath(where) if where is not None else None
        found.append(Interpreter(name, tuple(names), where,
                                 real if real is not None and real != where else None,
                                 path_from, search_path))
    return found, unrun
