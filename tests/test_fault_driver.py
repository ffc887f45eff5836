"""The fault driver itself (faults/adjust-fault): how an operator or a test chooses what
goes wrong, and that it is a good driver everywhere else."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from aggregator.protocol.vocabulary import Call
from aggregator.supervision.spec import CallSpec
from tests.fake_faults import MODES, fault_script
from tests.fakes import fake_driver, open_fake_spawner
from tests.fault_support import FAULT_DRIVER, REQUEST, T, install_fault
from tests.support import ADJUST, PYTHON_BIN, TAG_VAR, adjust_env

REQUIRED_MODES = (
    "hang", "hang-after-progress", "ignore-sigterm", "grandchild-holds-stdout",
    "setsid-grandchild-holds-stdout", "non-json", "non-object", "partial-line",
    "exit-nonzero-silent", "exit-zero-silent", "ok-then-exit-1", "stderr-flood", "huge-line",
    "progress-flood", "bad-progress", "sigkill-self", "close-stdin", "slow-alive",
    "cancel-aware", "no-cancel-handler", "ignore-sigusr1", "lone-surrogate", "invalid-utf8",
    "non-finite-descriptor", "non-finite-result", "envless-daemon", "envless-daemon-then-ok",
    "nested-aggregator", "loadgen-child-holds-pipes",
)


def fault(root: Path, *args: str, tag: str, stdin: str = "",
          **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FAULT_")}
    environment.update({"PATH": PYTHON_BIN + os.pathsep + environment.get("PATH", ""),
                        TAG_VAR: tag, **env})
    return subprocess.run([str(FAULT_DRIVER), *args], cwd=root, input=stdin, text=True,
                          capture_output=True, env=environment, timeout=30, check=False)


@pytest.mark.unit
def test_it_is_an_executable_stdlib_script() -> None:
    assert os.access(FAULT_DRIVER, os.X_OK)
    assert FAULT_DRIVER.read_text().startswith("#!/usr/bin/env python3\n")


@pytest.mark.e2e
def test_every_mode_the_matrix_needs_is_there(tmp_path: Path, tag: str) -> None:
    listed = fault(tmp_path, "--modes", tag=tag).stdout
    names = {line.split()[0] for line in listed.split("Modes:\n")[1].splitlines()}
    assert set(REQUIRED_MODES) <= names


@pytest.mark.e2e
def test_elsewhere_than_its_phase_it_is_a_good_driver(tmp_path: Path, tag: str) -> None:
    info = json.loads(fault(tmp_path, "--info", tag=tag, FAULT_MODE="hang").stdout)
    assert info == {"version": "1.0", "has_cancel": True}
    query = json.loads(fault(tmp_path, "--query", "app", tag=tag, FAULT_MODE="hang").stdout)
    assert query["application"]["components"]["fault"]["settings"]["level"]["value"] == 1
    adjusted = fault(tmp_path, "app", tag=tag, stdin="{}", FAULT_MODE="hang",
                     FAULT_PHASE="query")
    assert json.loads(adjusted.stdout.splitlines()[-1])["status"] == "ok"


@pytest.mark.e2e
def test_the_config_section_chooses_and_the_environment_wins(tmp_path: Path,
                                                             tag: str) -> None:
    (tmp_path / "config.yaml").write_text(
        "faulty:\n  mode: hang\n"
        "fault:   # rehearsal\n"
        "  # a comment line\n"
        "  mode: 'exit-nonzero-silent'\n"
        "  exit_code: 5   # why not\n"
        "other:\n  mode: hang\n")
    assert fault(tmp_path, "app", tag=tag, stdin="{}").returncode == 5
    overridden = fault(tmp_path, "app", tag=tag, stdin="{}", FAULT_MODE="ok-then-exit-1")
    assert overridden.returncode == 1
    assert json.loads(overridden.stdout)["status"] == "ok"


@pytest.mark.e2e
def test_an_unknown_mode_says_which_ones_exist(tmp_path: Path, tag: str) -> None:
    done = fault(tmp_path, "app", tag=tag, stdin="{}", FAULT_MODE="explode")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "unknown mode 'explode'" in done.stderr and "non-json" in done.stderr


@pytest.mark.e2e
def test_the_pidfile_lists_each_process_with_its_call_and_role(tmp_path: Path,
                                                               tag: str) -> None:
    pidfile = tmp_path / "pids"
    done = fault(tmp_path, "--query", "app", tag=tag, FAULT_PIDFILE=str(pidfile))
    assert done.returncode == 0
    ((pid, call, role),) = [line.split() for line in pidfile.read_text().splitlines()]
    assert (call, role) == ("query", "driver") and int(pid) > 1


@pytest.mark.e2e
def test_it_runs_on_the_system_python_too(tmp_path: Path, tag: str) -> None:
    """An operator's servo root may only have the system python3 (no venv, no yaml)."""
    system = Path("/usr/bin/python3")
    if not system.exists():
        system = Path(sys.executable)
    done = subprocess.run([str(system), str(FAULT_DRIVER), "--info"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, check=True,
                          env={**os.environ, TAG_VAR: tag})
    assert json.loads(done.stdout)["has_cancel"] is True


@pytest.mark.e2e
def test_the_envless_daemon_has_no_environment_and_a_session_of_its_own(
        tmp_path: Path, tag: str) -> None:
    pidfile = tmp_path / "pids"
    done = fault(tmp_path, "--query", "app", tag=tag, FAULT_MODE="envless-daemon-then-ok",
                 FAULT_PHASE="query", FAULT_PIDFILE=str(pidfile))
    def recorded_daemons(within: float) -> list[int]:
        """The daemon's pid once it recorded itself (it runs after the driver is gone)."""
        deadline = time.monotonic() + within
        while "daemon" not in pidfile.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        return [int(pid) for pid, _, role in
                (line.split() for line in pidfile.read_text().splitlines()) if role == "daemon"]

    daemons = recorded_daemons(10)
    records = [line.split() for line in pidfile.read_text().splitlines()]
    try:
        assert done.returncode == 0 and "application" in json.loads(done.stdout)
        (daemon,) = daemons
        assert Path(f"/proc/{daemon}/environ").read_bytes() == b""
        assert os.getsid(daemon) not in (os.getsid(0), daemon)  # its parent's session
        assert os.getsid(daemon) != int(records[0][0])
    finally:
        # It carries no tag, so the tag check cannot see it: killed here, also when it
        # recorded itself too late for the assertions (a loaded machine).
        for pid in daemons or recorded_daemons(30):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.e2e
def test_the_nested_aggregator_answers_as_the_aggregator_it_becomes(tmp_path: Path,
                                                                    tag: str) -> None:
    done = fault(tmp_path, "--info", tag=tag, FAULT_MODE="nested-aggregator",
                 FAULT_PHASE="info", FAULT_AGGREGATOR=str(ADJUST), FAULT_NESTED_MODE="hang")
    assert json.loads(done.stdout)["version"].startswith("servo-agg "), done.stderr
    assert (tmp_path / "fault-nested" / "adjust.d" / "fault").read_bytes() == \
        FAULT_DRIVER.read_bytes()
    forever = fault(tmp_path, "--info", tag=tag, FAULT_MODE="nested-aggregator",
                    FAULT_PHASE="info", FAULT_NESTED_MODE="nested-aggregator")
    assert forever.returncode == 2 and "nest forever" in forever.stderr


@pytest.mark.e2e
def test_a_measure_fault_driver_nests_the_measure_aggregator(tmp_path: Path, tag: str) -> None:
    done = fault(tmp_path, "--describe", "app", tag=tag, FAULT_KIND="measure",
                 FAULT_MODE="nested-aggregator", FAULT_PHASE="describe",
                 FAULT_AGGREGATOR=str(ADJUST.parent / "measure"), FAULT_NESTED_MODE="ok")
    assert "fault_level" in json.loads(done.stdout.splitlines()[-1])["metrics"], done.stderr
    assert (tmp_path / "fault-nested" / "measure.d" / "fault").exists()


# -- the fakes the fault matrix runs instead (tests/fake_faults.py) -------------------------

#: The calls each mode is held to its fake in: every call for the modes that answer each
#: call their own way, the query for descriptors, the adjust for the others; and, as a
#: measure driver, the calls the measure matrix has them in.
EVERY_CALL = (Call.INFO, Call.QUERY, Call.ADJUST)
CALLS_OF: dict[str, tuple[Call, ...]] = {
    **{mode: (Call.ADJUST,) for mode in MODES},
    **{mode: EVERY_CALL for mode in ("ok", "hang", "ignore-sigterm", "non-json", "non-object",
                                     "non-finite-result", "lone-surrogate")},
    "bad-descriptor": (Call.QUERY,), "non-finite-descriptor": (Call.QUERY,),
}
MEASURE_CALLS_OF: dict[str, tuple[Call, ...]] = {
    "ok": (Call.DESCRIBE, Call.MEASURE), "hang": (Call.MEASURE,),
    "failed-result": (Call.MEASURE,), "non-json": (Call.DESCRIBE,),
    "cancel-aware": (Call.MEASURE,),
}
FAKED = [(mode, call) for calls_of in (CALLS_OF, MEASURE_CALLS_OF)
         for mode, calls in calls_of.items() for call in calls]
#: Modes that write for a while (FAULT_INTERVAL, FAULT_DURATION): how many lines they write
#: in that time may differ, not which.
TIMED = {"slow-alive", "junk-progress-alive", "alive-by-blank-lines", "alive-by-result-lines",
         "alive-by-stderr", "work", "cancel-aware", "no-cancel-handler", "ignore-sigusr1"}
#: Modes that answer servo's signals their own way: held to the fault driver both ways, as
#: they work (above) and when the signal comes while they work or hang.
SIGNALED = {"cancel-aware": signal.SIGUSR1, "no-cancel-handler": signal.SIGUSR1,
            "ignore-sigusr1": signal.SIGUSR1, "ignore-sigterm": signal.SIGTERM}
SETTINGS: dict[str, dict[str, Any]] = {
    **{mode: {"interval": 0.05, "duration": 0.12} for mode in TIMED},
    "stderr-flood": {"size": 100 * 1015 + 7},  # a hundred lines and part of one
    "ok": {"metric": "good_rps"},  # a measure driver's one metric, named
}
ARGS = {Call.INFO: ("--info",), Call.QUERY: ("--query", "app"), Call.ADJUST: ("app",),
        Call.DESCRIBE: ("--describe", "app"), Call.MEASURE: ("app",)}
MEASURE_REQUEST = {"metrics": ["good_rps", "fault_level"], "control": {"duration": 1}}


def request_of(call: Call) -> bytes:
    """What servo sends on stdin to the call (nothing to a question)."""
    body = {Call.ADJUST: REQUEST, Call.MEASURE: MEASURE_REQUEST}.get(call)
    return b"" if body is None else json.dumps(body).encode()


def install_for(root: Path, call: Call) -> Path:
    """The fault driver as an adjust driver, or (for a measure driver's call) in measure.d,
    which makes it a measure driver."""
    return install_fault(root, folder="measure.d" if call in (Call.DESCRIBE, Call.MEASURE)
                         else "adjust.d")
Transcript = tuple[bytes, bytes, int | None]  # stdout, stderr, exit code (None: it hangs)


@contextlib.contextmanager
def started_fault_driver(root: Path, call: Call, tag: str, **env: str,
                         ) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path, Path]]:
    """The real fault driver for `call`, its request written, with `env` (FAULT_* and the
    like): the process, its pidfile, and the files its stdout and stderr go to (files:
    never full). Killed and reaped on the way out."""
    driver = install_for(root, call)
    pidfile, out, err = root / "pids", root / "out", root / "err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen([str(driver), *ARGS[call]], cwd=root,
                                env=adjust_env(tag, FAULT_PIDFILE=str(pidfile), **env),
                                stdin=subprocess.PIPE, stdout=stdout, stderr=stderr)
    try:
        assert proc.stdin is not None
        proc.stdin.write(request_of(call))
        proc.stdin.close()
        yield proc, pidfile, out, err
    finally:
        proc.kill()
        proc.wait()


