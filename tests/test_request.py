"""The adjust request on stdin: checked before any driver runs, then cut per driver."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aggregator.entry.cmdline import build_parser, read_request
from aggregator.limits import MAX_REQUEST_BYTES
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.request import driver_request, load_request, parse_request
from aggregator.root.front_end import FrontEnd

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
    (b'{"application": {"components": "web"}}', "no 'application.components' object"),
    (b'{"application": {"components": {"web": 1}}}', "component 'web' is not an object"),
    (b'{"application": {"components": {"web": {"settings": 1}}}}',
     "component 'web': 'settings' is not an object"),
    (b'{"application": {"components": {"web": {"settings": {"cpu": 2}}}}}',
     "setting web.cpu must be an object with a 'value'"),
    (b'{"application": {"components": {"web": {"settings": {"cpu": {"v": 2}}}}}}',
     "setting web.cpu must be an object with a 'value'"),
    (b'{"application": {"components": {}}, "control": []}', "'control' is not an object"),
    (b"[" * 100_000, "stdin is not JSON"),
    # json reads these, but they are not JSON: a driver would get them passed on
    (b'{"application": {"components": {"web": {"settings": {"cpu": {"value": NaN}}}}}}',
     "stdin is not JSON (NaN is not a JSON value)"),
    (b'{"application": {"components": {}}, "control": {"t": Infinity}}',
     "stdin is not JSON (Infinity is not a JSON value)"),
    (b'{"application": {"components": {}}, "control": {"t": [-Infinity]}}',
     "stdin is not JSON (-Infinity is not a JSON value)"),
    (b'{"application": {"components": {"web": {"settings": {"cpu": {"value": 1e400}}}}}}',
     "stdin is not JSON (1e400 is out of range: it reads as infinity)"),
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


# -- the request means what it says ---------------------------------------------------------

@pytest.mark.parametrize(("data", "key", "where"), [
    # json keeps the last: the second "db" silently dropped db.mem and the run said ok
    (b'{"application": {"components": {"db": {"settings": {"mem": {"value": 4}}}, '
     b'"db": {}}}}', "'db'", "application.components"),
    (b'{"application": {"components": {}}, "application": {"components": {}}}',
     "'application'", "the top-level object"),
    (b'{"application": {"components": {"web": {"settings": {"cpu": {"value": 1, '
     b'"value": 2}}}}}}', "'value'", "application.components.web.settings.cpu"),
    (b'{"application": {"components": {}}, "control": {"userdata": '
     b'[1, {"a": 1, "a": 1}]}}', "'a'", "control.userdata[1]"),
])
def test_a_key_twice_in_any_object_is_refused(data: bytes, key: str, where: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_request(data)
    assert caught.value.reason == "bad-input"
    assert f"key {key} appears twice in {where} " in caught.value.message
    assert caught.value.message.endswith("no driver was run")


def test_a_duplicate_under_huge_keys_is_named_briefly() -> None:
    deep: dict[str, Any] = {f"k{i}" + "x" * 10_000: {} for i in range(3)}
    data = json.dumps({"application": {"components": deep}, "control": deep}).encode()
    data = data.replace(b'"k2', b'"k1', 1)  # a duplicate inside application.components
    with pytest.raises(AggregatorError) as caught:
        parse_request(data)
    assert "appears twice in application.components" in caught.value.message
    assert len(caught.value.message) < 800


def test_a_request_over_the_cap_is_refused() -> None:
    padding = b" " * (MAX_REQUEST_BYTES - len(b'{"application": {"components": {}}}'))
    assert parse_request(b'{"application": {"components": {}}}' + padding).components == {}
    with pytest.raises(AggregatorError) as caught:
        parse_request(b'{"application": {"components": {}}}' + padding + b" ")
    assert caught.value.reason == "bad-input"
    assert "more than 16,777,216 bytes (16 MiB) on stdin" in caught.value.message


def test_user_data_in_shape_errors_is_clipped() -> None:
    name = "w" * 100_000
    for body in ({name: 1}, {name: {"settings": 1}}, {"web": {"settings": {name: 2}}}):
        data = json.dumps({"application": {"components": body}}).encode()
        with pytest.raises(AggregatorError) as caught:
            parse_request(data)
        assert len(caught.value.message) < 400


# -- reading stdin --------------------------------------------------------------------------

@pytest.fixture
def stdin_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A file in tmp_path that becomes stdin (its fd: sys.stdin.fileno()) once written."""
    path = tmp_path / "request.json"
    path.touch()
    with path.open("rb") as f:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.FileIO(f.fileno(),
                                                                     closefd=False)))
        yield path


def test_read_request_reads_all_of_stdin(stdin_file: Path) -> None:
    stdin_file.write_bytes(json.dumps(GOOD).encode())
    assert read_request(None, "adjust") == json.dumps(GOOD).encode()


def test_read_request_stops_at_the_cap(stdin_file: Path) -> None:
    """A 50 MB request is refused after reading one byte more than the cap (it cost
    227 MB before: all read, then parsed)."""
    with stdin_file.open("r+b") as f:
        f.truncate(50 * 1024 * 1024)
    fd = sys.stdin.fileno()
    with pytest.raises(AggregatorError) as caught:
        read_request(None, "adjust")
    assert caught.value.reason == "bad-input"
    assert caught.value.message.startswith("adjust request: ")
    assert "16 MiB" in caught.value.message
    assert os.lseek(fd, 0, os.SEEK_CUR) == MAX_REQUEST_BYTES + 1
    os.lseek(fd, 0, os.SEEK_SET)
    with pytest.raises(AggregatorError) as caught:
        read_request(None, "measure", limit=1000)
    assert caught.value.message.startswith("measure request: more than 1,000 bytes")
    assert os.lseek(fd, 0, os.SEEK_CUR) == 1001


@pytest.mark.parametrize("kind", ["adjust", "measure"])
def test_every_message_about_a_request_names_the_front_end_that_read_it(kind: str) -> None:
    """A measure request over the cap was refused as an "adjust request" (issue 14)."""
    for data in (b" " * (MAX_REQUEST_BYTES + 1), b"nope", b"[]", b'{"a": 1, "a": 2}'):
        with pytest.raises(AggregatorError) as caught:
            load_request(data, kind)
        assert caught.value.message.startswith(f"{kind} request: "), caught.value.message


@pytest.mark.parametrize("front", list(FrontEnd))
@pytest.mark.parametrize("flag", ["--query", "--describe"])
def test_query_and_describe_are_one_command_in_both_front_ends(front: FrontEnd,
                                                              flag: str) -> None:
    """servo asks an adjust driver --query and a measure driver --describe; either name
    asks either front-end for its description."""
    args = build_parser(front).parse_args([flag, "app"])
    assert (args.query, args.app, args.dry_run, args.check) == (True, "app", False, False)
