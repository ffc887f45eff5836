"""How each driver call is held to its resource limits on this host, decided once per run.

A limit goes to the call's own cgroup (cgroup.CallCgroup) where the run's cgroup could
hand that controller to its children: memory.max, pids.max, cpu.max, for the driver and
everything it starts together. Elsewhere (no cgroup v2 controllers: a host with only
cgroup v1 ones, no write access, no run cgroup) servo-agg makes no cgroup and falls back
to what rlimits can do, set between fork and exec and inherited by every child:

- memory: RLIMIT_DATA, the private writable memory of *each process* (heap, anonymous
  mmaps); not its stack, file or shared mappings, and not the sum over a tree;
- pids: RLIMIT_NPROC, which counts every process of the driver's *user*, not of the
  driver, and which root ignores;
- cpu: nothing: an rlimit bounds CPU seconds in all, not a share of the CPUs.

Trio-free: head starts are forked before trio is loaded.
"""

from __future__ import annotations

import itertools
import os
import resource
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Literal, NamedTuple

from aggregator.process.call_limits import CallLimits
from aggregator.process.cgroup import CALL_PREFIX, CallCgroup, RunCgroup

Mechanism = Literal["cgroup", "rlimit", "none"]

#: The rlimit that stands in for each limit without its cgroup controller.
FALLBACK_RLIMITS: dict[str, int] = {"memory": resource.RLIMIT_DATA,
                                    "pids": resource.RLIMIT_NPROC}
#: In words, for --check and the docs.
FALLBACK_NAMES = {"memory": "RLIMIT_DATA", "pids": "RLIMIT_NPROC"}


def _set_rlimit(which: int, value: int) -> None:
    """Soft and hard limit to `value`, or to the hard limit already lower than it (only
    root may raise a hard limit); the driver cannot raise either again."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))


class PreparedCall(NamedTuple):
    """One call's limits, ready before its fork: its cgroup (made and written already)
    and the rlimits its child sets before exec."""

    cgroup: CallCgroup | None
    rlimits: tuple[tuple[int, int], ...]  # (resource.RLIMIT_*, value)

    def in_child(self) -> None:
        """Between fork and exec: into the cgroup, then the rlimits. Raises OSError (the
        fork then fails: the driver never runs unbounded)."""
        if self.cgroup is not None:
            self.cgroup.enter()
        for which, value in self.rlimits:
            _set_rlimit(which, value)

    def discard(self) -> None:
        """The fork failed, or the process is reaped: its cgroup goes."""
        if self.cgroup is not None:
            self.cgroup.remove()


class Confinement:
    """Which limit is enforced how in one run: by a cgroup of each call for the
    `controllers` the run's cgroup at `run_cgroup` hands to its children, by rlimits or
    not at all for the rest."""

    def __init__(self, run_cgroup: Path | None = None,
                 controllers: Collection[str] = ()) -> None:
        self.run_cgroup = run_cgroup
        self.controllers = frozenset(controllers) if run_cgroup is not None else frozenset()
        self._names: Callable[[], int] = itertools.count(1).__next__

    @classmethod
    def for_run(cls, cgroup: RunCgroup | None, limited: Collection[str]) -> Confinement:
        """The run's confinement: the controllers for the `limited` keys handed to the
        run's children where its cgroup may (the aggregator moves into a leaf for that);
        nothing is changed when no driver has a limit."""
        if cgroup is None or not limited:
            return cls()
        controllers = cgroup.delegate(limited)
        return cls(cgroup.path if controllers else None, controllers)

    def mechanism(self, key: str) -> Mechanism:
        """How the limit `key` (memory, pids, cpu) is enforced here."""
        if key in self.controllers:
            return "cgroup"
        return "rlimit" if key in FALLBACK_RLIMITS else "none"

    def describe(self, key: str) -> str:
        """How the limit `key` is enforced here, in words (--check, -v)."""
        mechanism = self.mechanism(key)
        if mechanism == "cgroup":
            return (f"{key}.max of each call's own cgroup: the driver and all it starts, "
                    "together")
        if key == "memory":
            return ("RLIMIT_DATA of each process (servo-agg's cgroup offers no cgroup v2 "
                    "memory controller here): its heap and private mappings, each process "
                    "on its own, not file or shared memory")
        if key == "pids":
            return ("RLIMIT_NPROC (servo-agg's cgroup offers no cgroup v2 pids controller "
                    "here): it counts every process of the driver's user, not the driver's"
                    + ("; not enforced, since drivers run as root, which it does not bound"
                       if os.geteuid() == 0 else ""))
        return (f"not enforced: it needs the cgroup v2 {key} controller, which servo-agg's "
                "cgroup does not offer here")

    def enforced(self, key: str) -> bool:
        """Whether the limit `key` binds at all here (RLIMIT_NPROC does not bind root)."""
        mechanism = self.mechanism(key)
        return mechanism == "cgroup" or (mechanism == "rlimit" and not (
            key == "pids" and os.geteuid() == 0))

    def prepare(self, limits: CallLimits) -> PreparedCall | None:
        """One call's limits, before its fork (None: it has none)."""
        values = {"memory": limits.memory, "pids": limits.pids, "cpu": limits.cpu}
        limited = {key for key, value in values.items() if value is not None}
        if not limited:
            return None
        cgroup = None
        if self.run_cgroup is not None and limited & self.controllers:
            cgroup = CallCgroup.create(self.run_cgroup, f"{CALL_PREFIX}{self._names()}",
                                       limits, self.controllers)
        held = cgroup.controllers if cgroup is not None else frozenset()
        rlimits = tuple((FALLBACK_RLIMITS[key], int(value)) for key, value in values.items()
                        if value is not None and key in FALLBACK_RLIMITS and key not in held)
        return PreparedCall(cgroup, rlimits)
