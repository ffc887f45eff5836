"""The adjust request servo writes to stdin, checked before any driver runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aggregator.protocol.errors import AggregatorError


@dataclass(frozen=True)
class AdjustRequest:
    components: dict[str, Any]
    control: dict[str, Any] | None
    extra: dict[str, Any]  # other top-level keys, passed on to every driver


def _bad(message: str) -> AggregatorError:
    return AggregatorError("bad-input", f"adjust request: {message}; no driver was run")


def parse_request(data: bytes) -> AdjustRequest:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"stdin is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _bad(f"expected a JSON object, got {type(document).__name__}")
    application = document.get("application")
    if not isinstance(application, dict):
        raise _bad("no 'application' object")
    components = application.get("components")
    if not isinstance(components, dict):
        raise _bad("no 'application.components' object")
    for name, body in components.items():
        if not isinstance(body, dict):
            raise _bad(f"component {name!r} is not an object")
        settings = body.get("settings", {})
        if not isinstance(settings, dict):
            raise _bad(f"component {name!r}: 'settings' is not an object")
        for setting, value in settings.items():
            if not isinstance(value, dict) or "value" not in value:
                raise _bad(f"setting {name}.{setting} must be an object with a 'value'")
    control = document.get("control")
    if control is not None and not isinstance(control, dict):
        raise _bad("'control' is not an object")
    extra = {k: v for k, v in document.items() if k not in ("application", "control")}
    return AdjustRequest(components, control, extra)


def driver_request(request: AdjustRequest, components: dict[str, Any]) -> bytes:
    """The request one driver receives: its own settings and the whole control object."""
    document: dict[str, Any] = dict(request.extra)
    document["application"] = {"components": components}
    if request.control is not None:
        document["control"] = request.control
    return (json.dumps(document) + "\n").encode()
