"""Shared code of the two sample measure drivers (not executable: the aggregator skips it).

A toy model of the application the sample adjust drivers tune: throughput and latency
follow the web tier's cpu and replicas and the cache's size, as the adjust drivers keep
them in .state/ under the servo root. Each driver answers --info and --describe, reads
its request from stdin, reports progress through its measurement window, and stops with
a `canceled` result on SIGUSR1, as servo's protocol asks. Standard library only.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

VERSION = "1.0.0"

#: What the sample adjust drivers start from (adjust.d/10-web, adjust.d/20-cache).
DEFAULTS = {"web": {"cpu": 1.0, "memory": 2.0, "replicas": 2},
            "cache": {"size": 256, "eviction_policy": "allkeys-lru"}}


def settings() -> dict[str, dict[str, Any]]:
    """The application as the adjust drivers left it (their defaults where they did not)."""
    current = json.loads(json.dumps(DEFAULTS))
    for component in current:
        try:
            saved = json.loads((Path.cwd() / ".state" / f"{component}.json").read_text())
        except (OSError, ValueError):
            continue
        current[component].update({k: v for k, v in saved.items() if k in current[component]})
    return current


def model() -> dict[str, float]:
    """Requests per minute the application serves, and its 99th-percentile latency."""
    app = settings()
    cores = float(app["web"]["cpu"]) * int(app["web"]["replicas"])
    size = float(app["cache"]["size"])
    hit = size / (size + 256)  # a bigger cache answers more from memory
    if app["cache"]["eviction_policy"] == "allkeys-lfu":
        hit = min(1.0, hit * 1.05)
    return {"throughput": round(600 * cores * (0.6 + 0.4 * hit), 1),
            "p99_latency": round(240 / (1 + 0.5 * cores) * (1 - 0.6 * hit), 2)}


def _seconds(value: Any, default: float) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return float(value) if ok else default


def window(control: dict[str, Any]) -> float:
    """warmup + duration + delay, as servo's measure drivers read their control."""
    return sum(_seconds(control.get(k), 0.0) for k in ("warmup", "duration", "delay")) or 1.0


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def run(name: str, metrics: dict[str, dict[str, Any]],
        measure: Callable[[dict[str, Any], Callable[[], bool]], dict[str, Any]]) -> int:
    """The driver's life: --info, --describe, or one measurement; `measure` gets the
    request and a `canceled()` check, and returns the final line."""
    args = sys.argv[1:]
    if "--info" in args:
        emit({"version": f"{name} {VERSION}", "has_cancel": True})
        return 0
    if "--describe" in args or "--query" in args:
        emit({"status": "ok", "metrics": metrics})
        return 0
    request = json.load(sys.stdin)
    stop = {"canceled": False}

    def on_cancel(signum: int, frame: object) -> None:
        stop["canceled"] = True

    signal.signal(signal.SIGUSR1, on_cancel)
    result = measure(request, lambda: stop["canceled"])
    if stop["canceled"]:
        emit({"status": "canceled", "reason": "canceled",
              "message": f"{name}: stopped by servo's cancel"})
        return 3
    emit(result)
    return 0 if result.get("status") == "ok" else 1


def paced(seconds: float, canceled: Callable[[], bool], what: str, steps: int = 4) -> None:
    """Wait out a measurement window, a progress line per step, until canceled."""
    for step in range(steps):
        if canceled():
            return
        emit({"progress": step * 100 // steps, "message": f"{what} ({step + 1}/{steps})"})
        end = time.monotonic() + seconds / steps
        while not canceled() and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
