"""The whole suite on every supported Python this machine has, each in its own venv under
.nox/ (`make test`: the report, -s pythons; the suites' venvs, -s venvs, beside mypy in
.venv; then the suites, -t make-test).

    .venv/bin/nox                     the report below, then the suite once on each Python
                                      found: each newer one with the newest versions of the
                                      requirements, then the oldest with the lowest versions
                                      aggregator/requirements.txt allows
    .venv/bin/nox -s "tests(3.11)"    (make test-oldest-newest; CI, make test-all) the
                                      oldest with the newest versions too
    .venv/bin/nox -s pythons          only the report: which supported Pythons are here
    .venv/bin/nox -s "tests(3.13)"    the suite on one of them; arguments after -- go to pytest
    .venv/bin/nox -s lowest           the suite on the oldest Python with the lowest versions
    .venv/bin/nox -s venvs            (make venvs) only the venvs of make test's suites

The supported versions are pyproject.toml's `Programming Language :: Python :: 3.N`
classifiers; the oldest of them (requires-python's floor) must be found, the others are
reported when missing. Each is looked for among pyenv's versions (the newest patch release)
and then as `python3.N` on PATH, and run once to be sure it is that version and can make a
venv. Nothing is downloaded but the requirements, installed into a venv once (again only
when they change: aggregator/requirements.txt, pyproject.toml's test extra), with uv where
.venv has it (the dev extra), else pip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the checkout's aggregator, for its one list of requirements
from aggregator.tools.runtime import REQUIREMENTS, declared_minimums  # noqa: E402

#: uv makes a session's venv and installs into it in about a second, where venv and pip
#: take ~12 s (the dev extra brings uv into .venv, where nox finds it); venv without it.
nox.options.default_venv_backend = "uv|venv"
nox.options.error_on_missing_interpreters = True

#: Run by each candidate: its version, and proof that it can make a venv with pip.
PROBE = "import sys, venv, ensurepip; print('%d.%d.%d' % sys.version_info[:3])"


def runtime_requirements() -> list[str]:
    """servo-agg's dependencies at their minimums, from its one list
    (aggregator/requirements.txt, which pyproject.toml reads too)."""
    return [f"{name}>={version}" for name, version in declared_minimums().items()]


def test_requirements() -> list[str]:
    """pyproject.toml's `test` extra: the suite's own tools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"]["test"])


def suite_requirements() -> list[str]:
    """What the suite needs installed: servo-agg's dependencies and its `test` extra. Not
    servo-agg itself: the suite runs this checkout (pytest puts it first on sys.path, and
    ./adjust and ./measure find their package beside them), and `make wheel-check` tests
    what an install gets."""
    return [*runtime_requirements(), *test_requirements()]