def real_transcript(root: Path, mode: str, call: Call, tag: str, **settings: Any) -> Transcript:
    """What the fault driver writes in `mode` until it exits, or until it hangs (it says so
    in its pidfile: its signal handlers are in place and it will write nothing more)."""
    with started_fault_driver(root, call, tag, FAULT_MODE=mode, FAULT_PHASE=str(call),
                              OPTUNE_IO_TIMEOUT=f"{T:g}",
                              **{f"FAULT_{k.upper()}": str(v) for k, v in settings.items()}
                              ) as (proc, pidfile, out, err):
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if pidfile.exists() and " hanging" in pidfile.read_text():
                break
            time.sleep(0.01)
        code = proc.poll()
    return out.read_bytes(), err.read_bytes(), code


def fake_transcript(mode: str, call: Call, **settings: Any) -> Transcript:
    """What the fake of `mode` writes, on MockClock, until it exits or hangs."""
    spec = CallSpec(fake_driver("02fault"), call, ARGS[call], request_of(call))

    async def run() -> Transcript:
        async with open_fake_spawner() as spawner:
            spawner.check_on_exit = False  # a hanging fake is left to the spawner to end
            spawner.script("02fault", fault_script(mode, call, io_timeout=T, **settings))
            proc = await spawner.start(spec)
            out, err = bytearray(), bytearray()

            async def feed() -> None:
                await proc.stdin.send_all(spec.stdin)
                await proc.stdin.aclose()

            async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
                while chunk := await stream.receive_some():
                    into += chunk

            with trio.move_on_after(3600):  # trio time: a fake that hangs
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(feed)
                    nursery.start_soon(drain, proc.stdout, out)
                    nursery.start_soon(drain, proc.stderr, err)
            return bytes(out), bytes(err), proc.exit_code

    return trio.run(run, clock=MockClock(autojump_threshold=0))


