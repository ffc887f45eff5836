"""The sample drivers shipped in adjust.d/ work end to end, as `make demo` shows."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from tests.fault_support import run_watched
from tests.support import AGGREGATOR, REPO, adjust_env, run_adjust, tagged_pids

pytestmark = pytest.mark.e2e

REQUEST = (REPO / "examples" / "adjust-request.json").read_text()


@pytest.fixture
def demo_root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "adjust.d", tmp_path / "adjust.d",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def settings(query: dict[str, object]) -> dict[str, object]:
    components = query["application"]["components"]  # type: ignore[index]
    return {f"{c}.{s}": spec["value"] for c, body in components.items()
            for s, spec in body["settings"].items()}


async def test_version_names_both_sample_drivers(demo_root: Path, tag: str) -> None:
    run = await run_adjust(demo_root, "--version", tag=tag)
    assert run.returncode == 0, run.stderr
    assert run.lines == [f"{AGGREGATOR} (10-web web 1.0.0, 20-cache cache 1.0.0)"]


async def test_adjust_shows_in_the_next_query(demo_root: Path, tag: str) -> None:
    before = await run_adjust(demo_root, "--query", "demo", tag=tag)
    assert settings(before.final)["web.cpu"] == 1.0
    run = await run_adjust(demo_root, "demo", tag=tag, stdin=REQUEST)
    assert run.returncode == 0, run.stderr
    assert run.final == {"status": "ok", "reason": "success"}
    messages = [p["message"] for p in run.progress]
    assert any(m.startswith("10-web: applying") for m in messages)
    assert any(m.startswith("20-cache: applying") for m in messages)
    after = await run_adjust(demo_root, "--query", "demo", tag=tag)
    assert settings(after.final) == {
        "web.cpu": 2.0, "web.memory": 2.0, "web.replicas": 4,
        "cache.size": 512, "cache.eviction_policy": "allkeys-lfu",
    }
    assert (demo_root / ".state" / "web.json").is_file()


async def test_sample_driver_rejects_out_of_range(demo_root: Path, tag: str) -> None:
    request = {"application": {"components": {"web": {"settings": {"cpu": {"value": 64}}}}}}
    run = await run_adjust(demo_root, "demo", tag=tag, stdin=json.dumps(request))
    assert run.returncode == 1
    assert run.final["status"] == "rejected"
    assert "10-web" in run.final["message"] and "cpu=64" in run.final["message"]


def catching(tag: str, argv_tail: bytes, sig: int) -> bool:
    """A process of the run whose command line ends with `argv_tail` has a handler for
    `sig` in place (its SigCgt mask in /proc)."""
    for pid in tagged_pids(tag):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        caught = next(int(line.split()[1], 16) for line in status.splitlines()
                      if line.startswith("SigCgt:"))
        if argv.endswith(argv_tail) and caught & (1 << (sig - 1)):
            return True
    return False


async def test_sample_driver_honours_cancel(demo_root: Path, tag: str) -> None:
    (demo_root / "config.yaml").write_text("web:\n  steps: 50\n  step_seconds: 0.1\n")
    # servo's SIGUSR1 once 10-web's adjust (not its --query) listens for it
    run, _ = await run_watched(
        demo_root, "demo", tag=tag, env=adjust_env(tag), stdin=REQUEST,
        signals_after_start=(signal.SIGUSR1,),
        signal_when=lambda: catching(tag, b"10-web\0demo", signal.SIGUSR1))
    assert run.final["status"] == "canceled"
    assert "10-web" in run.final["message"]
    assert "web: stopped at step " in run.final["message"]  # its own canceled result
    assert not any(p["message"].startswith("20-cache: applying") for p in run.progress)
    assert not (demo_root / ".state" / "web.json").exists()
