"""Measure servo roots for end-to-end tests: good measure drivers that record what they
were asked, and running ./measure as servo does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fault_support import install_fault, requests_of
from tests.support import REPO, AdjustRun, run_adjust, write_driver

MEASURE = REPO / "measure"


def measure_driver(root: Path, name: str, metrics: dict[str, Any], *, window: float = 1.0,
                   returns: dict[str, Any] | None = None,
                   annotations: dict[str, Any] | None = None) -> Path:
    """A good measure driver in root/measure.d: describes `metrics`; measures for `window`
    seconds (progress every 0.25 s), then returns `returns` (a value for each metric it was
    asked by default); on SIGUSR1 it says canceled and exits 3. Each call's arguments go
    to <name>.calls, each request to <name>.requests."""
    body = f"""
        import json, signal, sys, time
        NAME, METRICS, WINDOW = {name!r}, {metrics!r}, {window!r}
        RETURNS, ANNOTATIONS = {returns!r}, {annotations!r}
        with open(NAME + ".calls", "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\\n")
        if "--info" in sys.argv:
            print(json.dumps({{"version": NAME + "-1.0", "has_cancel": True}}))
            sys.exit(0)
        if "--describe" in sys.argv:
            print(json.dumps({{"status": "ok", "metrics": METRICS}}))
            sys.exit(0)
        request = json.load(sys.stdin)
        with open(NAME + ".requests", "a") as f:
            f.write(json.dumps(request) + "\\n")

        def cancel(signum, frame):
            print(json.dumps({{"status": "canceled", "reason": "canceled",
                               "message": NAME + " stopped"}}), flush=True)
            sys.exit(3)

        signal.signal(signal.SIGUSR1, cancel)
        started = time.monotonic()
        while time.monotonic() - started < WINDOW:
            done = int((time.monotonic() - started) * 100 / WINDOW)
            print(json.dumps({{"progress": done, "message": "measuring"}}), flush=True)
            time.sleep(0.25)
        asked = request["metrics"]
        result = {{"status": "ok", "metrics": RETURNS if RETURNS is not None else
                   {{m: {{"value": 1}} for m in asked}}}}
        if ANNOTATIONS:
            result["annotations"] = ANNOTATIONS
        print(json.dumps(result))
        """
    return write_driver(root, name, body, folder="measure.d")


def install_measure_fault(root: Path, name: str = "02fault") -> Path:
    return install_fault(root, name, "measure.d")


def requests(root: Path, name: str) -> list[dict[str, Any]]:
    return requests_of(root, name, "requests")


async def run_measure(root: Path, *args: str, tag: str, stdin: bytes | str = b"",
                      **kwargs: Any) -> AdjustRun:
    """./measure from `root`, exactly as servo runs it."""
    kwargs.setdefault("adjust", MEASURE)
    return await run_adjust(root, *args, tag=tag, stdin=stdin, **kwargs)
