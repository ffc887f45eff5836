"""Resource limits per driver call through cgroup v2, against a plain directory standing
in for the cgroup filesystem (this machine's v2 hierarchy has no memory, pids or cpu
controller): the files written, the events read back, and which limit falls back to an
rlimit or to nothing."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from aggregator.process.call_limits import LimitHits
from aggregator.process.cgroup import (
    AGGREGATOR_LEAF,
    CallCgroup,
    RunCgroup,
    flat_keyed,
    members,
    remove_cgroup,
)
from aggregator.process.confine import Confinement
from aggregator.process.resources import ResourceUse
from aggregator.root.config import ResourceLimits

pytestmark = pytest.mark.unit

MIB = 1 << 20


def run_cgroup(tmp_path: Path, offered: str = "cpuset cpu io memory hugetlb pids") -> Path:
    """A run's cgroup whose parent offers `offered` to it (cgroup.controllers)."""
    path = tmp_path / "servo-agg.1234.5678"
    path.mkdir()
    (path / "cgroup.controllers").write_text(offered + "\n")
    (path / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return path


def text(path: Path) -> str:
    return path.read_text()


def test_delegating_moves_the_aggregator_into_a_leaf_then_enables_the_controllers(
        tmp_path: Path) -> None:
    path = run_cgroup(tmp_path)
    enabled = RunCgroup(path, entered=True).delegate(["memory", "pids", "cpu"])
    assert enabled == {"memory", "pids", "cpu"}
    assert text(path / AGGREGATOR_LEAF / "cgroup.procs") == str(os.getpid())
    assert text(path / "cgroup.subtree_control") == "+memory +pids +cpu"


def test_a_process_in_its_earlier_runs_leaf_uses_that_run_again(tmp_path: Path) -> None:
    """Tests run runs in process: after one that handed on controllers, the process is in
    the leaf of that run's cgroup, which has the next run's name too."""
    path = run_cgroup(tmp_path)
    leaf = path / AGGREGATOR_LEAF
    leaf.mkdir()
    (leaf / "cgroup.procs").write_text(str(os.getpid()))
    mark = path.name.removeprefix("servo-agg.")
    assert RunCgroup.below(leaf, mark) == RunCgroup(path, entered=True)
    assert RunCgroup.below(path, mark) == RunCgroup(path, entered=True)
    fresh = RunCgroup.below(leaf, "99.100")  # another run: below where we are
    assert fresh == RunCgroup(leaf / "servo-agg.99.100")


def test_only_the_controllers_the_parent_offers_are_enabled(tmp_path: Path) -> None:
    path = run_cgroup(tmp_path, offered="cpuset io memory")
    assert RunCgroup(path, entered=True).delegate(["memory", "pids", "cpu"]) == {"memory"}
    assert text(path / "cgroup.subtree_control") == "+memory"


def test_controllers_the_kernel_refuses_are_not_used(tmp_path: Path) -> None:
    path = run_cgroup(tmp_path)
    (path / "cgroup.subtree_control").mkdir()  # every write to it fails, as a refusal does
    assert RunCgroup(path, entered=True).delegate(["memory", "pids"]) == frozenset()


def test_nothing_is_moved_or_enabled_where_no_controller_is_offered(tmp_path: Path) -> None:
    """A host with only cgroup v1 controllers: its v2 hierarchy offers none of them."""
    path = run_cgroup(tmp_path, offered="hugetlb")
    assert RunCgroup(path, entered=True).delegate(["memory", "pids", "cpu"]) == frozenset()
    assert not (path / AGGREGATOR_LEAF).exists()
    assert not (path / "cgroup.subtree_control").exists()
    confinement = Confinement.for_run(RunCgroup(path, entered=True), ["memory", "pids"])
    assert (confinement.run_cgroup, confinement.controllers) == (None, frozenset())


def enabled_cgroup(tmp_path: Path, controllers: tuple[str, ...] = ("memory", "pids", "cpu"),
                   ) -> Path:
    path = run_cgroup(tmp_path)
    (path / "cgroup.subtree_control").write_text(" ".join(controllers))
    return path


def test_each_call_gets_a_child_cgroup_with_its_limits(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    limits = ResourceLimits(memory=512 * MIB, pids=64, cpu=1.5)
    call = CallCgroup.create(path, "call.1", limits, {"memory", "pids", "cpu"})
    assert call is not None and call.path == path / "call.1"
    assert call.controllers == {"memory", "pids", "cpu"}
    assert text(call.path / "memory.max") == str(512 * MIB)
    assert text(call.path / "memory.swap.max") == "0"  # a memory limit, not a RAM limit
    assert text(call.path / "memory.oom.group") == "1"  # the OOM killer takes the call
    assert text(call.path / "pids.max") == "64"
    assert text(call.path / "cpu.max") == "150000 100000"  # 1.5 CPUs: quota and period


def test_a_call_writes_only_the_limits_it_has_and_a_controller_enforces(
        tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path, ("pids",))
    call = CallCgroup.create(path, "call.1", ResourceLimits(memory=MIB, pids=8), {"pids"})
    assert call is not None and call.controllers == {"pids"}
    assert sorted(p.name for p in call.path.iterdir()) == ["pids.max"]
    assert CallCgroup.create(path, "call.2", ResourceLimits(cpu=2.0), {"pids"}) is None
    assert not (path / "call.2").exists()


def test_the_driver_enters_its_cgroup_by_writing_its_own_pid(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    call = CallCgroup.create(path, "call.1", ResourceLimits(pids=8), {"pids"})
    assert call is not None
    (call.path / "cgroup.procs").touch()  # the kernel makes it with the cgroup
    call.enter()  # what the child does between fork and exec
    assert text(call.path / "cgroup.procs") == str(os.getpid())
    assert members(call.path) == [os.getpid()]


def test_oom_kills_and_refused_forks_are_read_back_from_the_events(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    call = CallCgroup.create(path, "call.1", ResourceLimits(memory=64 * MIB, pids=8),
                             {"memory", "pids"})
    assert call is not None
    (call.path / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n"
                                             "oom_group_kill 1\n")
    (call.path / "pids.events").write_text("max 3\n")
    assert call.hits() == LimitHits(oom_kills=1, pids_refused=3)
    (call.path / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    (call.path / "pids.events").write_text("max 0\n")
    assert call.hits() == LimitHits(oom_kills=0, pids_refused=0)


def test_events_without_a_controller_or_a_file_are_not_counted(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    only_pids = CallCgroup.create(path, "call.1", ResourceLimits(pids=8), {"pids"})
    assert only_pids is not None
    (only_pids.path / "memory.events").write_text("oom_kill 5\n")  # not its limit: ignored
    assert only_pids.hits() == LimitHits(oom_kills=None, pids_refused=None)  # no pids.events


def test_use_is_read_from_cpu_stat_and_memory_peak(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    call = CallCgroup.create(path, "call.1", ResourceLimits(memory=64 * MIB), {"memory"})
    assert call is not None
    assert call.use() is None  # nothing to read yet: the rusage stands
    (call.path / "cpu.stat").write_text("usage_usec 1250000\nuser_usec 1000000\n"
                                        "system_usec 250000\n")
    (call.path / "memory.peak").write_text("52428800\n")
    assert call.use() == ResourceUse(1.0, 0.25, 50 * MIB, "cgroup")


def test_use_needs_memory_peak_of_the_memory_controller(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    call = CallCgroup.create(path, "call.1", ResourceLimits(pids=8), {"pids"})
    assert call is not None
    (call.path / "cpu.stat").write_text("usage_usec 5\n")
    (call.path / "memory.peak").write_text("100\n")  # not its controller: not to be trusted
    assert call.use() is None


def test_removing_a_call_cgroup_removes_it(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    call = CallCgroup.create(path, "call.1", ResourceLimits(pids=8), {"pids"})
    assert call is not None
    for file in call.path.iterdir():  # the real filesystem's files do not stop rmdir
        file.unlink()
    call.remove()
    assert not call.path.exists()


def test_the_run_cgroup_is_removed_with_the_aggregators_leaf_and_the_calls(
        tmp_path: Path) -> None:
    path = tmp_path / "servo-agg.1.2"
    for sub in (AGGREGATOR_LEAF, "call.1", "call.2/servo-agg.3.4/call.1"):
        (path / sub).mkdir(parents=True)
    remove_cgroup(path)
    assert not path.exists()


def test_flat_keyed_files() -> None:
    assert flat_keyed("max 3\nmax.imposed 1\n") == {"max": 3, "max.imposed": 1}
    assert flat_keyed("usage_usec 12\nnr_periods x\n\n") == {"usage_usec": 12}


# -- which limit goes where -----------------------------------------------------------------

def test_with_the_controllers_every_limit_goes_to_the_calls_cgroup(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    confinement = Confinement(path, {"memory", "pids", "cpu"})
    assert [confinement.mechanism(k) for k in ("memory", "pids", "cpu")] == ["cgroup"] * 3
    prepared = confinement.prepare(ResourceLimits(memory=64 * MIB, pids=8, cpu=0.5))
    assert prepared is not None and prepared.rlimits == ()
    assert prepared.cgroup is not None and prepared.cgroup.path == path / "call.1"
    second = confinement.prepare(ResourceLimits(pids=8))
    assert second is not None and second.cgroup is not None
    assert second.cgroup.path == path / "call.2"  # one cgroup per call


def test_without_the_controllers_memory_and_pids_fall_back_to_rlimits_cpu_to_nothing(
        ) -> None:
    confinement = Confinement()
    assert [confinement.mechanism(k) for k in ("memory", "pids", "cpu")] == [
        "rlimit", "rlimit", "none"]
    prepared = confinement.prepare(ResourceLimits(memory=64 * MIB, pids=8, cpu=0.5))
    assert prepared is not None and prepared.cgroup is None
    assert prepared.rlimits == ((resource.RLIMIT_DATA, 64 * MIB), (resource.RLIMIT_NPROC, 8))
    assert "not enforced" in confinement.describe("cpu")
    assert not confinement.enforced("cpu")
    assert confinement.enforced("memory")
    assert confinement.describe("memory").startswith("RLIMIT_DATA of each process")


def test_a_controller_missing_sends_that_limit_alone_to_its_rlimit(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path, ("pids",))
    confinement = Confinement(path, {"pids"})
    prepared = confinement.prepare(ResourceLimits(memory=64 * MIB, pids=8))
    assert prepared is not None and prepared.cgroup is not None
    assert prepared.cgroup.controllers == {"pids"}
    assert prepared.rlimits == ((resource.RLIMIT_DATA, 64 * MIB),)


def test_a_call_without_limits_gets_nothing(tmp_path: Path) -> None:
    path = enabled_cgroup(tmp_path)
    assert Confinement(path, {"memory"}).prepare(ResourceLimits()) is None
    assert list(path.glob("call.*")) == []
