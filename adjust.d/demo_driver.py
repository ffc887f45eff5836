"""Shared code of the two sample drivers (not executable: the aggregator skips it).

A toy adjust driver: it owns one component, keeps its settings in .state/<name>.json
under the servo root, reads optional overrides from its own section of config.yaml,
reports progress while "applying" a change, and stops with a `canceled` result on
SIGUSR1, as servo's protocol asks. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

VERSION = "1.0.0"


def _state_file(name: str) -> Path:
    return Path.cwd() / ".state" / f"{name}.json"


def _config_section(name: str) -> dict[str, Any]:
    """This driver's section of config.yaml, if PyYAML is there to read it."""
    try:
        import yaml
    except ImportError:
        return {}
    try:
        document = yaml.safe_load((Path.cwd() / "config.yaml").read_text()) or {}
    except OSError:
        return {}
    section = document.get(name) if isinstance(document, dict) else None
    return section if isinstance(section, dict) else {}


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def _load(name: str, component: str, defaults: dict[str, Any]) -> dict[str, Any]:
    settings = json.loads(json.dumps(defaults))
    try:
        saved = json.loads(_state_file(name).read_text())
    except (OSError, ValueError):
        saved = {}
    for key, value in saved.items():
        if key in settings:
            settings[key]["value"] = value
    return {"application": {"components": {component: {"settings": settings}}}}


def _check(setting: str, spec: dict[str, Any], value: Any) -> str | None:
    if spec.get("type", "range") == "enum":
        return None if value in spec["values"] else f"{setting}={value!r} not in {spec['values']}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{setting}={value!r} is not a number"
    if not spec["min"] <= value <= spec["max"]:
        return f"{setting}={value} outside {spec['min']}..{spec['max']}"
    return None


def run(name: str, component: str, defaults: dict[str, Any]) -> int:
    args = sys.argv[1:]
    config = _config_section(name)
    if "--version" in args:
        print(f"{name} {VERSION}")
        return 0
    if "--info" in args:
        _emit({"version": f"{name} {VERSION}", "has_cancel": True})
        return 0
    descriptor = _load(name, component, defaults)
    settings = descriptor["application"]["components"][component]["settings"]
    if "--query" in args or "--describe" in args:
        _emit(descriptor)
        return 0
    request = json.load(sys.stdin)
    wanted = request["application"]["components"].get(component, {}).get("settings", {})
    problems = [p for s, v in wanted.items()
                if (p := _check(s, settings[s], v["value"]) if s in settings
                    else f"unknown setting {s}")]
    if problems:
        _emit({"status": "rejected", "reason": "out-of-range", "message": "; ".join(problems)})
        return 1

    canceled = False

    def on_cancel(signum: int, frame: object) -> None:
        nonlocal canceled
        canceled = True

    signal.signal(signal.SIGUSR1, on_cancel)
    steps = int(config.get("steps", 5))
    pause = float(config.get("step_seconds", 0.3))
    for step in range(steps):
        if canceled:
            _emit({"status": "canceled", "reason": "canceled",
                   "message": f"{name}: stopped at step {step} of {steps}; nothing applied"})
            return 1
        _emit({"progress": step * 100 // steps,
               "message": f"applying {', '.join(wanted)} ({step + 1}/{steps})"})
        time.sleep(pause)
    state = _state_file(name)
    state.parent.mkdir(exist_ok=True)
    current = {s: spec["value"] for s, spec in settings.items()}
    current.update({s: v["value"] for s, v in wanted.items()})
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(current))
    os.replace(tmp, state)
    _emit({"status": "ok", "reason": "success"})
    return 0
