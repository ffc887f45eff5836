"""Descriptors: their shape, merging them, and splitting a request by who owns what."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.protocol.descriptor import (
    DescriptorShapeError,
    Ownership,
    merge,
    normalize,
    settings_of,
    split_request,
)
from aggregator.protocol.errors import AggregatorError

pytestmark = pytest.mark.unit


def desc(components: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A wrapped descriptor with `settings` per component."""
    return {"application": {"components": {
        name: {"settings": body} for name, body in components.items()}}}


CPU = {"type": "range", "value": 1.0, "min": 0.5, "max": 4}
MEM = {"type": "range", "value": 2, "min": 1, "max": 8}
SIZE = {"type": "range", "value": 64, "min": 16, "max": 256}


# -- normalize ---------------------------------------------------------------------------

def test_legacy_descriptor_gets_the_application_wrapper() -> None:
    legacy = {"components": {"web": {"settings": {"cpu": CPU}}}}
    assert normalize(legacy) == {"application": legacy}


def test_wrapped_descriptor_is_kept_with_its_other_keys() -> None:
    wrapped = {"application": {"components": {"web": {"settings": {"cpu": CPU}}},
                               "measurement": {"x": 1}}}
    assert normalize(wrapped) == wrapped


def test_components_without_settings_are_fine() -> None:
    assert normalize({"components": {"web": {}}}) == {
        "application": {"components": {"web": {}}}}
    assert normalize({"components": {}}) == {"application": {"components": {}}}


@pytest.mark.parametrize(("raw", "says"), [
    ({"application": []}, "'application' is not an object"),
    ({"application": None}, "'application' is not an object"),
    ({"application": {}}, "no 'components' object"),
    ({}, "no 'components' object"),
    ({"status": "ok"}, "no 'components' object"),
    ({"components": []}, "no 'components' object"),
    ({"components": {"web": 3}}, "component 'web' is not an object"),
    ({"components": {"web": {"settings": []}}}, "component 'web': 'settings' is not an object"),
    ({"components": {"web": {"settings": {"cpu": 1}}}}, "setting web.cpu is not an object"),
    ({"application": {"components": {"web": {"settings": {"cpu": None}}}}},
     "setting web.cpu is not an object"),
])
def test_shape_errors_say_what_is_wrong(raw: dict[str, Any], says: str) -> None:
    with pytest.raises(DescriptorShapeError, match=says.replace("(", r"\(")):
        normalize(raw)


@pytest.mark.parametrize("raw", [
    {"components": {"w" * 500_000: 3}},
    {"components": {"w" * 500_000: {"settings": []}}},
    {"components": {"web": {"settings": {"c" * 500_000: 1}}}},
])
def test_shape_errors_quote_a_drivers_names_bounded(raw: dict[str, Any]) -> None:
    with pytest.raises(DescriptorShapeError) as caught:
        normalize(raw)
    assert len(str(caught.value)) < 300


# -- merge -------------------------------------------------------------------------------

def test_merge_joins_components_in_driver_order() -> None:
    merged, ownership = merge([
        ("01web", desc({"web": {"cpu": CPU, "mem": MEM}})),
        ("02cache", desc({"cache": {"size": SIZE}})),
    ])
    assert merged == desc({"web": {"cpu": CPU, "mem": MEM}, "cache": {"size": SIZE}})
    assert list(merged["application"]["components"]) == ["web", "cache"]
    assert ownership.owner == {("web", "cpu"): "01web", ("web", "mem"): "01web",
                               ("cache", "size"): "02cache"}


def test_drivers_may_share_a_component_with_different_settings() -> None:
    merged, ownership = merge([
        ("a", {"application": {"components": {"web": {"settings": {"cpu": CPU},
                                                      "label": "from a"}}}}),
        ("b", {"application": {"components": {"web": {"settings": {"mem": MEM},
                                                      "label": "from b", "extra": 1}}}}),
    ])
    web = merged["application"]["components"]["web"]
    assert web["settings"] == {"cpu": CPU, "mem": MEM}
    assert web["label"] == "from a"  # the first driver's word on shared keys wins
    assert web["extra"] == 1
    assert ownership.owner == {("web", "cpu"): "a", ("web", "mem"): "b"}


def test_merge_keeps_application_level_keys_first_driver_first() -> None:
    merged, _ = merge([
        ("a", {"application": {"components": {}, "note": "a"}}),
        ("b", {"application": {"components": {}, "note": "b", "other": 2}}),
    ])
    assert merged == {"application": {"components": {}, "note": "a", "other": 2}}


def test_merge_of_no_drivers_is_an_empty_descriptor() -> None:
    merged, ownership = merge([])
    assert merged == {"application": {"components": {}}}
    assert ownership.owner == {}