def lines_of(data: bytes, timed: bool) -> list[bytes]:
    """The lines; for a timed mode its numbers blanked and repeats run together."""
    lines = data.split(b"\n")
    if not timed:
        return lines
    blanked = [re.sub(rb"\d+", b"#", line) for line in lines]
    return [line for i, line in enumerate(blanked) if i == 0 or line != blanked[i - 1]]


@pytest.mark.e2e
@pytest.mark.parametrize(("mode", "call"), FAKED)
def test_each_fake_writes_what_the_fault_driver_writes(mode: str, call: Call, tmp_path: Path,
                                                       tag: str) -> None:
    """The fault matrix on MockClock runs fakes instead of the fault driver: each must do
    what the driver does in its mode (the same bytes on stdout and stderr, the same exit,
    or the same hang), or the matrix would test the aggregator against the wrong faults."""
    settings = SETTINGS.get(mode, {})
    real_out, real_err, real_code = real_transcript(tmp_path, mode, call, tag, **settings)
    fake_out, fake_err, fake_code = fake_transcript(mode, call, **settings)
    timed = mode in TIMED
    assert lines_of(fake_out, timed) == lines_of(real_out, timed)
    assert lines_of(fake_err, timed) == lines_of(real_err, timed)
    assert fake_code == real_code


