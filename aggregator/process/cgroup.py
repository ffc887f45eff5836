"""The run's own cgroup (v2), where one can be made: the strongest containment there is
without a pid namespace.

Each driver joins it between fork and exec, and everything it starts is born in it. A
process cannot leave a cgroup without write access to the cgroup files (root, or the
owner of a delegated subtree), whatever it does to its environment, session or parent;
so killing the cgroup kills all a run started: with cgroup.kill (Linux 5.14) in one
step, before that by freezing it (5.2) and killing each member. A nested aggregator
makes its cgroup inside the outer run's, which is killed with it. Trio-free: made before
any driver starts, killed and removed by the sentinel.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from aggregator.limits import REAP_LIMIT_SECONDS


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


@dataclass
class RunCgroup:
    """The cgroup made for one run, and a descriptor on its cgroup.procs: a forked driver
    writes "0" to it (itself) before exec."""

    path: Path
    procs: int

    @classmethod
    def create(cls, name: str) -> RunCgroup | None:
        """Make the run's cgroup below our own; None where that is not allowed or possible
        (no cgroup v2, a read-only mount, no write access, too deep or too many)."""
        try:
            with open("/proc/self/cgroup") as f:
                cgroup_text = f.read()
            with open("/proc/self/mountinfo") as f:
                mountinfo_text = f.read()
        except OSError:
            return None
        parent = own_cgroup(cgroup_text, mountinfo_text)
        # A process may move between cgroups only with write access to the cgroup.procs
        # of the cgroup that holds both: ours.
        if parent is None or not os.access(parent / "cgroup.procs", os.W_OK):
            return None
        path = parent / name
        try:
            os.mkdir(path)
        except OSError:
            return None
        try:
            return cls(path, os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            remove_cgroup(path)
            return None

    def join(self) -> None:
        """Move the calling process into the cgroup (a driver, after fork, before exec)."""
        with contextlib.suppress(OSError):
            os.write(self.procs, b"0")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.procs)
