"""`--info` costs Python's start and little more: what it imports, checked by name.

servo runs `--info` before every command. Each of these modules costs it milliseconds
(re alone ~2 ms, dataclasses with inspect ~5 ms, enum ~3 ms), so none may be loaded on
the way to the answer, unless config.yaml really has to be parsed (then yaml and the
config's types are what that costs). No timing here: a busy machine would make it flaky;
bench/run.py measures the time.

The probe runs the entry point under `python -S`: without site, nothing is pre-imported
(the editable install's finder loads pathlib and re at every start of the venv's python,
which would hide them), so every module in sys.modules at the end is --info's doing or
Python's own core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from aggregator import __version__
from tests.support import REPO, adjust_env, write_driver

pytestmark = pytest.mark.e2e

#: Never on the way to --info's answer.
FORBIDDEN = ("trio", "yaml", "json", "re", "dataclasses", "inspect", "pathlib", "enum",
             "typing")
#: When config.yaml moves or disables drivers, it must be parsed: yaml and the config's
#: types are allowed then, trio still is not.
FORBIDDEN_WITH_PARSE = ("trio",)

PROBE = """
import sys
sys.path[:0] = [sys.argv[1]] + sys.argv[2:3]  # the repo; yaml's site-packages, if given
from aggregator.entry.cli import main
code = main(["--info", "app"], program=sys.argv[3])
sys.stdout.flush()
sys.stderr.write(" ".join(sorted(sys.modules)))
sys.exit(code)
"""


def info_modules(root: Path, tag: str, program: str) -> tuple[dict[str, object], set[str]]:
    """--info's answer and every module loaded by the end of it."""
    site_packages = sysconfig.get_paths()["purelib"]  # for yaml, without its .pth files
    done = subprocess.run(
        [sys.executable, "-S", "-c", PROBE, str(REPO), site_packages, program],
        cwd=root, env=adjust_env(tag), capture_output=True, text=True, timeout=30,
        check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, lines
    answer: dict[str, object] = json.loads(lines[0])
    return answer, set(done.stderr.split())


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


CONFIGS = {
    "no config.yaml": None,
    "config.yaml without an aggregator section": "web:\n  replicas: 3\ncache: {size: 64}\n",
    "an aggregator section that leaves the drivers alone":
        "web:\n  replicas: 3\naggregator:\n  parallel_queries: true\n",
}


@pytest.mark.parametrize("front", ["adjust", "measure"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_info_imports_nothing_it_does_not_need(tmp_path: Path, tag: str, front: str,
                                               config: str) -> None:
    write_driver(tmp_path, "01web", "", folder=f"{front}.d")
    write_driver(tmp_path, "02cache", "", folder=f"{front}.d")
    write_driver(tmp_path, "notes.txt", "", folder=f"{front}.d", mode=0o644)
    text = CONFIGS[config]
    if text is not None:
        (tmp_path / "config.yaml").write_text(text)
    answer, modules = info_modules(tmp_path, tag, str(REPO / front))
    assert answer == {"version": f"servo-agg {__version__} [01web, 02cache]",
                      "has_cancel": True}
    assert "aggregator.entry.info" in modules  # the probe is looking at the right thing
    assert loaded(modules, FORBIDDEN) == []


@pytest.mark.parametrize("front", ["adjust", "measure"])
def test_info_parses_a_section_that_moves_the_drivers_and_still_loads_no_trio(
        tmp_path: Path, tag: str, front: str) -> None:
    write_driver(tmp_path, "01web", "", folder="elsewhere")
    write_driver(tmp_path, "02off", "", folder="elsewhere")
    section = ("drivers_dir: elsewhere\n  drivers: {02off: {enabled: false}}" if front == "adjust"
               else "measure:\n    drivers_dir: elsewhere\n    drivers: {02off: {enabled: false}}")
    (tmp_path / "config.yaml").write_text(f"aggregator:\n  {section}\n")
    answer, modules = info_modules(tmp_path, tag, str(REPO / front))
    assert answer == {"version": f"servo-agg {__version__} [01web]", "has_cancel": True}
    assert "yaml" in modules  # parsed for real: the probe can see yaml when it is there
    assert loaded(modules, FORBIDDEN_WITH_PARSE) == []


def imported_by(argv: list[str], cwd: Path, tag: str) -> set[str]:
    """Every module Python imports running argv under `python -S -X importtime`."""
    done = subprocess.run([sys.executable, "-S", "-X", "importtime", *argv], cwd=cwd,
                          env=adjust_env(tag, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return {parts[2].strip() for line in done.stderr.splitlines()
            if len(parts := line.split("|")) == 3 and parts[1].strip().isdigit()}


@pytest.mark.parametrize("launcher", ["adjust", "measure", "bin/servo-agg"])
def test_the_launchers_import_nothing_on_the_way_to_info(tmp_path: Path, tag: str,
                                                        launcher: str) -> None:
    """The files servo starts (the copied launchers, the installed command) add no import
    of their own to --info's: what a generated wrapper would (pip's imported re)."""
    write_driver(tmp_path, "01web", "", folder="adjust.d")
    write_driver(tmp_path, "01web", "", folder="measure.d")
    python_alone = imported_by(["-c", "pass"], tmp_path, tag)
    through = imported_by([str(REPO / launcher), "--info", "app"], tmp_path, tag)
    assert "aggregator.entry.info" in through  # the probe is looking at the right thing
    assert loaded(through - python_alone, FORBIDDEN) == []