def real_reaction(root: Path, mode: str, call: Call, sig: int, tag: str) -> Transcript:
    """What the fault driver writes when `sig` comes while it works (or hangs): until it
    exits, or (it ignores the signal) what it wrote before and its next line, if any."""
    with started_fault_driver(root, call, tag, FAULT_MODE=mode, FAULT_INTERVAL="0.1",
                              ) as (proc, pidfile, out, err):
        def ready() -> bool:
            """Its handlers in place: hanging, or working and its first line written."""
            said = set(pidfile.read_text().split()) if pidfile.exists() else set()
            return "hanging" in said or ("working" in said and b"\n" in out.read_bytes())

        deadline = time.monotonic() + 30
        while not ready():
            assert time.monotonic() < deadline and proc.poll() is None, out.read_bytes()
            time.sleep(0.01)
        proc.send_signal(sig)
        try:
            code: int | None = proc.wait(timeout=0.5)  # it reacts at once, or not at all
        except subprocess.TimeoutExpired:
            code = None
    return out.read_bytes(), err.read_bytes(), code


def fake_reaction(mode: str, call: Call, sig: int) -> Transcript:
    """The fake's, on MockClock: `sig` while it works (after its first line), then up to
    one more interval."""
    spec = CallSpec(fake_driver("02fault"), call, ARGS[call], request_of(call))

    async def run() -> Transcript:
        async with open_fake_spawner() as spawner:
            spawner.check_on_exit = False
            spawner.script("02fault", fault_script(mode, call, io_timeout=T, interval=0.1))
            proc = await spawner.start(spec)
            out, err = bytearray(), bytearray()

            async def drain(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
                while chunk := await stream.receive_some():
                    into += chunk

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, proc.stdout, out)
                nursery.start_soon(drain, proc.stderr, err)
                await proc.stdin.send_all(spec.stdin)
                await proc.stdin.aclose()
                await trio.sleep(0.05)  # its handlers in place, its first line written
                proc.signal_leader(sig)
                with trio.move_on_after(1.0):
                    await proc.wait_exited()
                nursery.cancel_scope.cancel()
            return bytes(out), bytes(err), proc.exit_code

    return trio.run(run, clock=MockClock(autojump_threshold=0))


@pytest.mark.e2e
@pytest.mark.parametrize(("mode", "call"), [*((mode, Call.ADJUST) for mode in sorted(SIGNALED)),
                                            ("cancel-aware", Call.MEASURE)])
def test_each_fake_answers_a_signal_as_the_fault_driver_does(mode: str, call: Call,
                                                             tmp_path: Path, tag: str) -> None:
    sig = SIGNALED[mode]
    real_out, real_err, real_code = real_reaction(tmp_path, mode, call, sig, tag)
    fake_out, fake_err, fake_code = fake_reaction(mode, call, sig)
    assert lines_of(fake_out, True) == lines_of(real_out, True)
    assert lines_of(fake_err, True) == lines_of(real_err, True)
    assert fake_code == real_code  # None: it ignored the signal
