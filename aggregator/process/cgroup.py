"""The run's own cgroup (v2), where one can be made: the strongest containment there is
without a pid namespace.

The aggregator moves into it before any driver starts, so every driver, and everything a
driver starts, is born in it. A process cannot leave a cgroup without write access to
the cgroup files (root, or the owner of a delegated subtree), whatever it does to its
environment, session or parent; so killing the cgroup kills all a run started: with
cgroup.kill (Linux 5.14) in one step, before that by freezing it (5.2) and killing each
member. A nested aggregator makes its cgroup inside the outer run's, which is killed with
it. The sentinel kills and removes it when the aggregator dies; after a normal end it
stays, empty, until the next run below the same cgroup removes it.

Where drivers have resource limits and the run's cgroup may hand the memory, pids or cpu
controller to children of its own, the aggregator moves into a leaf of the run's cgroup
and each limited driver call gets a child cgroup (CallCgroup) holding its limits, which
the driver enters between fork and exec; its use and the limits it hit are read from it
at the reap. Every path here is given, never assumed, so tests can stand a plain
directory in for the cgroup filesystem. Trio-free.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import NamedTuple

from aggregator.limits import CPU_PERIOD_MICROSECONDS, REAP_LIMIT_SECONDS
from aggregator.process.call_limits import CallLimits, LimitHits
from aggregator.process.linux import read_stat
from aggregator.process.resources import ResourceUse


def _unescape(field: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash in paths as \040 and so on."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def own_cgroup(cgroup_text: str, mountinfo_text: str) -> Path | None:
    """This process's cgroup v2 directory, from /proc/self/cgroup and /proc/self/mountinfo;
    None without a unified hierarchy, or when no writable mount of it shows our cgroup."""
    path = next((line[3:] for line in cgroup_text.splitlines() if line.startswith("0::")),
                None)
    if path is None or not path.startswith("/"):
        return None
    for line in mountinfo_text.splitlines():
        fields, dash, tail = line.partition(" - ")
        head = fields.split()
        if not dash or not tail.startswith("cgroup2 ") or len(head) < 6:
            continue
        root, mount, options = _unescape(head[3]), _unescape(head[4]), head[5].split(",")
        if "ro" in options:
            continue
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return Path(mount) / path[len(root):].lstrip("/")
    return None


def members(path: Path) -> list[int]:
    """Every process in the cgroup at `path` and the cgroups below it."""
    found: list[int] = []
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError, ValueError):
            found.extend(int(p) for p in Path(directory, "cgroup.procs").read_text().split())
    return found


def _write(path: Path, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
        return True
    except OSError:
        return False


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def flat_keyed(text: str) -> dict[str, int]:
    """A cgroup file of `key value` lines (cpu.stat, memory.events, pids.events)."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            found[key] = int(value)
    return found


def _count(path: Path, key: str) -> int | None:
    """One counter of a flat-keyed file; None when the file cannot be read."""
    text = _read(path)
    return None if text is None else flat_keyed(text).get(key, 0)


def kill_cgroup(path: Path) -> int:
    """SIGKILL every process in the cgroup and below it; returns how many there were."""
    inside = members(path)
    if not inside or _write(path / "cgroup.kill", "1"):
        return len(inside)
    frozen = _write(path / "cgroup.freeze", "1")  # before 5.14: none can fork meanwhile
    for pid in members(path) if frozen else inside:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)  # a fatal signal gets through the v2 freezer
    if frozen:
        _write(path / "cgroup.freeze", "0")
    return len(inside)


def wait_empty(path: Path, within: float = REAP_LIMIT_SECONDS) -> bool:
    """Wait until no process is left in the cgroup (zombies do not count), at most `within`
    seconds: cgroup.events changes are signalled to poll(2) as POLLPRI."""
    deadline = time.monotonic() + within
    try:
        fd = os.open(path / "cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return not members(path)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI)
        while True:
            if b"populated 0" in os.pread(fd, 4096, 0):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)
    except OSError:
        return not members(path)
    finally:
        os.close(fd)


