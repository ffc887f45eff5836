"""Which adjust drivers run at the same time: ordered groups.

Groups run one after another; the drivers of one group run together. Grouping is the
operator's to ask for (config.yaml): `groups: prefix` puts drivers whose file names share
their leading digits in one group (`10-web-canary`, `10-web-main`), and a driver's own
`group:` overrides that, with or without `groups: prefix`. A driver covered by neither is
a group of its own, so the default is the sequential adjust of one driver at a time.
Groups run in the order of their first member's file name.

Pure and trio-free: adjust, --dry-run and --check form the same groups from the same
inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from aggregator.root.config import AggregatorConfig, GroupMode


class Group(NamedTuple):
    """Drivers that run at the same time, in file-name order. `name` is None for a driver
    that is a group of its own because nothing grouped it."""

    name: str | None
    members: tuple[str, ...]

    @property
    def concurrent(self) -> bool:
        return len(self.members) > 1

    def label(self) -> str:
        """How people see it: `group 10` or, alone, the driver's own name."""
        return f"group {self.name}" if self.name is not None else self.members[0]


def leading_digits(file_name: str) -> str | None:
    """`10` for `10-web`; None for a name that does not start with a digit."""
    end = 0
    while end < len(file_name) and "0" <= file_name[end] <= "9":
        end += 1
    return file_name[:end] or None


def group_name(file_name: str, mode: GroupMode, explicit: str | None) -> str | None:
    """The group a driver belongs to: its own `group:`, else its leading digits under
    `groups: prefix`, else none (a group of its own)."""
    if explicit is not None:
        return explicit
    return leading_digits(file_name) if mode == "prefix" else None


def form_groups(drivers: Sequence[str], mode: GroupMode,
                explicit: Callable[[str], str | None]) -> list[Group]:
    """`drivers` (in file-name order) as groups, in the order they run: by their first
    member's file name."""
    groups: list[tuple[str | None, list[str]]] = []
    named: dict[str, list[str]] = {}
    for driver in drivers:
        name = group_name(driver, mode, explicit(driver))
        if name is None:
            groups.append((None, [driver]))
        elif name in named:
            named[name].append(driver)
        else:
            named[name] = [driver]
            groups.append((name, named[name]))
    return [Group(name, tuple(members)) for name, members in groups]


def adjust_groups(config: AggregatorConfig, drivers: Sequence[str],
                  running: Iterable[str] | None = None) -> list[Group]:
    """The groups of an adjust: formed over every driver of the root (so that a group's
    place does not depend on which of its drivers a request reaches), then narrowed to
    the drivers that `running` names (those with something to change), empty groups
    left out."""
    groups = form_groups(drivers, config.groups, lambda name: config.policy(name).group)
    if running is None:
        return groups
    runs = set(running)
    narrowed = [Group(g.name, tuple(m for m in g.members if m in runs)) for g in groups]
    return [g for g in narrowed if g.members]
