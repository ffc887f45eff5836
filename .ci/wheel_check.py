#!/usr/bin/env python3
"""servo-agg deployed from its wheel, the way a servo image gets it (`make wheel-check`).

1. Builds the sdist and the wheel with `build` (from PyPI, into a venv of its own), from a
   copy of the source tree, so that nothing is written into the checkout.
2. Checks what they hold: every module of the aggregator package and nothing else (no
   tests, no sample drivers, no bench), and `bin/servo-agg` as the one script, as it is.
3. Installs the wheel into a fresh venv and makes a servo root of the sample drivers with
   `adjust` and `measure` symlinked to the installed `servo-agg`, and no copy of the
   package: `--info`, `--version`, `--query`, `--describe`, an adjust and a measure, run
   from the servo root as servo runs them; `servo-agg measure ...` by subcommand too.
4. Does the same with the copy-the-files way (`adjust`, `measure` and `aggregator/` copied
   into a servo root), on the same venv's Python; and starts `--info` and `--version`
   through `adjust` and `measure` copied alone, which load the installed package.
5. Checks that `--info` through the installed `servo-agg` imports nothing that a copied
   `./adjust --info` does not (the script is servo-agg's own, not a wrapper pip writes).
6. Runs the README's recipe for the symlinks' target against the venv (not on PATH) and
   a `--user` install (PYTHONUSERBASE in the temporary directory): each must name the
   script pip wrote.

Needs only this Python (3.11+, with venv) and PyPI; everything it makes is in one
temporary directory, removed at the end. Prints one line per check and a closing
`wheel-check: N passed, N failed`; exits 1 if any failed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: Not source: left out of the copy the sdist is built from.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", ".nox", ".state", "__pycache__",
                                    "*.egg-info", "build", "dist", ".*_cache", ".hypothesis")
#: Each command's limit: a hang fails the check instead of holding CI.
TIMEOUT = 300


class CheckFailed(Exception):
    pass


def must(argv: Sequence[str | Path], *, cwd: Path | None = None, stdin: str = "",
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs argv to its end (within TIMEOUT); CheckFailed, with its output, if it fails."""
    done = subprocess.run([str(a) for a in argv], cwd=cwd, input=stdin, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"`{' '.join(map(str, argv))}` exited {done.returncode}\n"
                          f"{tail(done.stdout)}{tail(done.stderr)}")
    return done


def tail(text: str, lines: int = 30) -> str:
    return "".join(f"    | {line}\n" for line in text.splitlines()[-lines:])


def venv(where: Path) -> Path:
    """A fresh venv of this Python; its python."""
    must([sys.executable, "-m", "venv", where])
    return where / "bin" / "python"


def package_modules() -> set[str]:
    """aggregator/**.py in the checkout, and the package's one data file (the requirements
    --check reads), as paths relative to the repo."""
    return {str(p.relative_to(REPO)) for p in (REPO / "aggregator").rglob("*.py")
            if "__pycache__" not in p.parts} | {"aggregator/requirements.txt"}


