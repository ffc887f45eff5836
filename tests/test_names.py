"""Names on their way to servo: every line is written with lone surrogates replaced
(U+FFFD), so two names that differ only there would become one. Wherever drivers' names
are merged (metrics in --describe and in the final result, components and settings in
the merged descriptor), such a pair is an error naming both drivers and both names, never
one name silently overwriting the other (issue 14)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.protocol.descriptor import merge
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.measure import merge_descriptions, merge_results
from aggregator.protocol.strict_json import dumps
from aggregator.protocol.text import DistinctNames, shown_name

pytestmark = pytest.mark.unit

#: Names as drivers print them: plain, or with bytes that were not UTF-8 (os.listdir and
#: a driver's "\udc80" escape give lone surrogates), which servo gets as U+FFFD.
NAME = st.text(st.sampled_from(["a", "b", "\udc80", "\udc81", "\ud800", "\ufffd"]),
               min_size=1, max_size=3)
DRIVERS = ["10a", "20b", "30c"]


def at_servo(value: dict[str, Any]) -> dict[str, Any]:
    """What servo reads of a line servo-agg writes."""
    read: dict[str, Any] = json.loads(dumps(value))
    return read


def test_five_metrics_that_differ_only_in_bad_bytes_are_not_three_in_describe() -> None:
    """The issue's case: five metrics became three, silently."""
    described: list[tuple[str, dict[str, Any]]] = [
        ("10prom", {name: {} for name in ["lat\udc80", "lat\udc81", "rps"]}),
        ("20ab", {name: {} for name in ["err\udc80", "x"]})]
    with pytest.raises(AggregatorError) as caught:
        merge_descriptions(described)
    assert caught.value.reason == "duplicate-metric"
    assert caught.value.message.startswith(
        "metric lat\\udc80 of 10prom and metric lat\\udc81 of 10prom would reach servo as "
        "the same name, lat\ufffd:")


def test_two_drivers_metrics_that_would_merge_at_servo_name_both_drivers_and_names() -> None:
    results = [("10prom", {"metrics": {"p99\udc80": {"value": 1}}}),
               ("20ab", {"metrics": {"p99\udcff": {"value": 2}}})]
    with pytest.raises(AggregatorError) as caught:
        merge_results(results)
    message = caught.value.message
    assert caught.value.reason == "duplicate-metric"
    assert "metric p99\\udc80 of 10prom and metric p99\\udcff of 20ab" in message


def test_a_name_that_is_already_what_servo_gets_clashes_with_one_that_becomes_it() -> None:
    with pytest.raises(AggregatorError, match="would reach servo as the same name"):
        merge_descriptions([("10a", {"x\ufffd": {}}), ("20b", {"x\udc80": {}})])


def test_annotations_servo_would_get_under_one_key_keep_every_value_marked() -> None:
    final = merge_results([("10a", {"metrics": {"m": {"value": 1}},
                                    "annotations": {"k\udc80": "one"}}),
                           ("20b", {"annotations": {"k\udc81": "two"}})])
    assert at_servo(final)["annotations"] == {"k\ufffd": ["10a: one", "20b: two"]}


@pytest.mark.parametrize(("descriptors", "says"), [
    ([("10a", {"web\udc80": {"cpu": {}}}), ("20b", {"web\udc81": {"mem": {}}})],
     "component web\\udc80 of 10a and component web\\udc81 of 20b"),
    ([("10a", {"web": {"cpu\udc80": {}}}), ("20b", {"web": {"cpu\udc81": {}}})],
     "setting web.cpu\\udc80 of 10a and setting web.cpu\\udc81 of 20b"),
    ([("10a", {"web": {name: {} for name in ["cpu\udc80", "cpu\udc81"]}})],
     "setting web.cpu\\udc80 of 10a and setting web.cpu\\udc81 of 10a"),
])
def test_adjust_components_and_settings_that_would_merge_at_servo_are_an_error(
        descriptors: list[tuple[str, dict[str, dict[str, Any]]]], says: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        merge([(driver, desc(components)) for driver, components in descriptors])
    assert caught.value.reason == "duplicate-setting"
    assert says in caught.value.message


def test_a_component_shared_under_the_same_name_is_still_fine() -> None:
    merged, _ = merge([("10a", desc({"web\udc80": {"cpu": {}}})),
                       ("20b", desc({"web\udc80": {"mem": {}}}))])
    assert at_servo(merged)["application"]["components"] == {
        "web\ufffd": {"settings": {"cpu": {}, "mem": {}}}}


def desc(components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"application": {"components": {
        name: {"settings": body} for name, body in components.items()}}}


def test_shown_name_keeps_apart_what_servo_would_merge() -> None:
    assert shown_name("a\udc80") != shown_name("a\udc81")
    assert shown_name("caf\u00e9") == "caf\u00e9"  # valid text is shown as it is


def test_the_same_name_again_is_not_a_clash() -> None:
    names = DistinctNames()
    assert names.clash(("a\udc80",), "10a") is None
    assert names.clash(("a\udc80",), "20b") is None
    assert names.clash(("a\udc81",), "20b") == (("a\udc80",), "10a")


@given(st.lists(st.tuples(st.sampled_from(DRIVERS), st.lists(NAME, max_size=4)),
                max_size=3))
def test_servo_gets_every_metric_or_an_error_never_fewer(
        drivers: list[tuple[str, list[str]]]) -> None:
    described = [(driver, {name: {"unit": "ms"} for name in names})
                 for driver, names in drivers]
    results = [(driver, {"metrics": {name: {"value": 1} for name in names}})
               for driver, names in drivers]
    try:
        metrics, _ = merge_descriptions(described)
    except AggregatorError as err:
        assert err.reason == "duplicate-metric"
    else:
        assert len(at_servo({"status": "ok", "metrics": metrics})["metrics"]) == len(metrics)
    try:
        final = merge_results(results)
    except AggregatorError as err:
        assert err.reason == "duplicate-metric"
    else:
        assert len(at_servo(final)["metrics"]) == len(final["metrics"])


@given(st.lists(st.tuples(st.sampled_from(DRIVERS),
                          st.dictionaries(NAME, st.lists(NAME, max_size=3), max_size=3)),
                max_size=3))
def test_servo_gets_every_setting_or_an_error_never_fewer(
        drivers: list[tuple[str, dict[str, list[str]]]]) -> None:
    descriptors = [(driver, desc({c: {name: {"value": 1} for name in s}
                                  for c, s in comps.items()}))
                   for driver, comps in drivers]
    try:
        merged, ownership = merge(descriptors)
    except AggregatorError as err:
        assert err.reason == "duplicate-setting"
        return
    seen = at_servo(merged)["application"]["components"]
    count = sum(len(body["settings"]) for body in seen.values())
    assert count == len(ownership.owner)
