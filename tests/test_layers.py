"""The layering rules, enforced: a layer imports only layers below it, and the modules
each layer declares trio-free (its TRIO_FREE) load neither trio nor yaml."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, TAG_VAR


def tagged(tag: str) -> dict[str, str]:
    return {**os.environ, TAG_VAR: tag}


PACKAGE = REPO / "aggregator"

#: Each layer and the layers it may import (besides itself and the shared leaves).
ALLOWED = {
    "protocol": set(),
    "process": set(),
    "root": {"protocol"},
    "supervision": {"protocol", "process", "root"},
    "adjust": {"protocol", "process", "root", "supervision"},
    "measure": {"protocol", "process", "root", "supervision"},  # never adjust, nor it measure
    # the record of every run: supervision's plain facts in, files out; no front-end
    "journal": {"protocol", "root", "supervision"},
    "tools": {"protocol", "process", "root", "supervision", "adjust", "measure", "journal"},
    "entry": {"protocol", "process", "root", "supervision", "adjust", "measure", "journal",
              "tools"},
}
#: Importable from anywhere: the version and the table of limits, both code-free.
LEAVES = {"aggregator", "aggregator.limits"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported(path: Path) -> set[str]:
    """Every aggregator module `path` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import; layers import by full name"
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n == "aggregator" or n.startswith("aggregator.")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


@pytest.mark.unit
def test_every_module_belongs_to_a_layer_or_is_a_leaf() -> None:
    stray = [m for m in modules() if layer_of(m) is None and m not in LEAVES
             and m != "aggregator.__main__"]
    assert stray == []


@pytest.mark.unit
def test_a_layer_imports_only_the_layers_below_it() -> None:
    crossings = []
    for module, path in modules().items():
        layer = layer_of(module)
        if layer is None:
            continue
        for target in imported(path):
            to = layer_of(target)
            if target in LEAVES or to == layer or to in ALLOWED[layer]:
                continue
            crossings.append(f"{module} imports {target}")
    assert crossings == []


@pytest.mark.unit
def test_the_leaves_import_nothing_of_the_package() -> None:
    for leaf in LEAVES:
        path = PACKAGE / ("__init__.py" if leaf == "aggregator" else "limits.py")
        assert imported(path) == set(), leaf


@pytest.mark.unit
def test_no_two_modules_import_each_other() -> None:
    graph = {m: imported(p) for m, p in modules().items()}
    cycles = [(a, b) for a, deps in graph.items() for b in deps
              if a < b and a in graph.get(b, set())]
    assert cycles == []


def declared_trio_free() -> list[str]:
    names = []
    for layer in ALLOWED:
        package = importlib.import_module(f"aggregator.{layer}")
        names += [f"aggregator.{layer}.{m}" for m in package.TRIO_FREE]
    return names


@pytest.mark.unit
def test_the_declared_trio_free_modules_exist() -> None:
    known = modules()
    assert [m for m in declared_trio_free() if m not in known] == []


PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
loaded = {}
for name in sys.argv[2:]:
    importlib.import_module(name)
    loaded[name] = sorted(m for m in ("trio", "yaml") if m in sys.modules)
print(json.dumps(loaded))
"""

#: Every module each one loads, each imported in a child forked before any of them was: as
#: fresh as a new interpreter for what it loads, for the price of a fork instead of a
#: Python start.
PROBE_EACH_ALONE = """
import importlib, json, os, sys
sys.path.insert(0, sys.argv[1])
loaded = {}
for name in sys.argv[2:]:
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        importlib.import_module(name)
        os.write(write_end, json.dumps(sorted(sys.modules)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        loaded[name] = json.loads(answer.read())
    os.wait()
print(json.dumps(loaded))
"""


def loaded_alone(names: list[str], tag: str) -> dict[str, list[str]]:
    """Every module each of `names` loads, imported alone (PROBE_EACH_ALONE)."""
    done = subprocess.run([sys.executable, "-c", PROBE_EACH_ALONE, str(REPO), *names],
                          capture_output=True, text=True, check=True, env=tagged(tag))
    loaded: dict[str, list[str]] = json.loads(done.stdout)
    assert sorted(loaded) == sorted(names)
    return loaded


def among(loaded: list[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of `loaded` that are one of `packages` or inside one."""
    return [m for m in loaded if any(m == p or m.startswith(f"{p}.") for p in packages)]


@pytest.mark.e2e
def test_a_trio_free_module_loads_neither_trio_nor_yaml(tag: str) -> None:
    """Each alone: one module's imports must not hide another's."""
    loaded = loaded_alone(declared_trio_free(), tag)
    assert {module: got for module, all_loaded in loaded.items()
            if (got := among(all_loaded, ("trio", "yaml")))} == {}


#: What the start of a command must not load: the other front-end's modules, and those
#: only another command uses. servo starts a process for every call, and every start pays
#: the import of each module it loads (ARCHITECTURE.md, "Start-up cost").
NOT_LOADED_BY = {
    # launch._job imports a front-end's modules for that front-end's runs only
    "aggregator.entry.launch": ("aggregator.adjust", "aggregator.measure",
                                "aggregator.protocol.measure", "aggregator.tools"),
    # an adjust run's job and commands (the chosen command imports its own modules)
    "aggregator.adjust.calls": ("aggregator.measure", "aggregator.protocol.measure"),
    "aggregator.adjust.commands": ("aggregator.measure", "aggregator.protocol.measure",
                                   "aggregator.adjust.apply", "aggregator.adjust.dry_run"),
    # a measure run's (the layers keep adjust out of it)
    "aggregator.measure.commands": ("aggregator.measure.describe", "aggregator.measure.run",
                                    "aggregator.measure.dry_run"),
}


@pytest.mark.e2e
def test_a_command_loads_neither_the_other_front_end_nor_other_commands(tag: str) -> None:
    loaded = loaded_alone(list(NOT_LOADED_BY), tag)
    assert "aggregator.adjust.queries" in loaded["aggregator.adjust.commands"]  # it looks
    assert {module: got for module, packages in NOT_LOADED_BY.items()
            if (got := among(loaded[module], packages))} == {}


@pytest.mark.e2e
def test_no_module_loads_yaml_just_by_being_imported(tag: str) -> None:
    """yaml is loaded only when a config.yaml section must be read, never at import."""
    every = [m for m in modules() if m != "aggregator.__main__"]
    done = subprocess.run([sys.executable, "-c", PROBE, str(REPO), *every],
                          capture_output=True, text=True, check=True, env=tagged(tag))
    assert {m: got for m, got in json.loads(done.stdout).items() if "yaml" in got} == {}