def last_json(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise CheckFailed("no output")
    final = json.loads(lines[-1])
    if not isinstance(final, dict):
        raise CheckFailed(f"last line is not a JSON object: {lines[-1]}")
    return final


class WheelCheck:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.passed = 0
        self.failed = 0
        self.dist = work / "dist"
        self.wheel: Path | None = None
        self.sdist: Path | None = None
        self.env: dict[str, str] = {}
        self.bin = work / "servo-venv" / "bin"

    def check(self, what: str, body: Callable[[], str | None]) -> bool:
        started = time.monotonic()
        try:
            note = body()
        except (CheckFailed, subprocess.TimeoutExpired, OSError, ValueError,
                KeyError) as exc:
            self.failed += 1
            print(f"FAIL  {what}: {exc}", flush=True)
            return False
        self.passed += 1
        took = time.monotonic() - started
        print(f"ok    {what} ({took:.1f} s){': ' + note if note else ''}", flush=True)
        return True

    # -- 1. build ------------------------------------------------------------------------

    def build(self) -> str:
        tools = venv(self.work / "build-venv")
        must([tools, "-m", "pip", "install", "--quiet", "build"])
        source = self.work / "source"
        shutil.copytree(REPO, source, ignore=NOT_SOURCE, symlinks=True)
        must([tools, "-m", "build", "--outdir", self.dist, source])
        self.wheel = next(self.dist.glob("servo_agg-*.whl"))
        self.sdist = next(self.dist.glob("servo_agg-*.tar.gz"))
        return f"{self.sdist.name}, {self.wheel.name}"

    # -- 2. contents ---------------------------------------------------------------------

    def wheel_contents(self) -> str:
        assert self.wheel is not None
        with zipfile.ZipFile(self.wheel) as wheel:
            names = wheel.namelist()
            scripts = {n: wheel.read(n) for n in names if ".data/scripts/" in n}
        modules = {n for n in names if n.startswith("aggregator/")}
        missing, extra = package_modules() - modules, modules - package_modules()
        stray = [n for n in names if not n.startswith("aggregator/")
                 and ".dist-info/" not in n and n not in scripts]
        if missing or extra or stray:
            raise CheckFailed(f"missing {sorted(missing)}, not in the checkout "
                              f"{sorted(extra)}, outside the package {stray}")
        # Verbatim but for the #! line, which pip sets to the Python it installs into.
        ours = (REPO / "bin" / "servo-agg").read_bytes().split(b"\n", 1)[1]
        if [n.rsplit("/", 1)[1] for n in scripts] != ["servo-agg"]:
            raise CheckFailed(f"scripts {sorted(scripts)}: not bin/servo-agg alone")
        first, rest = next(iter(scripts.values())).split(b"\n", 1)
        if first != b"#!python":  # what pip replaces with the Python it installs into
            raise CheckFailed(f"servo-agg's first line is {first!r}, not b'#!python'")
        if rest != ours:
            raise CheckFailed("servo-agg in the wheel is not bin/servo-agg as it is")
        return f"{len(modules)} modules of aggregator/, bin/servo-agg as the one script"

    def sdist_contents(self) -> str:
        assert self.sdist is not None
        with tarfile.open(self.sdist) as sdist:
            names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
        missing = package_modules() - names
        unwanted = sorted(n for n in names if n.split("/")[0] in (
            "tests", "bench", "faults", "adjust.d", "measure.d", "examples"))
        if missing or unwanted:
            raise CheckFailed(f"missing {sorted(missing)}; should not hold {unwanted}")
        return f"{len(names)} files, no tests/ or sample drivers"

    # -- 3. installed, symlinked into a servo root ---------------------------------------

    def install(self) -> str:
        assert self.wheel is not None
        python = venv(self.work / "servo-venv")
        must([python, "-m", "pip", "install", "--quiet", self.wheel])
        # servo's environment: its python3 first on PATH; nothing of the checkout
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        self.env["PATH"] = os.pathsep.join([str(self.bin), self.env.get("PATH", "")])
        found = must([python, "-c", "import aggregator; print(aggregator.__file__)"],
                     cwd=self.work, env=self.env).stdout.strip()
        if "site-packages" not in found:
            raise CheckFailed(f"aggregator imported from {found}")
        return f"aggregator from {found}"

    def link_recipe(self) -> str:
        """The README's way to find the installed command for the symlinks, for a venv
        not on PATH and for a --user install: it must name the script pip wrote."""
        found = re.search(r"script=\$\(python3 -c '([^']+)'\)",
                          (REPO / "README.md").read_text())
        if found is None:
            raise CheckFailed("README.md has no `script=$(python3 -c '...')` recipe")
        locate = found.group(1)
        outside = {k: v for k, v in self.env.items() if k != "PATH"}  # the venv not on PATH
        outside["PATH"] = os.defpath
        venv_script = must([self.bin / "python", "-c", locate], cwd=self.work,
                           env=outside).stdout.strip()
        if venv_script != str(self.bin / "servo-agg"):
            raise CheckFailed(f"venv: the recipe gave {venv_script!r}")
        assert self.wheel is not None
        base = getattr(sys, "_base_executable", sys.executable)  # --user needs no venv
        user = dict(outside, PYTHONUSERBASE=str(self.work / "userbase"),
                    PIP_BREAK_SYSTEM_PACKAGES="1")
        must([base, "-m", "pip", "install", "--quiet", "--user", "--no-deps",
              "--no-warn-script-location", self.wheel], env=user)
        user_script = must([base, "-c", locate], cwd=self.work, env=user).stdout.strip()
        if user_script != str(self.work / "userbase" / "bin" / "servo-agg"):
            raise CheckFailed(f"--user: the recipe gave {user_script!r}")
        return f"{venv_script}; {user_script}"

    def servo_root(self, how: str) -> Path:
        """A servo root with the sample drivers and servo-agg put there `how`:
        "installed": adjust and measure symlinked to the venv's servo-agg;
        "copied": adjust, measure and aggregator/ copied from the checkout, the copy's
        version marked, to be sure the copy is what runs;
        "launchers": only adjust and measure copied, which then load the installed package.
        """
        root = self.work / f"servo-{how}"
        for drivers in ("adjust.d", "measure.d"):
            shutil.copytree(REPO / drivers, root / drivers, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        for front in ("adjust", "measure"):
            if how == "installed":
                (root / front).symlink_to(self.bin / "servo-agg")
            else:
                shutil.copy2(REPO / front, root / front)
        if how == "copied":
            shutil.copytree(REPO / "aggregator", root / "aggregator",
                            ignore=shutil.ignore_patterns("__pycache__"))
            init = root / "aggregator" / "__init__.py"
            text = init.read_text()
            marked = text.replace('__version__ = "', '__version__ = "copy-of-', 1)
            if marked == text:
                raise CheckFailed(f"no __version__ to mark in {init}")
            init.write_text(marked)
        return root

    def commands(self, root: Path, how: str) -> None:
        """The commands servo runs, from the servo root, with servo's environment."""
        version = "servo-agg copy-of-" if how == "copied" else "servo-agg "
        adjust_request = (REPO / "examples" / "adjust-request.json").read_text()
        measure_request = (REPO / "examples" / "measure-request.json").read_text()

        def final(*argv: str | Path, stdin: str = "") -> dict[str, Any]:
            return last_json(must(argv, cwd=root, env=self.env, stdin=stdin).stdout)

        def info(*argv: str | Path, drivers: str) -> Callable[[], str]:
            def body() -> str:
                line = final(*argv)
                text = str(line.get("version", ""))
                if not (text.startswith(version) and text.endswith(f"[{drivers}]")
                        and line.get("has_cancel") is True):
                    raise CheckFailed(f"{line}: wanted {version}... [{drivers}]")
                return text
            return body

        def names(argv: tuple[str, ...], found: Callable[[dict[str, Any]], Any],
                  wanted: set[str]) -> Callable[[], str]:
            def body() -> str:
                answer = final(*argv)
                got = set(found(answer))
                if not wanted <= got:
                    raise CheckFailed(f"wanted {sorted(wanted)} in {answer}")
                return ", ".join(sorted(got))
            return body

        def version_line() -> str:
            out = must(["./adjust", "--version"], cwd=root, env=self.env).stdout
            lines = out.splitlines()
            if not (len(lines) == 1 and lines[0].startswith(version)
                    and "web 1.0.0" in lines[0]):
                raise CheckFailed(f"{lines}")
            return lines[0]

        def adjust() -> str:
            answer = final("./adjust", "demo", stdin=adjust_request)
            if answer != {"status": "ok", "reason": "success"}:
                raise CheckFailed(f"{answer}")
            return json.dumps(answer)

        def measure() -> str:
            answer = final("./measure", "demo", stdin=measure_request)
            if answer.get("status") != "ok" or "throughput" not in answer.get("metrics", {}):
                raise CheckFailed(f"{answer}")
            return "status ok, metrics " + ", ".join(sorted(answer["metrics"]))

        web_cache, loadgen_metrics = "10-web, 20-cache", "10-loadgen, 20-metrics"
        self.check(f"{how}: ./adjust --info", info("./adjust", "--info", drivers=web_cache))
        self.check(f"{how}: ./measure --info",
                   info("./measure", "--info", drivers=loadgen_metrics))
        if how == "launchers":
            self.check(f"{how}: ./adjust --version", version_line)
            return
        self.check(f"{how}: ./adjust --version", version_line)
        self.check(f"{how}: ./adjust --query demo", names(
            ("./adjust", "--query", "demo"), lambda a: a["application"]["components"],
            {"web", "cache"}))
        self.check(f"{how}: ./measure --describe demo", names(
            ("./measure", "--describe", "demo"), lambda a: a["metrics"],
            {"throughput", "p99_latency", "requests"}))
        self.check(f"{how}: ./adjust demo < examples/adjust-request.json", adjust)
        self.check(f"{how}: ./measure demo < examples/measure-request.json", measure)
        if how == "installed":
            servo_agg = self.bin / "servo-agg"
            self.check("installed: servo-agg measure --info (the front-end by subcommand)",
                       info(servo_agg, "measure", "--info", drivers=loadgen_metrics))
            self.check("installed: servo-agg --info (adjust without a subcommand)",
                       info(servo_agg, "--info", drivers=web_cache))

    def info_imports(self, installed: Path, copied: Path) -> str:
        """`--info` through the installed servo-agg imports what it does through a copied
        ./adjust, and nothing more: no installer's wrapper in between (for the time, see
        bench/README.md)."""
        def modules(root: Path) -> dict[str, int]:
            """Each module --info imports: its cumulative import time, in µs."""
            err = must([self.bin / "python", "-X", "importtime", root / "adjust", "--info"],
                       cwd=root, env=self.env).stderr
            found = {}
            for line in err.splitlines():
                parts = line.split("|")
                if len(parts) == 3 and parts[1].strip().isdigit():
                    found[parts[2].strip()] = int(parts[1])
            return found

        through_install, through_copy = modules(installed), modules(copied)
        if "aggregator.entry.info" not in through_install:
            raise CheckFailed("-X importtime shows no aggregator.entry.info: not --info's path")
        extra = sorted(set(through_install) - set(through_copy))
        if extra:
            raise CheckFailed(f"the installed servo-agg also imports {', '.join(extra)}")
        return f"the same {len(through_install)} modules installed and copied"

    def main(self) -> int:
        if not self.check("python -m build: sdist and wheel", self.build):
            return self.close()
        self.check("the wheel holds the whole package and only it", self.wheel_contents)
        self.check("the sdist holds the package, not the tests", self.sdist_contents)
        if not self.check("pip install the wheel into a fresh venv", self.install):
            return self.close()
        self.check("README's link recipe finds servo-agg (venv not on PATH, --user)",
                   self.link_recipe)
        installed = self.servo_root("installed")
        self.commands(installed, "installed")
        copied = self.servo_root("copied")
        self.commands(copied, "copied")
        self.commands(self.servo_root("launchers"), "launchers")
        self.check("--info imports nothing more installed than copied",
                   lambda: self.info_imports(installed, copied))
        return self.close()

    def close(self) -> int:
        print(f"wheel-check: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="servo-agg-wheel-check-") as work:
        return WheelCheck(Path(work)).main()


if __name__ == "__main__":
    sys.exit(main())
