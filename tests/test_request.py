"""The adjust request on stdin: checked before any driver runs, then cut per driver."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.request import driver_request, parse_request

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {"application": {"components": {"web": {"settings": {"cpu": {"value": 2}}}}},
        "control": {"userdata": {"a": [1, 2]}, "timeout": 30}}


def test_a_good_request_is_parsed() -> None:
    request = parse_request(json.dumps(GOOD).encode())
    assert request.components == GOOD["application"]["components"]
    assert request.control == GOOD["control"]
    assert request.extra == {}


def test_control_is_optional() -> None:
    request = parse_request(b'{"application": {"components": {}}}')
    assert request.control is None
    assert request.components == {}


def test_other_top_level_keys_are_kept() -> None:
    request = parse_request(b'{"application": {"components": {}}, "measure": {"x": 1}}')
    assert request.extra == {"measure": {"x": 1}}


def test_components_may_omit_settings() -> None:
    assert parse_request(b'{"application": {"components": {"web": {}}}}').components == {
        "web": {}}


@pytest.mark.parametrize(("data", "says"), [
    (b"", "stdin is not JSON"),
    (b"   \n", "stdin is not JSON"),
    (b"not json", "stdin is not JSON"),
    (b'{"application": ', "stdin is not JSON"),
    (b"\xff\xfe\xfa", "stdin is not JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'"text"', "expected a JSON object, got str"),
    (b"null", "expected a JSON object, got NoneType"),
    (b"{}", "no 'application' object"),
    (b'{"application": []}', "no 'application' object"),
    (b'{"application": {}}', "no 'application.components' object"),
    (b'{"application": {"components": []}}', "no 'application.components' object"),
    (b'{"application": {"components": {"web": 1}}}', "component 'web' is not an object"),
    (b'{"application": {"components": {"web": {"settings": 1}}}}',
     "component 'web': 'settings' is not an object"),
    (b'{"application": {"components": {"web": {"settings": {"cpu": 2}}}}}',
     "setting web.cpu must be an object with a 'value'"),
    (b'{"application": {"components": {"web": {"settings": {"cpu": {"v": 2}}}}}}',
     "setting web.cpu must be an object with a 'value'"),
    (b'{"application": {"components": {}}, "control": []}', "'control' is not an object"),
    (b"[" * 100_000, "stdin is not JSON"),
])
def test_bad_requests_are_bad_input_and_say_no_driver_ran(data: bytes, says: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_request(data)
    err = caught.value
    assert err.reason == "bad-input"
    assert err.status == "failed"
    assert says in err.message
    assert err.message.startswith("adjust request: ")
    assert err.message.endswith("no driver was run")


def test_driver_request_has_only_its_components_and_the_whole_control() -> None:
    request = parse_request(json.dumps({**GOOD, "measure": {"m": 1}}).encode())
    mine = {"web": {"settings": {"cpu": {"value": 2}}}}
    data = driver_request(request, mine)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {"application": {"components": mine},
                                "control": GOOD["control"], "measure": {"m": 1}}


def test_driver_request_without_control_has_none() -> None:
    request = parse_request(b'{"application": {"components": {}}}')
    assert json.loads(driver_request(request, {})) == {"application": {"components": {}}}


def test_driver_request_keeps_non_ascii_and_values_exactly() -> None:
    body = {"application": {"components": {"wéb": {"settings": {"x": {"value": 0.1},
                                                                "y": {"value": "ü"}}}}},
            "control": {"userdata": {"note": "line\nbreak"}}}
    request = parse_request(json.dumps(body, ensure_ascii=False).encode())
    data = driver_request(request, body["application"]["components"])  # type: ignore[index]
    assert json.loads(data) == body
    assert data.count(b"\n") == 1
