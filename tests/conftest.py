from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support import leftover_processes

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
    return made


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