def remove_cgroup(path: Path) -> None:
    """Remove the cgroup and every cgroup made below it (a nested run's), deepest first."""
    for directory, _, _ in os.walk(path, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(directory)


#: A run's cgroup is named for its run mark: servo-agg.<pid>.<start time>.
NAME_PREFIX = "servo-agg."

#: The leaf of the run's cgroup the aggregator moves into before the run's cgroup hands
#: controllers to its children: cgroup v2 allows no process in a cgroup that does.
AGGREGATOR_LEAF = "servo-agg"

#: Each driver call with a limit its cgroup enforces: call.<n> in the run's cgroup.
CALL_PREFIX = "call."


def stale(name: str, alive: Callable[[int, int], bool]) -> bool:
    """True for a run's cgroup whose aggregator (pid and start time) is gone."""
    if not name.startswith(NAME_PREFIX):
        return False
    try:
        pid, start = map(int, name[len(NAME_PREFIX):].split("."))
    except ValueError:
        return False
    return not alive(pid, start)


def _same_process(pid: int, start: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat.running and stat.start == start


class RunCgroup(NamedTuple):
    """The cgroup made for one run: the aggregator moves into it before its first driver,
    so that every driver is born in it (moving each driver instead would cost each one a
    wait of an RCU grace period, some milliseconds, at its start)."""

    path: Path
    entered: bool = False  # the process is in it already (an earlier run of its own)

    @classmethod
    def create(cls, mark: str) -> RunCgroup | None:
        """Make the run's cgroup below our own, after removing those of runs that are gone;
        None where that is not allowed or possible (no cgroup v2, a read-only mount, no
        write access, too deep or too many)."""
        try:
            with open("/proc/self/cgroup") as f:
                cgroup_text = f.read()
            with open("/proc/self/mountinfo") as f:
                mountinfo_text = f.read()
        except OSError:
            return None
        parent = own_cgroup(cgroup_text, mountinfo_text)
        return None if parent is None else cls.below(parent, mark)

    @classmethod
    def below(cls, parent: Path, mark: str) -> RunCgroup | None:
        """create(), given our own cgroup `parent`."""
        # A process may move between cgroups only with write access to the cgroup.procs
        # of the cgroup that holds both: ours.
        if not os.access(parent / "cgroup.procs", os.W_OK):
            return None
        if parent.name == AGGREGATOR_LEAF and parent.parent.name == f"{NAME_PREFIX}{mark}":
            parent = parent.parent  # that run handed controllers on: we are in its leaf
        if parent.name == f"{NAME_PREFIX}{mark}":
            # A process that ran a run before (tests do, in process) is still in that
            # run's cgroup, which has this run's name: it serves again, and no move.
            return cls(parent, entered=True)
        with contextlib.suppress(OSError):
            for entry in os.scandir(parent):
                if entry.is_dir(follow_symlinks=False) and stale(entry.name, _same_process):
                    remove_cgroup(Path(entry.path))  # a populated one stays: rmdir refuses
        path = parent / f"{NAME_PREFIX}{mark}"
        try:
            os.mkdir(path)
        except OSError:
            return None
        return cls(path)

    def enter(self) -> bool:
        """Move this process into the cgroup; on failure the cgroup is removed."""
        if self.entered or _write(self.path / "cgroup.procs", str(os.getpid())):
            return True
        remove_cgroup(self.path)
        return False

    def delegate(self, controllers: Collection[str]) -> frozenset[str]:
        """Let the run's children have `controllers` (of memory, pids, cpu) where the run's
        cgroup is offered them: this process moves into a leaf of its own first, then they
        go into cgroup.subtree_control (all in one write; one by one if that is refused).
        Returns those now enabled (none where the parent offers none: a host with only
        cgroup v1 controllers, say)."""
        offered = set((_read(self.path / "cgroup.controllers") or "").split())
        wanted = [c for c in controllers if c in offered]
        if not wanted:
            return frozenset()
        leaf = self.path / AGGREGATOR_LEAF
        try:
            os.makedirs(leaf, exist_ok=True)
        except OSError:
            return frozenset()
        if not _write(leaf / "cgroup.procs", str(os.getpid())):
            return frozenset()
        control = self.path / "cgroup.subtree_control"
        if _write(control, " ".join(f"+{c}" for c in wanted)):  # all, or none of them
            return frozenset(wanted)
        # One refused (cpu with a realtime thread, say) must not cost the others.
        return frozenset(c for c in wanted if _write(control, f"+{c}"))


class CallCgroup(NamedTuple):
    """One driver call's own cgroup, a child of the run's, holding the limits its
    `controllers` enforce. The driver enters it between fork and exec (enter), so that
    it and all it starts are held from their first instruction."""

    path: Path
    controllers: frozenset[str]  # those of memory, pids, cpu its limits are set for

    @classmethod
    def create(cls, parent: Path, name: str, limits: CallLimits,
               controllers: Collection[str]) -> CallCgroup | None:
        """The cgroup `parent`/`name` with each limit of `limits` that one of the
        `controllers` (enabled for `parent`'s children) enforces; None where it cannot
        be made or a limit cannot be written."""
        writes: dict[str, str] = {}
        optional: dict[str, str] = {}
        if "memory" in controllers and limits.memory is not None:
            writes["memory.max"] = str(limits.memory)
            optional["memory.swap.max"] = "0"  # a memory limit, not a RAM limit
            optional["memory.oom.group"] = "1"  # the OOM killer ends the call, not one child
        if "pids" in controllers and limits.pids is not None:
            writes["pids.max"] = str(limits.pids)
        if "cpu" in controllers and limits.cpu is not None:
            quota = max(1000, round(limits.cpu * CPU_PERIOD_MICROSECONDS))
            writes["cpu.max"] = f"{quota} {CPU_PERIOD_MICROSECONDS}"
        if not writes:
            return None
        path = parent / name
        try:
            os.mkdir(path)
        except OSError:
            return None
        for file, value in optional.items():
            _write(path / file, value)  # not every kernel has them (swap accounting off)
        if not all(_write(path / file, value) for file, value in writes.items()):
            remove_cgroup(path)
            return None
        return cls(path, frozenset(file.partition(".")[0] for file in writes))

    def enter(self) -> None:
        """Move the calling process in: run in the driver, between fork and exec."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def use(self) -> ResourceUse | None:
        """CPU time and peak memory of everything that ran in it (None without the memory
        controller's memory.peak, Linux 5.19)."""
        stat = _read(self.path / "cpu.stat")
        peak = _read(self.path / "memory.peak") if "memory" in self.controllers else None
        if stat is None or peak is None or not peak.strip().isdigit():
            return None
        usec = flat_keyed(stat)
        if "user_usec" not in usec or "system_usec" not in usec:
            return None
        return ResourceUse(usec["user_usec"] / 1e6, usec["system_usec"] / 1e6, int(peak),
                           "cgroup")

    def hits(self) -> LimitHits:
        """How often the OOM killer struck in it, and how many forks pids.max refused."""
        return LimitHits(
            oom_kills=(_count(self.path / "memory.events", "oom_kill")
                       if "memory" in self.controllers else None),
            pids_refused=(_count(self.path / "pids.events", "max")
                          if "pids" in self.controllers else None),
        )

    def remove(self) -> None:
        """Kill what is left in it (the driver is reaped by now) and remove it; one whose
        killed processes are not gone yet stays until the run's cgroup is removed."""
        kill_cgroup(self.path)
        remove_cgroup(self.path)