def supported_pythons() -> list[str]:
    """"3.11", "3.12", ...: the versions pyproject.toml's classifiers name, oldest first."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [m.group(1) for c in project["classifiers"]
             if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]
    return sorted(found, key=lambda v: int(v.split(".")[1]))


def _pyenv_root() -> Path | None:
    if root := os.environ.get("PYENV_ROOT"):
        return Path(root)
    if pyenv := shutil.which("pyenv"):
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _candidates(version: str, pyenv_root: Path | None) -> list[Path]:
    """Where `python<version>` may be: pyenv's releases of it, newest first (no -dev, no
    free-threaded `t` builds), then PATH without pyenv's shims (a shim of a version that is
    not selected only prints an error)."""
    found: list[Path] = []
    if pyenv_root is not None and (pyenv_root / "versions").is_dir():
        pattern = re.compile(re.escape(version) + r"\.(\d+)")
        releases = [(int(m.group(1)), entry) for entry in (pyenv_root / "versions").iterdir()
                    if (m := pattern.fullmatch(entry.name))]
        found += [entry / "bin" / f"python{version}" for _, entry in sorted(releases,
                                                                            reverse=True)]
    shims = (pyenv_root / "shims").resolve() if pyenv_root is not None else None
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if folder and Path(folder).resolve() != shims:
            found.append(Path(folder) / f"python{version}")
    return found


def find_python(version: str, pyenv_root: Path | None) -> tuple[str, str] | None:
    """(path, full version) of the first working interpreter of `version`, or None."""
    seen: set[Path] = set()
    for path in _candidates(version, pyenv_root):
        if not (path.is_file() and os.access(path, os.X_OK)) or path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            done = subprocess.run([str(path), "-c", PROBE], capture_output=True, text=True,
                                  timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        full = done.stdout.strip()
        if done.returncode == 0 and full.startswith(version + "."):
            return str(path), full
    return None


SUPPORTED = supported_pythons()
PYENV_ROOT = _pyenv_root()
FOUND = {version: find_python(version, PYENV_ROOT) for version in SUPPORTED}


@nox.session(python=False)
def pythons(session: nox.Session) -> None:
    """Which supported Pythons this machine has: a line for each; fails without the oldest."""
    pyenv = f"{PYENV_ROOT}/versions and " if PYENV_ROOT is not None else ""
    for version, found in FOUND.items():
        if found is None:
            session.log(f"Python {version}: not found (looked in {pyenv}for "
                        f"python{version} on PATH)")
        else:
            session.log(f"Python {version}: found at {found[0]} ({found[1]})")
    if FOUND[SUPPORTED[0]] is None:
        session.error(f"Python {SUPPORTED[0]}, the oldest supported version, is missing: "
                      f"install it (e.g. `pyenv install {SUPPORTED[0]}`)")


def install_once(session: nox.Session, *installs: Sequence[str]) -> None:
    """Run each of `installs` (one installer call's arguments each, in order) in the
    session's venv, unless exactly these ran there already: a reused venv costs no
    installer run, a changed list is installed anew."""
    stamp = Path(session.virtualenv.location) / "servo-agg-requirements"
    wanted = json.dumps(installs)
    if stamp.is_file() and stamp.read_text() == wanted:
        session.log("requirements installed already (unchanged)")
        return
    for arguments in installs:
        # compiled now, once (pip always does; uv only when asked): else the suite's first
        # workers and ./adjust starts all compile trio and the rest at the same time
        session.install("--quiet", *arguments, env={"UV_COMPILE_BYTECODE": "1"})
    stamp.write_text(wanted)
    # and the suite's own bytecode for this Python, by one collection: else each of the
    # four xdist workers rewrites every test module for pytest at once (~3 s of CPU each).
    # Whatever its outcome: a module that does not collect is the suite's to report.
    session.run_install("python", "-m", "pytest", "--collect-only", "-q", "-p",
                        "no:cacheprovider", silent=True, success_codes=range(6))


OLDEST = FOUND[SUPPORTED[0]]
#: The newer Pythons found here: `make test` runs each with the newest versions.
NEWER = [version for version in SUPPORTED[1:] if FOUND[version] is not None]

#: The tag of the suites `make test` runs: each Python once, so that it stays within its
#: budget (tests/README.md). The oldest runs as `lowest`, the edge of both ranges at once
#: (the oldest Python, the oldest dependencies); the newest versions run on every newer
#: one. Only the oldest Python with the newest versions is left to `make test-oldest-newest`
#: (CI). `make test` reports the Pythons found (`-s pythons`: it fails without the
#: oldest), makes these suites' venvs (`-s venvs`, beside mypy), then runs them.
MAKE_TEST = "make-test"


@nox.session
@nox.parametrize("python", [nox.param(found[0], id=version,
                                      tags=[MAKE_TEST] if version in NEWER else [])
                            for version, found in FOUND.items() if found is not None])
def tests(session: nox.Session) -> None:
    """Every layer of the suite, spread over the machine's cores, on one interpreter."""
    install_once(session, suite_requirements())
    session.run("python", "-m", "pytest", "-n", "auto", *session.posargs)


#: The suites `make test` runs, by name: each tagged MAKE_TEST.
MAKE_TEST_SESSIONS = [*(f"tests({version})" for version in NEWER), "lowest"]
#: Bare `nox`: the report, then the suites.
nox.options.sessions = ["pythons", *MAKE_TEST_SESSIONS]


@nox.session(python=False)
def venvs(session: nox.Session) -> None:
    """The venvs of the suites `make test` runs, made side by side (`make venvs`, beside
    mypy): each is mostly one core's work (uv, then one collection that compiles the
    suite's bytecode). Each is its own `nox --install-only`, quiet unless it fails (its
    log: .nox/venv-<session>.log)."""
    logs = ROOT / ".nox"
    logs.mkdir(exist_ok=True)
    started = []
    for name in MAKE_TEST_SESSIONS:
        log = logs / f"venv-{re.sub(r'[^A-Za-z0-9.]+', '-', name).strip('-')}.log"
        with log.open("wb") as out:
            started.append((name, log, subprocess.Popen(
                [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"),
                 "--reuse-existing-virtualenvs", "--install-only", "--session", name],
                stdout=out, stderr=subprocess.STDOUT)))
    failed = [(name, log) for name, log, process in started if process.wait() != 0]
    for name, log in failed:
        session.log(f"{name}: its venv failed (log: {log}):\n{log.read_text()}")
    if failed:
        session.error(f"venvs not made: {', '.join(name for name, _ in failed)}")
    session.log(f"made or kept: {', '.join(MAKE_TEST_SESSIONS)}")


@nox.session(venv_backend="uv", tags=[MAKE_TEST])
@nox.parametrize("python", [OLDEST[0]] if OLDEST is not None else [],
                 ids=[SUPPORTED[0]] if OLDEST is not None else [])
def lowest(session: nox.Session) -> None:
    """The suite on the oldest supported Python with the lowest versions of the
    dependencies that aggregator/requirements.txt allows (uv resolves them), so that the
    declared minimums are versions servo-agg is proven to work with. The test tools come
    after, as they are (newest), and keep the dependencies as they are."""
    install_once(session, ["--resolution", "lowest-direct", "-r", str(REQUIREMENTS)],
                 test_requirements())
    # checked where the suite runs on them (with -R too; --install-only runs nothing)
    for name, lowest_allowed in declared_minimums().items():
        said = session.run("python", "-c", "import importlib.metadata as m, sys; "
                           "print(m.version(sys.argv[1]))", name, silent=True)
        if said is None:  # --install-only
            return
        got = str(said).strip()
        if got != lowest_allowed and not got.startswith(lowest_allowed + "."):
            session.error(f"{name} {got} installed, not the lowest allowed {lowest_allowed}")
        session.log(f"{name} {got}: the lowest version aggregator/requirements.txt allows")
    session.run("python", "-m", "pytest", "-n", "auto", *session.posargs)
