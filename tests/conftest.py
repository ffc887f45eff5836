from __future__ import annotations

import _posixsubprocess
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import leftover_processes

# Bytecode caches are written even where PYTHONDONTWRITEBYTECODE is set (tests/README.md):
# without them every ./adjust a test starts compiles the package anew (~70 ms of CPU, more
# than a third of its start), and every xdist worker rewrites and compiles every test module
# (~3 s). Popped here, before xdist starts its workers and before any test starts a process.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

#: The test layers, described in pyproject.toml; every test is in exactly one of them.
LAYERS = ("unit", "supervision", "e2e")


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector) -> Generator[None, object, object]:
    """A test in no layer, or in two, fails the collection of its module (with or without
    xdist, whatever -m selects): `-m unit` (make test-fast) and `-m e2e` must select what
    they say, and a new test must not slip through unmarked."""
    made = yield
    for item in made if isinstance(made, list) else [made]:
        if not isinstance(item, pytest.Item):
            continue  # a class: its tests come through here in turn
        layers = sorted({mark.name for mark in item.iter_markers() if mark.name in LAYERS})
        if len(layers) != 1:
            raise collector.CollectError(
                f"{item.nodeid}: {' and '.join(layers) or 'no layer marker'}; every test "
                f"needs exactly one of {', '.join(LAYERS)} (pytestmark = pytest.mark.<layer> "
                "in its module, or on each test where a module mixes layers; the layers are "
                "described in pyproject.toml)")
        if layers == ["e2e"] and "tag" not in getattr(item, "fixturenames", ()):
            raise collector.CollectError(
                f"{item.nodeid}: an e2e test uses the tag fixture, and puts the tag in the "
                "environment of what it starts, so that a process it leaves behind fails it")
    return made


class LayerBroken(BaseException):
    """A unit or supervision test did what only an e2e test may (not an Exception, so that
    code under test cannot swallow it)."""


#: Ways to start a process; a test in the unit or supervision layer uses none of them.
PROCESS_STARTERS: tuple[tuple[Any, str], ...] = (
    (subprocess.Popen, "_execute_child"),  # subprocess, and trio's open_process/run_process
    (_posixsubprocess, "fork_exec"), (os, "fork"), (os, "forkpty"), (os, "posix_spawn"),
    (os, "posix_spawnp"), (os, "system"),
)


@pytest.fixture(autouse=True)
def layer_is_kept(request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Holds unit and supervision tests to their layer: no process (those are e2e), and in
    unit no real sleep either (supervision sleeps on trio's MockClock)."""
    layer = next(m.name for m in request.node.iter_markers() if m.name in LAYERS)
    if layer == "e2e":
        yield
        return
    broken: list[str] = []

    def refuse(what: str, why: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            broken.append(what)
            raise LayerBroken(f"{what}() in a {layer} test: {why}")
        return refused

    for owner, name in PROCESS_STARTERS:
        if hasattr(owner, name):
            monkeypatch.setattr(owner, name, refuse(f"{owner.__name__}.{name}",
                                                    "a test that starts a process is e2e"))
    if layer == "unit":
        monkeypatch.setattr(time, "sleep", refuse(
            "time.sleep", "a unit test does not sleep (on trio's MockClock it is supervision)"))
    yield
    assert not broken, f"a {layer} test called {', '.join(broken)}: see tests/conftest.py"


@pytest.fixture
def tag() -> Iterator[str]:
    """A unique mark in the environment of everything a test starts; the test fails if any
    process carrying it is still alive afterwards (a leaked process is a failing test)."""
    value = uuid.uuid4().hex
    yield value
    leaked = leftover_processes(value)
    assert not leaked, f"processes left behind: {leaked}"


@pytest.fixture
def servo_root(tmp_path: Path) -> Path:
    """An empty servo root with an empty adjust.d."""
    (tmp_path / "adjust.d").mkdir()
    return tmp_path

