"""Measure servo roots for end-to-end tests: good measure drivers that record what they
were asked, and running ./measure as servo does."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from tests.fault_support import install_fault, requests_of
from tests.support import REPO, AdjustRun, run_adjust, write_driver

MEASURE = REPO / "measure"


#: sh: each metric in the request's "metrics" list as `"name": {"value": 1}`, joined.
ASKED = r"""asked=$(printf '%s' "$request" | sed -n 's/.*"metrics": \[\([^]]*\)\].*/\1/p' \
    | sed 's/"\([^"]*\)"/"\1": {"value": 1}/g')"""


def measure_driver(root: Path, name: str, metrics: dict[str, Any], *, window: float = 1.0,
                   returns: dict[str, Any] | None = None,
                   annotations: dict[str, Any] | None = None) -> Path:
    """A good measure driver in root/measure.d: describes `metrics`; measures for `window`
    seconds (progress every 0.25 s), then returns `returns` (a value for each metric it was
    asked by default); on SIGUSR1 it says canceled and exits 3. Each call's arguments go
    to <name>.calls, each request to <name>.requests.

    In sh, as simple_driver is: its language is never what a test is about, and sh starts
    in a tenth of Python's CPU. The metrics it was asked it reads off the request's
    "metrics" list, one line of json.dumps as servo-agg writes it."""
    def say(message: object) -> str:
        return f"printf '%s\\n' {shlex.quote(json.dumps(message))}"

    steps = max(1, math.ceil(window / 0.25))
    extra = {"annotations": annotations} if annotations else {}
    if returns is not None:
        result = say({"status": "ok", "metrics": returns, **extra})
    else:  # {"status": "ok", "metrics": {<each asked>: {"value": 1}}, ...}
        head, tail = json.dumps({"status": "ok", "metrics": {"@": 0}, **extra}).split('"@": 0')
        result = f"{ASKED}\nprintf '%s%s%s\\n' {shlex.quote(head)} \"$asked\" {shlex.quote(tail)}"
    body = f"""#!/bin/sh
echo "$*" >> {shlex.quote(name)}.calls
for arg do
    case $arg in
        --info) {say({"version": f"{name}-1.0", "has_cancel": True})}; exit 0;;
        --describe) {say({"status": "ok", "metrics": metrics})}; exit 0;;
    esac
done
request=$(cat)
printf '%s\\n' "$request" >> {shlex.quote(name)}.requests
canceled() {{
    {say({"status": "canceled", "reason": "canceled", "message": f"{name} stopped"})}
    exit 3
}}
trap canceled USR1
i=0
while [ $i -lt {steps} ]; do
    printf '{{"progress": %d, "message": "measuring"}}\\n' $((i * 100 / {steps}))
    sleep 0.25 > /dev/null & wait $!  # a SIGUSR1 ends the wait at once
    i=$((i + 1))
done
{result}
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