def test_merge_does_not_change_the_drivers_descriptors() -> None:
    inputs = [("a", desc({"web": {"cpu": CPU}})), ("b", desc({"web": {"mem": MEM}}))]
    before = copy.deepcopy(inputs)
    merge(inputs)
    assert inputs == before


def test_duplicate_setting_names_both_drivers_the_component_and_the_setting() -> None:
    with pytest.raises(AggregatorError) as caught:
        merge([
            ("01web", desc({"web": {"cpu": CPU}})),
            ("02cache", desc({"cache": {"size": SIZE}})),
            ("03web-too", desc({"web": {"mem": MEM, "cpu": CPU}})),
        ])
    err = caught.value
    assert err.reason == "duplicate-setting"
    assert "web.cpu" in err.message
    assert "01web" in err.message and "03web-too" in err.message
    assert "02cache" not in err.message


def test_same_setting_name_in_different_components_is_not_a_duplicate() -> None:
    _, ownership = merge([("a", desc({"web": {"cpu": CPU}})),
                          ("b", desc({"db": {"cpu": CPU}}))])
    assert ownership.owner == {("web", "cpu"): "a", ("db", "cpu"): "b"}


def test_ownership_current_is_the_owners_own_report() -> None:
    _, ownership = merge([("a", desc({"web": {"cpu": CPU}})),
                          ("b", desc({"web": {"mem": MEM}}))])
    assert ownership.current(("web", "mem")) == MEM
    assert ownership.current(("web", "cpu")) == CPU


def test_settings_of_lists_every_component_setting() -> None:
    d = desc({"web": {"cpu": CPU, "mem": MEM}, "cache": {"size": SIZE}})
    assert settings_of(d) == {("web", "cpu"): CPU, ("web", "mem"): MEM,
                              ("cache", "size"): SIZE}


# -- split -------------------------------------------------------------------------------

def _ownership() -> Ownership:
    _, ownership = merge([
        ("01web", desc({"web": {"cpu": CPU, "mem": MEM}})),
        ("02cache", desc({"cache": {"size": SIZE}})),
        ("03sidecar", desc({"web": {"sidecar": CPU}})),
    ])
    return ownership


ORDER = ["01web", "02cache", "03sidecar"]


def test_each_driver_gets_only_its_own_settings() -> None:
    request = {"web": {"settings": {"cpu": {"value": 2}, "sidecar": {"value": 1}}},
               "cache": {"settings": {"size": {"value": 128}}}}
    shares = split_request(request, _ownership(), ORDER)
    assert shares == {
        "01web": {"web": {"settings": {"cpu": {"value": 2}}}},
        "02cache": {"cache": {"settings": {"size": {"value": 128}}}},
        "03sidecar": {"web": {"settings": {"sidecar": {"value": 1}}}},
    }


def test_drivers_with_nothing_to_change_are_left_out() -> None:
    shares = split_request({"cache": {"settings": {"size": {"value": 32}}}}, _ownership(), ORDER)
    assert list(shares) == ["02cache"]
    assert split_request({}, _ownership(), ORDER) == {}
    assert split_request({"web": {"settings": {}}}, _ownership(), ORDER) == {}


def test_shares_follow_driver_order_not_request_order() -> None:
    request = {"cache": {"settings": {"size": {"value": 32}}},
               "web": {"settings": {"sidecar": {"value": 1}, "mem": {"value": 4}}}}
    assert list(split_request(request, _ownership(), ORDER)) == ORDER


def test_other_component_keys_go_with_each_share_of_that_component() -> None:
    request = {"web": {"settings": {"cpu": {"value": 2}, "sidecar": {"value": 1}},
                       "command": "restart"}}
    shares = split_request(request, _ownership(), ORDER)
    assert shares["01web"]["web"]["command"] == "restart"
    assert shares["03sidecar"]["web"]["command"] == "restart"


def test_unowned_settings_are_all_listed_and_nothing_is_split() -> None:
    request = {"web": {"settings": {"cpu": {"value": 2}, "gpu": {"value": 1}}},
               "cache": {"settings": {"size": {"value": 32}}},
               "queue": {"settings": {"depth": {"value": 3}, "workers": {"value": 2}}}}
    with pytest.raises(AggregatorError) as caught:
        split_request(request, _ownership(), ORDER)
    err = caught.value
    assert err.reason == "unknown-settings"
    assert "web.gpu, queue.depth, queue.workers" in err.message
    assert "web.cpu" not in err.message and "cache.size" not in err.message
    assert "nothing was changed" in err.message


