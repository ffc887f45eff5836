"""A test finds what it started by its tag, whatever else runs on the machine: the scan
of /proc (the tag fixture's leak check, tests.support.tagged_pids) looks at every process,
other xdist workers' and other jobs' included, and must not trip over any of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TAG_VAR, alive, tagged_pids

pytestmark = pytest.mark.e2e


def test_a_process_whose_name_is_not_utf8_is_found_by_its_tag(tmp_path: Path,
                                                             tag: str) -> None:
    # Python under an odd name: its name in /proc/*/stat is the name it was started by.
    odd = os.path.join(os.fsencode(tmp_path), b"\xffnot-utf8")
    os.symlink(os.path.realpath(sys.executable), odd)
    # It says so once it runs: the kernel renames a process before its new environment
    # is readable, so the name in /proc is not yet proof that the exec is over.
    program = "import sys, time; print('up', flush=True); time.sleep(60)"
    proc = subprocess.Popen([odd, "-I", "-S", "-c", program], stdout=subprocess.PIPE,
                            env={**os.environ, TAG_VAR: tag})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"up\n"
        assert Path(f"/proc/{proc.pid}/stat").read_bytes().startswith(
            f"{proc.pid} (".encode() + b"\xff")
        assert tagged_pids(tag) == [proc.pid]
        assert alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
