"""`--check`'s runtime section (#16.5, review 1 defect 9): the program a driver's
`#!/usr/bin/env ...` line runs, read as Linux and GNU env read it, and the dependencies
against their minimums, prometheus-client counting only where metrics_file is set."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest

from aggregator.root.config import AggregatorConfig
from aggregator.root.discovery import Driver
from aggregator.tools import check, runtime
from aggregator.tools.check import Report, check_runtime
from aggregator.tools.env_line import EnvRefusal, env_line, split_string
from aggregator.tools.runtime import UnrunLine

pytestmark = pytest.mark.unit

DEFAULT_PATH = os.confstr("CS_PATH") or os.defpath


@pytest.mark.parametrize(("argument", "name", "search_path"), [
    ("python3", "python3", None),
    ("-S PYTHONUNBUFFERED=1 python3", "python3", None),  # the reviewer's working driver
    ("-S -u NAME python3", "python3", None),
    ("-S -uNAME python3 -u", "python3", None),
    ("-S --unset=NAME python3", "python3", None),
    ("-S -- python3 -u", "python3", None),
    ("-vS python3", "python3", None),
    ("--split-string=python3 -u", "python3", None),
    ("--spl=python3", "python3", None),  # getopt takes a unique prefix
    ("-Spython3", "python3", None),
    ("-S -v -S python3", "python3", None),
    ("-S --default-signal python3", "python3", None),  # an optional argument: not the next
    ("-S --block-signal=INT python3", "python3", None),
    ("-S python3 # a comment", "python3", None),
    ("-S python3\\c -u", "python3", None),
    ("-S 'my python' -u", "my python", None),
    ("-S \"py\"thon3", "python3", None),
    ("-S ${PY} -u", "python3.12", None),
    ("-S -i python3", "python3", DEFAULT_PATH),  # no PATH left: the system's default
    ("-S-i python3", "python3", DEFAULT_PATH),
    ("-S -u PATH python3", "python3", DEFAULT_PATH),
    ("-S -i PATH=/opt/py/bin python3", "python3", "/opt/py/bin"),
    ("-S PATH=/opt/py/bin:/usr/bin python3", "python3", "/opt/py/bin:/usr/bin"),
    ("-S -i - python3", "python3", DEFAULT_PATH),
])
def test_the_program_an_env_line_runs(argument: str, name: str,
                                      search_path: str | None) -> None:
    line = env_line(argument, {"PY": "python3.12", "PATH": "/usr/bin"})
    assert (line.name, line.search_path) == (name, search_path)


@pytest.mark.parametrize(("argument", "says"), [
    # Linux gives env the rest of the line as ONE argument: without -S, these run no python3
    ("-u NAME python3", "runs the driver itself again"),  # unsets "NAME python3"
    ("PYTHONUNBUFFERED=1 python3", "runs the driver itself again"),  # sets it to "1 python3"
    ("-i python3", "invalid option -- ' '"),
    ("-- python3", "option '-- python3' is unrecognized"),
    ("python3 -u", "env looks for a program named 'python3 -u'"),
    ("-C /nonexistent/dir python3", "cannot change directory to ' /nonexistent/dir python3'"),
    ("-", "runs the driver itself again"),
    # env's own refusals
    ("-S 'python3", "no terminating quote"),
    ("-S $PY", "only ${VARNAME} expansion is supported"),
    ("-S \\python3", "invalid backslash"),
    ("-S --i python3", "option '--i' is ambiguous"),
    ("-S --argv0=x python3", "option '--argv0' is unrecognized"),
    ("-S -a x python3", "invalid option -- 'a'"),
    ("-S -0 python3", "cannot specify --null (-0) with command"),
    ("-S --help", "runs nothing"),
    ("-S", "-S has no argument on the line"),
    ("-S -u", "-u has no argument on the line"),
    ("-S #python3", "runs the driver itself again"),
])
def test_an_env_line_that_runs_no_interpreter(argument: str, says: str) -> None:
    with pytest.raises(EnvRefusal) as refused:
        env_line(argument, {"PY": "python3"})
    assert says in str(refused.value)


def test_split_string_as_gnu_env_splits() -> None:
    assert split_string(" a\\_b  'c d'\"e\\tf\" ${X}y\\$ # gone", {"X": "x"}) == [
        "a", "b", "c de\tf", "xy$"]
    assert split_string("'it\\'s' \"\\_\"", {}) == ["it's", " "]
    assert split_string("\"\"", {}) == [""]


@pytest.mark.parametrize(("argument", "fix"), [
    ("-u NAME python3", "#!/usr/bin/env -S -u NAME python3 runs python3"),
    ("python3 -u", "#!/usr/bin/env -S python3 -u runs python3"),
    ("-S 'python3", ""),  # already split: no fix to offer
    ("-S -0 python3", ""),
])
def test_the_fix_for_an_unsplit_line(argument: str, fix: str) -> None:
    found = UnrunLine("10-web", argument, "").fix({})
    assert found.startswith(fix) and bool(found) == bool(fix)


def _script(root: Path, name: str, shebang: str) -> Driver:
    path = root / name
    path.write_text(f"{shebang}\nprint('never run here')\n")
    return Driver(name, path)


def test_the_runtime_section_reads_env_lines_as_env_does(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python3"
    python.write_text("")
    python.chmod(0o755)
    drivers = [_script(tmp_path, "10-plain", "#!/usr/bin/env python3"),
               _script(tmp_path, "20-unbuffered", "#!/usr/bin/env -S PYTHONUNBUFFERED=1 "
                                                  "python3"),
               _script(tmp_path, "30-unsplit", "#!/usr/bin/env -u NAME python3"),
               _script(tmp_path, "40-own-path", f"#!/usr/bin/env -S -i PATH={bin_dir} "
                                                "python3 -u"),
               _script(tmp_path, "50-sh", "#!/bin/sh")]
    report = Report()
    check_runtime(report, {"PATH": f"{bin_dir}"}, drivers)
    text = "\n".join(report.lines)
    assert (f"[ok]   #!/usr/bin/env python3 (10-plain, 20-unbuffered) runs {python}, first "
            "on the drivers' PATH") in text
    assert (f"[ok]   #!/usr/bin/env python3 (40-own-path) runs {python}, first on the PATH "
            f"their line sets ({bin_dir})") in text
    assert ("[FAIL] #!/usr/bin/env -u NAME python3 (30-unsplit): runs no interpreter: it "
            "names no program, so env runs the driver itself again") in text
    assert ("the kernel gives env all of it as one argument; #!/usr/bin/env -S -u NAME "
            "python3 runs python3") in text
    assert "PYTHONUNBUFFERED=1" not in text  # never taken for the interpreter
    assert "50-sh" not in text
    assert sum(f.status == "fail" and f.name == "runtime" for f in report.findings) == 1


def test_prometheus_client_is_found_by_its_module_without_metadata(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy without metadata: the module is what tells (it has no __version__)."""
    def no_metadata(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", no_metadata)
    assert runtime.installed("prometheus-client") == (True, None)
    assert runtime.installed("PyYAML")[0]
    assert runtime.installed("no-such-distribution") == (False, None)


@pytest.mark.parametrize(("state", "metrics_file", "level"), [
    ((False, None), None, "note"), ((False, None), "m.prom", "warn"),
    ((True, "0.4"), None, "note"), ((True, "0.4"), "m.prom", "warn"),
    ((True, None), None, "note"), ((True, None), "m.prom", "warn"),
    ((True, "0.26.0"), "m.prom", "ok"),
])
def test_prometheus_client_counts_only_where_metrics_file_is_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: tuple[bool, str | None],
        metrics_file: str | None, level: str) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("prometheus-client>=0.5\n")
    monkeypatch.setattr(runtime, "installed", lambda name: state)
    monkeypatch.setattr(check, "dependencies", lambda: runtime.dependencies(requirements))
    report = Report()
    check_runtime(report, {"PATH": ""}, [], AggregatorConfig(metrics_file=metrics_file))
    (line,) = [line for line in report.lines if "prometheus-client" in line]
    assert line.strip().startswith(f"[{level}]"), line
    if level != "ok":
        assert ("; metrics_file is set, which needs it" in line) == bool(metrics_file)
        assert ("; only metrics_file needs it, and it is not set here" in line) == (
            not metrics_file)
    assert report.problems == (level == "FAIL")
