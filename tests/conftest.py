from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import leftover_processes


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
