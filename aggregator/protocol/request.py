"""The request servo writes to stdin, checked before any driver runs: what every request
must be (load_request), and the adjust request's shape. Every message about a request
names the front-end that read it ("measure request: ...")."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from aggregator.limits import MAX_REQUEST_BYTES
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.strict_json import loads_strict
from aggregator.protocol.text import brief, clip


class AdjustRequest(NamedTuple):
    components: dict[str, Any]
    control: dict[str, Any] | None
    extra: dict[str, Any]  # other top-level keys, passed on to every driver


def bad_request(message: str, kind: str) -> AggregatorError:
    """A request refused; `kind` is the front-end that read it (adjust, measure)."""
    return AggregatorError("bad-input", f"{kind} request: {message}; no driver was run")


def _bad(message: str) -> AggregatorError:
    return bad_request(message, "adjust")


def request_too_big(kind: str, limit: int = MAX_REQUEST_BYTES) -> AggregatorError:
    return bad_request(f"more than {limit:,} bytes ({limit / 2**20:g} MiB) on stdin, the "
                       "most servo-agg reads", kind)


class _DuplicateKeys:
    """json's object_pairs_hook: builds each object as json would, and remembers the
    first one in which a key occurs twice (json would silently keep the last)."""

    def __init__(self) -> None:
        self.found: tuple[dict[str, Any], str] | None = None

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs) and self.found is None:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    self.found = (obj, key)
                    break
                seen.add(key)
        return obj


def _path_to(root: Any, target: dict[str, Any]) -> str:
    """Where `target` is in the document, as `a.b[2].c` (or "the top-level object"), each
    step clipped. Steps are linked, not joined, until the target is found: joining
    at every node would cost depth x key length per node."""
    steps: list[tuple[int, str]] = [(-1, "")]  # (index of the parent step, this step)
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        value, at = stack.pop()
        if value is target:
            parts: list[str] = []
            while at > 0:
                at, step = steps[at]
                parts.append(step)
            return clip("".join(reversed(parts)).lstrip(".")) or "the top-level object"
        if isinstance(value, dict):
            items = [(f".{clip(str(k), 40)}", v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(f"[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        for step, child in items:
            steps.append((at, step))
            stack.append((child, len(steps) - 1))
    return "an object"  # not reached: every object built is in the document


def load_request(data: bytes, kind: str) -> dict[str, Any]:
    """Any request servo writes (adjust or measure): one JSON object, no key twice in any
    object, no NaN or infinite number (json reads them, they are not JSON), at most
    MAX_REQUEST_BYTES."""
    if len(data) > MAX_REQUEST_BYTES:
        raise request_too_big(kind)
    duplicates = _DuplicateKeys()
    try:
        document = loads_strict(data, object_pairs_hook=duplicates)  # NaN is not JSON
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"stdin is not JSON ({clip(str(exc))})", kind) from None
    if duplicates.found is not None:
        obj, key = duplicates.found
        raise bad_request(f"key {brief(key)} appears twice in {_path_to(document, obj)} "
                          "(JSON would silently keep only the last one)", kind)
    if not isinstance(document, dict):
        raise bad_request(f"expected a JSON object, got {type(document).__name__}", kind)
    return document


def parse_request(data: bytes) -> AdjustRequest:
    """The adjust request, checked: load_request's rules, in servo's shape."""
    document = load_request(data, "adjust")
    application = document.get("application")
    if not isinstance(application, dict):
        raise _bad("no 'application' object")
    components = application.get("components")
    if not isinstance(components, dict):
        raise _bad("no 'application.components' object")
    for name, body in components.items():
        if not isinstance(body, dict):
            raise _bad(f"component {brief(name)} is not an object")
        settings = body.get("settings", {})
        if not isinstance(settings, dict):
            raise _bad(f"component {brief(name)}: 'settings' is not an object")
        for setting, value in settings.items():
            if not isinstance(value, dict) or "value" not in value:
                raise _bad(f"setting {clip(f'{name}.{setting}')} must be an object with "
                           "a 'value'")
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