def test_an_owner_missing_from_the_order_still_gets_its_settings() -> None:
    shares = split_request({"cache": {"settings": {"size": {"value": 32}}},
                            "web": {"settings": {"cpu": {"value": 1}}}},
                           _ownership(), ["01web"])
    assert list(shares) == ["01web", "02cache"]


# -- properties --------------------------------------------------------------------------

NAMES = st.text("abcxyz", min_size=1, max_size=3)
KEYS = st.tuples(NAMES, NAMES)


@st.composite
def drivers_and_request(draw: st.DrawFn) -> tuple[list[tuple[str, dict[str, Any]]],
                                                   dict[tuple[str, str], str],
                                                   dict[str, Any]]:
    """Drivers owning disjoint settings (components may be shared) and a request for some."""
    count = draw(st.integers(1, 5))
    names = [f"{i:02d}drv" for i in range(count)]
    owner = draw(st.dictionaries(KEYS, st.sampled_from(names), max_size=12))
    descriptors = []
    for name in names:
        components: dict[str, dict[str, Any]] = {}
        for (component, setting), who in owner.items():
            if who == name:
                components.setdefault(component, {})[setting] = {"value": 1, "min": 0,
                                                                 "max": 9}
        descriptors.append((name, desc(components)))
    wanted = draw(st.lists(st.sampled_from(sorted(owner)), unique=True) if owner
                  else st.just([]))
    request: dict[str, Any] = {}
    for component, setting in wanted:
        value = draw(st.integers(0, 9))
        request.setdefault(component, {"settings": {}})["settings"][setting] = {"value": value}
    return descriptors, owner, request


@given(drivers_and_request())
def test_every_requested_setting_reaches_exactly_its_reporter(
        case: tuple[list[tuple[str, dict[str, Any]]], dict[tuple[str, str], str],
                    dict[str, Any]]) -> None:
    descriptors, owner, request = case
    merged, ownership = merge(descriptors)
    assert dict(ownership.owner) == owner
    assert set(settings_of(merged)) == set(owner)
    order = [name for name, _ in descriptors]
    shares = split_request(request, ownership, order)
    received: dict[tuple[str, str], list[str]] = {}
    for driver, components in shares.items():
        assert components, "a driver with nothing to change is not run"
        for component, body in components.items():
            for setting, value in body["settings"].items():
                received.setdefault((component, setting), []).append(driver)
                assert value == request[component]["settings"][setting]
    requested = {(c, s) for c, body in request.items() for s in body["settings"]}
    assert set(received) == requested
    for key, drivers in received.items():
        assert drivers == [owner[key]]
    assert list(shares) == [name for name in order if name in shares]


@given(drivers_and_request(), st.lists(KEYS, min_size=1, max_size=5, unique=True))
def test_unowned_settings_are_all_listed_and_no_share_is_returned(
        case: tuple[list[tuple[str, dict[str, Any]]], dict[tuple[str, str], str],
                    dict[str, Any]],
        extra: list[tuple[str, str]]) -> None:
    descriptors, owner, request = case
    _, ownership = merge(descriptors)
    unowned = [key for key in extra if key not in owner]
    for component, setting in unowned:
        request.setdefault(component, {"settings": {}})["settings"][setting] = {"value": 0}
    order = [name for name, _ in descriptors]
    if not unowned:
        split_request(request, ownership, order)
        return
    with pytest.raises(AggregatorError) as caught:
        split_request(request, ownership, order)
    assert caught.value.reason == "unknown-settings"
    listed = caught.value.message.split("no driver reported ", 1)[1].split(";", 1)[0]
    assert sorted(listed.split(", ")) == sorted(f"{c}.{s}" for c, s in unowned)


@given(st.dictionaries(KEYS, st.sampled_from(["a", "b", "c"]), min_size=1, max_size=8),
       st.data())
def test_any_setting_reported_twice_is_a_duplicate_error(
        owner: dict[tuple[str, str], str], data: st.DataObject) -> None:
    (component, setting) = data.draw(st.sampled_from(sorted(owner)))
    first = owner[(component, setting)]
    second = data.draw(st.sampled_from([n for n in ["a", "b", "c"] if n != first]))
    descriptors = []
    for name in ["a", "b", "c"]:
        mine: dict[str, dict[str, Any]] = {}
        for (c, s), who in owner.items():
            if who == name or (name == second and (c, s) == (component, setting)):
                mine.setdefault(c, {})[s] = {"value": 1}
        descriptors.append((name, desc(mine)))
    with pytest.raises(AggregatorError) as caught:
        merge(descriptors)
    assert caught.value.reason == "duplicate-setting"
    assert f"setting {component}.{setting} is reported by both " \
           f"{min(first, second)} and {max(first, second)};" in caught.value.message
