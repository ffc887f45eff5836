"""A test finds what it started by its tag, whatever else runs on the machine: the scan
of /proc (the tag fixture's leak check, tests.support.tagged_pids) looks at every process,
other xdist workers' and other jobs' included, and must not trip over any of them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import TAG_VAR, alive, tagged_pids

pytestmark = pytest.mark.e2e


def test_a_process_whose_name_is_not_utf8_is_found_by_its_tag(tmp_path: Path,
                                                             tag: str) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    odd = os.path.join(os.fsencode(tmp_path), b"\xffnot-utf8")  # its name in /proc/*/stat
    os.symlink(sleep, odd)
    proc = subprocess.Popen([odd, "60"], env={**os.environ, TAG_VAR: tag})
    try:
        assert Path(f"/proc/{proc.pid}/stat").read_bytes().startswith(
            f"{proc.pid} (".encode() + b"\xff")
        assert tagged_pids(tag) == [proc.pid]
        assert alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()
