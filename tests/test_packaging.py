"""What an install of servo-agg gets: the whole package, one command (bin/servo-agg) that
is `adjust` or `measure` by the name it runs under, and one list of supported Pythons that
pyproject.toml, the README and the CI (noxfile.py) agree on. The wheel itself is built,
installed and run by `make wheel-check` (.ci/wheel_check.py)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, adjust_env, run_adjust, simple_driver, write_driver

PYPROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT: dict[str, Any] = PYPROJECT["project"]


def supported() -> list[str]:
    return [m.group(1) for c in PROJECT["classifiers"]
            if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]


@pytest.mark.unit
def test_every_directory_of_the_package_is_a_package_the_wheel_finds() -> None:
    """packages.find takes only directories with an __init__.py: one without it would be
    left out of the wheel without a word (the checkout and a copy would still work)."""
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["aggregator", "aggregator.*"]
    assert find.get("namespaces") is False
    sources = {path.parent for path in (REPO / "aggregator").rglob("*.py")
               if "__pycache__" not in path.parts}
    missing = sorted(str(folder.relative_to(REPO)) for folder in sources
                     if not (folder / "__init__.py").is_file())
    assert not missing, f"no __init__.py (left out of the wheel): {missing}"


@pytest.mark.unit
def test_the_installed_command_is_our_own_script_not_a_generated_wrapper() -> None:
    """A [project.scripts] entry would have pip write the command, with whatever imports
    that pip's template has: the one script is shipped as it is instead."""
    assert "scripts" not in PROJECT
    assert PYPROJECT["tool"]["setuptools"]["script-files"] == ["bin/servo-agg"]
    from aggregator.entry import cli

    assert callable(cli.console_main)
    assert "from aggregator.entry.cli import console_main\n" in (
        REPO / "bin" / "servo-agg").read_text()
    for launcher in ("adjust", "measure"):
        assert "from aggregator.entry.cli import exit_now, main" in (
            REPO / launcher).read_text()


@pytest.mark.unit
def test_the_supported_pythons_are_consecutive_and_start_at_requires_python() -> None:
    versions = supported()
    assert versions, "no Programming Language :: Python :: 3.N classifier"
    minors = [int(v.split(".")[1]) for v in versions]
    assert minors == list(range(minors[0], minors[0] + len(minors))), versions
    assert PROJECT["requires-python"] == f">={versions[0]}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + versions[0].replace(".", "")
    assert PYPROJECT["tool"]["mypy"]["python_version"] == versions[0]
    assert sys.version_info[:2] >= (3, minors[0])


@pytest.mark.unit
def test_the_readme_states_the_supported_pythons() -> None:
    *rest, last = supported()
    said = f"Python {', '.join(rest)} and {last}" if rest else f"Python {last}"
    text = " ".join((REPO / "README.md").read_text().split())
    assert said in text, f"README.md does not say {said!r}"


@pytest.mark.unit
def test_the_sdist_leaves_the_tests_out() -> None:
    """setuptools adds tests/test*.py to an sdist unless told not to, without the conftest
    and helpers they need."""
    rules = [line.split() for line in (REPO / "MANIFEST.in").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert ["prune", "tests"] in rules


# -- the installed command, run under a symlink's name -----------------------------------

def installed_command(folder: Path) -> Path:
    """bin/servo-agg as pip installs it: the same text, this Python in its `#!` line."""
    script = folder / "servo-agg"
    _, rest = (REPO / "bin" / "servo-agg").read_text().split("\n", 1)
    script.write_text(f"#!{sys.executable}\n{rest}")
    script.chmod(0o755)
    return script


@pytest.mark.e2e
async def test_a_symlink_named_measure_to_the_installed_command_is_measure(
        tmp_path: Path, tag: str) -> None:
    """`ln -s "$(command -v servo-agg)" /servo/measure`: the name seen is the link's, not
    the target's; the servo root is the working directory, with no copy of the package.
    `servo-agg measure` is measure too, its --help named as called."""
    bin_dir, root = tmp_path / "bin", tmp_path / "servo"
    bin_dir.mkdir()
    root.mkdir()
    script = installed_command(bin_dir)
    for front in ("adjust", "measure"):
        (root / front).symlink_to(script)
    write_driver(root, "10web", simple_driver("web", {"cpu": {"type": "range", "value": 1,
                                                              "min": 1, "max": 4}}))
    write_driver(root, "10load", simple_driver("load", {}), folder="measure.d")
    env = adjust_env(tag, PYTHONPATH=str(REPO))  # the package as an install would give it

    measure = await run_adjust(root, "--info", tag=tag, env=dict(env), adjust=root / "measure")
    adjust = await run_adjust(root, "--info", tag=tag, env=dict(env), adjust=root / "adjust")
    assert measure.final["version"].endswith("[10load]"), measure.stderr
    assert adjust.final["version"].endswith("[10web]"), adjust.stderr
    # the subcommand: measure's help, named as called
    by_subcommand = await run_adjust(root, "measure", "--help", tag=tag, env=dict(env),
                                     adjust=script)
    assert by_subcommand.returncode == 0, by_subcommand.stderr
    assert by_subcommand.lines[0].startswith("usage: servo-agg measure [-h]")
    assert "the same program is ./adjust when run under that name" in by_subcommand.stdout_text
    query = await run_adjust(root, "--query", "app", tag=tag, env=dict(env),
                             adjust=root / "adjust")
    assert list(query.final["application"]["components"]) == ["web"], query.stderr
    assert not (root / "aggregator").exists()
