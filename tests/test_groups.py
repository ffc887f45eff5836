"""Which adjust drivers run together: the pure rule (adjust/groups.py) and its config."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.adjust.groups import Group, adjust_groups, form_groups, leading_digits
from aggregator.protocol.errors import AggregatorError
from aggregator.root.config import parse_section

pytestmark = pytest.mark.unit

ROOT = ["10-web-canary", "10-web-main", "20-cache", "30-db", "legacy", "5-first"]


def groups_of(section: dict[str, Any], drivers: list[str] = ROOT) -> list[tuple[str | None,
                                                                                 tuple[str, ...]]]:
    return [(g.name, g.members) for g in adjust_groups(parse_section(section),
                                                       sorted(drivers))]


def test_by_default_every_driver_is_a_group_of_its_own_in_file_name_order() -> None:
    assert groups_of({}) == [(None, (name,)) for name in sorted(ROOT)]


def test_prefix_groups_drivers_that_share_their_leading_digits() -> None:
    assert groups_of({"groups": "prefix"}) == [
        ("10", ("10-web-canary", "10-web-main")),
        ("20", ("20-cache",)),
        ("30", ("30-db",)),
        ("5", ("5-first",)),  # bytewise: "5-first" sorts after "30-db"
        (None, ("legacy",)),  # no leading digits: a group of its own
    ]


def test_leading_digits_are_text_so_010_and_10_are_two_groups() -> None:
    assert leading_digits("010-a") == "010"
    assert leading_digits("10-b") == "10"
    assert leading_digits("web") is None
    assert groups_of({"groups": "prefix"}, ["010-a", "10-b"]) == [("010", ("010-a",)),
                                                                   ("10", ("10-b",))]


def test_an_explicit_group_overrides_the_prefix_and_works_without_it() -> None:
    drivers = {"20-cache": {"group": 10}, "legacy": {"group": "10"}}
    assert groups_of({"groups": "prefix", "drivers": drivers}) == [
        ("10", ("10-web-canary", "10-web-main", "20-cache", "legacy")),
        ("30", ("30-db",)),
        ("5", ("5-first",)),
    ]
    # without groups: prefix, only the drivers named into a group share one
    assert groups_of({"drivers": {"20-cache": {"group": "x"}, "legacy": {"group": "x"}}}) == [
        (None, ("10-web-canary",)), (None, ("10-web-main",)),
        ("x", ("20-cache", "legacy")), (None, ("30-db",)), (None, ("5-first",)),
    ]


def test_groups_run_in_the_order_of_their_first_members_file_name() -> None:
    drivers = {"10-web-canary": {"group": "late"}, "30-db": {"group": "late"},
               "20-cache": {"group": "early"}}
    assert [g for g, _ in groups_of({"drivers": drivers})] == ["late", None, "early", None,
                                                                None]


def test_a_group_keeps_its_place_when_the_request_skips_its_first_member() -> None:
    config = parse_section({"drivers": {"10-a": {"group": "g"}, "40-d": {"group": "g"}}})
    groups = adjust_groups(config, ["10-a", "20-b", "40-d"], running=["20-b", "40-d"])
    assert groups == [Group("g", ("40-d",)), Group(None, ("20-b",))]


def test_a_group_label_names_the_group_or_the_lone_driver() -> None:
    assert Group("10", ("10-a", "10-b")).label() == "group 10"
    assert Group(None, ("legacy",)).label() == "legacy"
    assert Group("10", ("10-a", "10-b")).concurrent
    assert not Group("10", ("10-a",)).concurrent


@given(st.lists(st.text(alphabet="0123-ab", min_size=1, max_size=6), unique=True),
       st.sampled_from(["none", "prefix"]))
def test_every_driver_runs_exactly_once_and_group_members_keep_file_order(
        names: list[str], mode: str) -> None:
    drivers = sorted(names)
    groups = form_groups(drivers, mode, lambda _: None)  # type: ignore[arg-type]
    flat = [m for g in groups for m in g.members]
    assert sorted(flat) == drivers
    for g in groups:
        assert list(g.members) == sorted(g.members)
    firsts = [g.members[0] for g in groups]
    assert firsts == sorted(firsts)


@pytest.mark.parametrize(("section", "key", "says"), [
    ({"groups": "digits"}, "aggregator.groups", "none, prefix"),
    ({"groups": True}, "aggregator.groups", "none, prefix"),
    ({"drivers": {"10-web": {"group": True}}}, "aggregator.drivers.10-web.group",
     "group name"),
    ({"drivers": {"10-web": {"group": ""}}}, "aggregator.drivers.10-web.group", "group name"),
    ({"drivers": {"10-web": {"group": 1.5}}}, "aggregator.drivers.10-web.group",
     "group name"),
    ({"drivers": {"10-web": {"group": [1]}}}, "aggregator.drivers.10-web.group",
     "group name"),
    ({"measure": {"drivers": {"10-ab": {"group": "x"}}}},
     "aggregator.measure.drivers.10-ab.group", "unknown key"),
])
def test_a_bad_grouping_is_bad_config_naming_the_key(section: dict[str, Any], key: str,
                                                     says: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        parse_section(section)
    assert caught.value.reason == "bad-config"
    assert f"{key}:" in caught.value.message
    assert says in caught.value.message


def test_a_dry_run_shows_the_groups_in_order_with_each_drivers_share() -> None:
    from aggregator.adjust.dry_run import Change, DriverPlan, DryRun

    plans = [DriverPlan("10-canary", 25.0, [Change("web", "cpu", 1, 2)]),
             DriverPlan("10-main", 25.0, [Change("web2", "cpu", 1, 2)]),
             DriverPlan("20-cache", 50.0, [Change("cache", "size", 1, 4)])]
    groups = [Group("10", ("10-canary", "10-main")), Group(None, ("20-cache",))]
    plan = DryRun("app", "stop", plans, [], groups)
    assert plan.text()[:8] == [
        "dry run of `adjust app`: 3 drivers would run, in this order (on_failure: stop)",
        "  group 10: its 2 drivers at once",
        "    10-canary (25% of progress)",
        "      web.cpu: 1 → 2",
        "    10-main (25% of progress)",
        "      web2.cpu: 1 → 2",
        "  20-cache (50% of progress)",
        "    cache.size: 1 → 4",
    ]
    shown = plan.as_json()
    assert shown["groups"] == [["10-canary", "10-main"], ["20-cache"]]
    assert [(d["driver"], d["group"], d["progress_share"]) for d in shown["drivers"]] == [
        ("10-canary", "10", 25.0), ("10-main", "10", 25.0), ("20-cache", None, 50.0)]


def test_check_lists_the_groups_and_warns_of_two_drivers_of_one_group_on_one_component(
        ) -> None:
    from pathlib import Path

    from aggregator.root.discovery import Driver
    from aggregator.tools.check import Report, check_groups

    drivers = [Driver(name, Path("/fake") / name) for name in ("10-a", "10-b", "20-c")]
    owned = [("10-a", {("web", "cpu"), ("db", "size")}), ("10-b", {("web", "replicas")}),
             ("20-c", {("web", "gc")})]
    report = Report()
    check_groups(report, parse_section({"groups": "prefix"}), drivers, owned)
    assert [line.strip() for line in report.lines[1:]] == [
        "groups",
        "[ok]   1. group 10: 10-a, 10-b, at once",
        "[ok]   2. group 20: 20-c",  # a named group of one says who it is
        "[warn] 10-a and 10-b both change component web, in group 10: they would change it "
        "at the same time (put them in groups of their own if one must follow the other)",
    ]  # 20-c changes web too, but after group 10: no warning
    assert report.warnings == 1
    alone = Report()
    check_groups(alone, parse_section({}), drivers, owned)
    assert alone.warnings == 0 and "each driver adjusts alone" in alone.lines[-1]


def test_a_file_name_holding_a_newline_keeps_the_groups_line_one_line() -> None:
    from pathlib import Path

    from aggregator.root.discovery import Driver
    from aggregator.tools.check import Report, check_groups

    drivers = [Driver(name, Path("/fake") / name) for name in ("10-a\nb", "10-c", "20-d")]
    report = Report()
    check_groups(report, parse_section({"groups": "prefix"}), drivers, [])
    assert [line.strip() for line in report.lines[1:]] == [
        "groups", "[ok]   1. group 10: 10-a\\x0ab, 10-c, at once", "[ok]   2. group 20: 20-d"]


@pytest.mark.parametrize("written", ["010", "0x10", "1_0", "1e1", "010.0", "10", "'010'"])
def test_a_group_named_by_a_number_in_config_yaml_is_that_text_as_written(
        written: str) -> None:
    """YAML would read `group: 010` as 8 (octal), 0x10 as 16, 1_0 as 10: a group's name is
    the text the operator wrote, so that `010` is the group of the 010- drivers."""
    from pathlib import Path

    from aggregator.root.config import parse_document

    document = parse_document(f"aggregator:\n  groups: prefix\n  drivers:\n"
                              f"    20-b: {{group: {written}}}\n", Path("config.yaml"))
    assert document is not None
    config = parse_section(document["aggregator"])
    assert config.policy("20-b").group == written.strip("'")
