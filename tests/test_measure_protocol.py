"""servo's measure protocol as pure formats: the request, each driver's share of it, the
userdata override, the window, and the merging of descriptions and results."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.measure import (
    MeasurementWindow,
    MeasureRequest,
    MetricsShapeError,
    described_metrics,
    driver_control,
    driver_request,
    measurement_window,
    merge_descriptions,
    merge_results,
    not_returned,
    parse_measure_request,
    result_shape_problem,
    share_of,
    unowned,
    unused_override_notice,
    unused_overrides,
)
from aggregator.root.config import MeasureConfig, parse_section
from aggregator.root.front_end import FrontEnd, drivers_of, front_end_for

pytestmark = pytest.mark.unit


def request(body: dict[str, Any]) -> MeasureRequest:
    return parse_measure_request(json.dumps(body).encode())


@pytest.mark.parametrize(("data", "says"), [
    (b"not json", "stdin is not JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"metrics": "throughput"}', "'metrics' must be a list of names or an object"),
    (b'{"metrics": [1]}', "'metrics' must list metric names"),
    (b'{"metrics": [], "control": 5}', "'control' is not an object"),
    (b'{"metrics": [], "metrics": ["x"]}', "key 'metrics' appears twice"),
])
def test_a_bad_request_is_refused_naming_the_problem(data: bytes, says: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_measure_request(data)
    assert caught.value.reason == "bad-input"
    assert says in caught.value.message and "no driver was run" in caught.value.message
    assert caught.value.message.startswith("measure request: ")


@pytest.mark.parametrize(("override", "says"), [
    (5, "control.userdata.10load.control (10load's override) must be an object"),
    ("fast", "must be an object of control keys, not str"),
    ({"duration": 1, "userdata": {"x": 1}}, "may not hold userdata"),
])
def test_an_override_that_could_not_be_applied_is_refused(override: Any, says: str) -> None:
    """Dropped, it would leave that driver measuring with settings nobody asked for."""
    data = json.dumps({"metrics": [], "control": {"duration": 5, "userdata": {
        "10load": {"control": override}}}}).encode()
    with pytest.raises(AggregatorError) as caught:
        parse_measure_request(data, ["10load", "20prom"])
    assert caught.value.reason == "bad-input"
    assert says in caught.value.message and "no driver was run" in caught.value.message


def test_userdata_keyed_by_something_that_is_not_a_driver_is_anyones_data() -> None:
    data = json.dumps({"metrics": [], "control": {"userdata": {
        "slo": {"control": 5}, "10load": "not an override"}}}).encode()
    parsed = parse_measure_request(data, ["10load"])
    assert parsed.control == {"userdata": {"slo": {"control": 5}, "10load": "not an override"}}


def test_metrics_as_names_or_as_an_object_keep_their_form() -> None:
    names = request({"metrics": ["a", "b", "c"]})
    assert share_of(names, ["c", "a"]) == ["a", "c"]  # the request's own order
    keyed = request({"metrics": {"a": {"unit": "rpm"}, "b": {}}})
    assert share_of(keyed, ["a"]) == {"a": {"unit": "rpm"}}
    assert share_of(keyed, []) == {}
    assert request({}).metrics == []  # absent: nothing asked


def test_unowned_metrics_are_named_not_refused() -> None:
    assert unowned(request({"metrics": ["a", "perf"]}), {"a": "10x"}) == ["perf"]


def test_the_per_driver_override_is_merged_over_the_top_level_and_hidden_from_all() -> None:
    control = {"duration": 60, "warmup": 5,
               "userdata": {"10load": {"control": {"duration": 30, "userdata": "x"}},
                            "20prom": {"control": {"warmup": 0}, "slo": 99},
                            "slo": {"p99": 20}}}
    drivers = ["10load", "20prom"]
    load = driver_control(control, "10load", drivers)
    prom = driver_control(control, "20prom", drivers)
    assert load == {"duration": 30, "warmup": 5,
                    "userdata": {"20prom": {"slo": 99}, "slo": {"p99": 20}}}
    assert prom == {"duration": 60, "warmup": 0,
                    "userdata": {"20prom": {"slo": 99}, "slo": {"p99": 20}}}
    assert control["duration"] == 60  # the request itself is not changed
    assert driver_control(None, "10load", drivers) is None
    # userdata keyed by a name that is no driver is plain userdata
    assert driver_control({"userdata": {"other": {"control": {"a": 1}}}}, "10load",
                          drivers) == {"userdata": {"other": {"control": {"a": 1}}}}


def test_a_drivers_request_always_has_metrics_and_passes_other_keys_on() -> None:
    body = json.loads(driver_request(request({"metrics": ["a"], "extra": 1}), "10x", [],
                                     ["10x"]))
    assert body == {"metrics": [], "extra": 1}


@pytest.mark.parametrize(("control", "window"), [
    (None, None), ({}, None), ({"userdata": {}}, None),
    ({"duration": 180, "warmup": 30, "delay": 10}, 220.0),
    ({"duration": 60, "past": 15}, 75.0),
    ({"load": {"t_warmup": 30, "t_limit": 180}}, 210.0),
    ({"duration": 10, "load": {"t_limit": 100}}, 100.0),  # whichever is larger
    ({"duration": 60, "delay": None, "past": 15}, 75.0),  # null is no delay
])
def test_the_window_a_control_implies(control: dict[str, Any] | None,
                                      window: float | None) -> None:
    assert measurement_window(control) == MeasurementWindow(window)  # and nothing unusable


@pytest.mark.parametrize(("control", "unusable", "shown"), [
    ({"duration": "x"}, 'duration "x" is not a number of seconds >= 0', None),
    ({"duration": -1, "warmup": 30}, "duration -1 is not a number of seconds >= 0", None),
    ({"duration": True, "load": {"t_limit": "1m"}},
     'duration true, load.t_limit "1m" are not a number of seconds >= 0', None),
    ({"duration": 1e308, "warmup": 1e308}, "window warmup + duration is infinite",
     "none (window warmup + duration is infinite)"),
    ({"load": {"t_limit": 10**400}}, "window load.t_limit is infinite", None),
])
def test_a_window_that_cannot_be_computed_says_why(control: dict[str, Any], unusable: str,
                                                   shown: str | None) -> None:
    """Never a window from the usable parts alone (it would cut the measurement short),
    never none without a word, never "Infinity s"."""
    window = measurement_window(control)
    assert (window.seconds, window.unusable) == (None, unusable)
    assert window.shown() == (shown or f"none ({unusable})")


def test_descriptions_merge_and_a_metric_described_twice_names_both() -> None:
    merged, owner = merge_descriptions([("10a", {"x": {"unit": "ms"}}), ("20b", {"y": {}})])
    assert merged == {"x": {"unit": "ms"}, "y": {}} and owner == {"x": "10a", "y": "20b"}
    with pytest.raises(AggregatorError) as caught:
        merge_descriptions([("10a", {"x": {}}), ("20b", {"x": {}})])
    assert caught.value.reason == "duplicate-metric"
    assert "metric x is described by both 10a and 20b" in caught.value.message


@pytest.mark.parametrize("raw", [{"metrics": []}, {"metrics": {"x": 1}}])
def test_a_description_that_is_not_one_is_bad_output(raw: dict[str, Any]) -> None:
    with pytest.raises(MetricsShapeError):
        described_metrics(raw)


def test_a_description_without_status_or_metrics_is_fine() -> None:
    assert described_metrics({}) == {}  # a load generator
    assert described_metrics({"metrics": {"x": {}}}) == {"x": {}}


def test_results_merge_untouched_and_annotations_keep_both_values() -> None:
    series = {"values": [{"id": "pod-1", "data": [[1, 2.5]]}], "unit": "ms"}
    final = merge_results([
        ("10load", {"status": "ok", "metrics": {"rps": {"value": 12}},
                    "annotations": {"load": "ab -c 10", "notes": ["a", "b"]}}),
        ("20prom", {"metrics": {"p99": series}, "annotations": {"notes": "c", "q": "p"}}),
    ])
    assert final == {"status": "ok", "metrics": {"rps": {"value": 12}, "p99": series},
                     "annotations": {"load": "ab -c 10",
                                     "notes": ["10load: a", "10load: b", "20prom: c"],
                                     "q": "p"}}
    assert "annotations" not in merge_results([("10a", {"metrics": {}})])


def test_servo_aggs_own_notices_are_an_annotation_of_strings_marked_if_a_driver_shares_it(
        ) -> None:
    notices = ["10a did not return y, which it describes and was asked for"]
    final = merge_results([("10a", {"metrics": {"x": {}}})], notices)
    assert final["annotations"] == {"servo-agg": notices}
    shared = merge_results([("10a", {"metrics": {"x": {}},
                                     "annotations": {"servo-agg": "mine"}})], notices)
    assert shared["annotations"] == {"servo-agg": ["10a: mine", f"servo-agg: {notices[0]}"]}
    assert "annotations" not in merge_results([("10a", {"metrics": {}})], [])


def test_what_a_driver_describes_and_was_asked_but_did_not_return() -> None:
    assert not_returned(["x", "y", "z"], {"metrics": {"y": {"value": 1}}}) == ["x", "z"]
    assert not_returned(["x"], {"status": "ok"}) == ["x"]
    assert not_returned([], {}) == []


def test_overrides_keyed_by_no_running_driver_are_found() -> None:
    control = {"userdata": {"10a": {"control": {"duration": 3}},
                            "99gone": {"control": {"duration": 3}},
                            "slo": {"p99": 200}, "other": {"control": 1, "x": 2}}}
    assert unused_overrides(control, ["10a", "20b"]) == ["99gone", "other"]
    assert unused_overrides(None, ["10a"]) == unused_overrides({"userdata": 3}, []) == []
    assert unused_override_notice("30off", True) == (
        "control.userdata.30off.control took effect nowhere: 30off is disabled "
        "(measure.drivers.30off.enabled)")
    assert unused_override_notice("99gone", False).endswith(
        "no measure driver is called 99gone")


def test_a_metric_returned_twice_is_an_error_naming_both() -> None:
    with pytest.raises(AggregatorError, match="returned by both 10a and 20b"):
        merge_results([("10a", {"metrics": {"x": {}}}), ("20b", {"metrics": {"x": {}}})])


@pytest.mark.parametrize(("result", "problem"), [
    ({"metrics": {}}, None), ({}, None),
    ({"metrics": []}, "'metrics' is not an object"),
    ({"metrics": {}, "annotations": "x"}, "'annotations' is not an object"),
])
def test_result_shapes(result: dict[str, Any], problem: str | None) -> None:
    found = result_shape_problem(result)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


# -- the measure section of config.yaml, and the front-end ---------------------------------
def test_measure_settings_default_and_inherit_the_graces() -> None:
    config = parse_section({"kill_grace": 2, "cancel_grace": 4})
    assert config.measure == MeasureConfig(kill_grace=2.0, cancel_grace=4.0)
    assert config.measure.on_failure == "cancel" and config.measure.window_grace is None
    own = parse_section({"measure": {"drivers_dir": "m.d", "on_failure": "continue",
                                     "window_grace": 30, "cancel_grace": 1,
                                     "drivers": {"10x": {"enabled": False}}}})
    assert (own.measure.drivers_dir, own.measure.on_failure, own.measure.window_grace,
            own.measure.cancel_grace) == ("m.d", "continue", 30.0, 1.0)
    assert config.measure.missing_metrics == "note"
    assert parse_section({"measure": {"missing_metrics": "fail"}}).measure.missing_metrics \
        == "fail"
    assert drivers_of(own, FrontEnd.MEASURE) == ("m.d", frozenset({"10x"}))
    assert drivers_of(own, FrontEnd.ADJUST) == ("adjust.d", frozenset())


@pytest.mark.parametrize(("section", "key", "says"), [
    ({"measure": 3}, "aggregator.measure", "must be a mapping"),
    ({"measure": {"window": 3}}, "aggregator.measure.window", "unknown key"),
    ({"measure": {"on_failure": "rollback"}}, "aggregator.measure.on_failure",
     "cancel, continue"),
    ({"measure": {"window_grace": -1}}, "aggregator.measure.window_grace", "from 0 to"),
    ({"measure": {"window_grace": "1m"}}, "aggregator.measure.window_grace", "number"),
    ({"measure": {"kill_grace": 1e9}}, "aggregator.measure.kill_grace", "from 0 to 60"),
    ({"measure": {"drivers": {"10x": {"weight": 2}}}}, "aggregator.measure.drivers.10x.weight",
     "unknown key (known: enabled, limits, deadline)"),
    ({"measure": {"drivers_dir": ""}}, "aggregator.measure.drivers_dir", "non-empty"),
    ({"measure": {"missing_metrics": "warn"}}, "aggregator.measure.missing_metrics",
     "must be one of note, fail, not 'warn'"),
    ({"measure": {"missing_metrics": True}}, "aggregator.measure.missing_metrics",
     "note, fail"),
])
def test_measure_settings_are_validated_naming_the_key(section: dict[str, Any], key: str,
                                                       says: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_section(section)
    assert f"{key}:" in caught.value.message and says in caught.value.message


@pytest.mark.parametrize(("program", "args", "front", "rest"), [
    ("/servo/adjust", ["--info"], FrontEnd.ADJUST, ["--info"]),
    ("/servo/measure", ["app"], FrontEnd.MEASURE, ["app"]),
    ("measure", ["adjust"], FrontEnd.MEASURE, ["adjust"]),  # the name wins: app "adjust"
    ("/usr/bin/servo-agg", ["measure", "--describe", "app"], FrontEnd.MEASURE,
     ["--describe", "app"]),
    ("/usr/bin/servo-agg", ["adjust", "app"], FrontEnd.ADJUST, ["app"]),
    ("/usr/bin/servo-agg", ["app"], FrontEnd.ADJUST, ["app"]),
])
def test_the_front_end_is_chosen_by_name_or_subcommand(program: str, args: list[str],
                                                       front: FrontEnd,
                                                       rest: list[str]) -> None:
    assert front_end_for(program, args) == (front, rest)
