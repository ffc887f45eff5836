from __future__ import annotations

import _posixsubprocess
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.support import leftover_processes

# Bytecode caches are written even where PYTHONDONTWRITEBYTECODE is set (tests/README.md):
# without them every ./adjust a test starts compiles the package anew (~70 ms of CPU, a
# quarter of its start), and every xdist worker rewrites and compiles every test module
# (~3 s). Popped here, before xdist starts its workers and before any test starts a process.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# How many examples each property test tries: the suite's profile (every run, by every
# developer) tries hypothesis's usual hundred, HYPOTHESIS_PROFILE=thorough five times that
# (after changing a property's code, or its strategy). No deadline: a loaded machine is slow.
settings.register_profile("suite", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

#: The test layers, described in pyproject.toml; every test is in exactly one of them. In
#: the order tests are handed out: the slow layer first, so that xdist's workers end on
#: short tests instead of one worker finishing a long e2e test alone.
LAYERS = ("e2e", "supervision", "unit")


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
    layer = layer_of(request.node)
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


# -- keeping the suite fast (tests/README.md): the order, the workers, the layer report ----

def layer_of(item: pytest.Item) -> str:
    return next(m.name for m in item.iter_markers() if m.name in LAYERS)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """e2e first, then supervision, then unit, in each xdist worker's share; each layer in
    its collection order (every worker computes the same order). worksteal hands each
    worker one contiguous part of the list at the start, so the list is the workers'
    shares one after another, each a like part of every layer: every worker starts on e2e
    tests, whose waits the others' computing fills, and the run ends on short unit tests.
    (With the layers whole, the first worker held every e2e test, and the suite ended on
    its last ones, waiting on real timeouts with the other cores idle.) Runs first, so
    that --lf and --ff still put the failed tests first."""
    layers: dict[str, list[pytest.Item]] = {layer: [] for layer in LAYERS}
    for item in items:
        layers[layer_of(item)].append(item)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    items[:] = [item for share in range(workers) for tests in layers.values()
                for item in tests[share * len(tests) // workers:
                                  (share + 1) * len(tests) // workers]]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per core (PYTEST_XDIST_AUTO_NUM_WORKERS overrides it). An e2e
    test spends about half its time waiting (for drivers, for deadlines), so a core has
    work for a second worker meanwhile."""
    return 2 * len(os.sched_getaffinity(0))


def _cpu_seconds() -> float:
    """CPU time of this process and of every child it reaped (./adjust, and through it,
    its drivers), user and system."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


CPU_AT_START = pytest.StashKey[float]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Each test's CPU seconds, setup to teardown, ride on its teardown report (which xdist
    carries from the worker to the report below)."""
    report = yield
    if call.when == "setup":
        item.stash[CPU_AT_START] = _cpu_seconds()
    elif call.when == "teardown" and CPU_AT_START in item.stash:
        report.user_properties.append(("cpu", _cpu_seconds() - item.stash[CPU_AT_START]))
    return report


@dataclass
class LayerFigures:
    tests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    slowest: list[tuple[float, str]] = field(default_factory=list)


class LayerReport:
    """Per layer: how many tests ran, their summed time and CPU, and the slowest ones, at the
    end of every run (the next slowdown shows where it is)."""

    SLOWEST = 3

    def __init__(self) -> None:
        self.figures = {layer: LayerFigures() for layer in LAYERS}
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        layer = next((name for name in LAYERS if name in report.keywords), None)
        if layer is None:
            return
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        if report.when != "teardown":
            return
        figures = self.figures[layer]
        seconds = self.seconds.pop(report.nodeid)
        figures.tests += 1
        figures.seconds += seconds
        figures.cpu += sum(value for name, value in report.user_properties
                           if name == "cpu" and isinstance(value, float))
        figures.slowest = sorted([*figures.slowest, (seconds, report.nodeid)],
                                 reverse=True)[:self.SLOWEST]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        write = terminalreporter.write_line
        terminalreporter.section("time per layer (each test's setup, call and teardown, summed)")
        write(f"{'layer':12} {'tests':>6} {'seconds':>8} {'cpu s':>8}   slowest")
        for layer, figures in self.figures.items():
            if not figures.tests:
                continue
            slowest = [f"{nodeid.rpartition('/')[2]} {seconds:.1f} s"
                       for seconds, nodeid in figures.slowest]
            write(f"{layer:12} {figures.tests:6d} {figures.seconds:8.1f} {figures.cpu:8.1f}"
                  f"   {slowest[0]}")
            for line in slowest[1:]:
                write(" " * 40 + line)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the report is the controller's (or a lone run's)
        config.pluginmanager.register(LayerReport(), "layer-report")
