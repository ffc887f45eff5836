"""One supervised driver call, in process: timeouts, the kill cascade, pipes, environment."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from aggregator.limits import MAX_LINE_BYTES
from aggregator.protocol.vocabulary import Call
from aggregator.root.discovery import Driver
from aggregator.supervision.call import Supervisor
from aggregator.supervision.spec import CallSpec
from tests.support import TAG_VAR, alive, real_supervisor, write_driver

pytestmark = pytest.mark.e2e


def supervision(root: Path, tag: str, io_timeout: float | None = None,
                env: dict[str, str] | None = None, kill_grace: float = 0.5) -> Supervisor:
    base = {**os.environ, TAG_VAR: tag} if env is None else {**env, TAG_VAR: tag}
    return real_supervisor(root, base, io_timeout=io_timeout, kill_grace=kill_grace)


def spec(root: Path, name: str, body: str, call: str = "adjust", stdin: bytes = b"",
         args: tuple[str, ...] = ("app",)) -> CallSpec:
    path = write_driver(root, name, body)
    return CallSpec(Driver(name, path), Call(call), args, stdin)



async def wait_dead(pid: int, within: float = 5.0) -> bool:
    """Wait (on a pidfd, which any process may open) until `pid` has stopped running."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        with trio.move_on_after(within):
            await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    return not alive(pid)


def recorded_pids(root: Path) -> list[int]:
    """The pids a test driver wrote to `pids` before it went quiet."""
    return [int(p) for p in (root / "pids").read_text().split()]


def same_directory(a: str | Path, b: str | Path) -> bool:
    return os.path.samefile(a, b)


# A driver that starts a child (in its own process group, the driver's), records both pids,
# then hangs without a word. With ignore_term both ignore SIGTERM, so only SIGKILL works.
def hanging_driver(ignore_term: bool = False) -> str:
    ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_term else ""
    return f"""
        import os, signal, subprocess, sys, time
        {ignore}
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; {ignore}; time.sleep(120)"])
        with open("pids", "w") as f:
            f.write(f"{{os.getpid()}} {{child.pid}}\\n")
        time.sleep(120)
        """


async def test_a_silent_driver_is_killed_at_t_minus_1_with_its_children(
        servo_root: Path, tag: str) -> None:
    sup = supervision(servo_root, tag, io_timeout=3)  # line limit: 2 s
    with trio.fail_after(30):
        outcome = await sup.call(spec(servo_root, "10hang", hanging_driver()))
    driver_pid, child_pid = recorded_pids(servo_root)
    assert outcome.problem is not None
    assert outcome.problem.reason == "timeout"
    assert "sent nothing for 2.0 s" in outcome.problem.detail
    assert "limit 2 s" in outcome.problem.detail
    assert 1.9 <= outcome.elapsed < 8, outcome.elapsed
    assert outcome.exit_code == -signal.SIGTERM
    assert not alive(driver_pid)
    assert await wait_dead(child_pid), "the driver's child outlived it"


async def test_a_driver_that_ignores_sigterm_is_killed_after_the_grace(
        servo_root: Path, tag: str) -> None:
    sup = supervision(servo_root, tag, io_timeout=2)  # line limit: 1 s, grace 0.5 s
    with trio.fail_after(30):
        outcome = await sup.call(spec(servo_root, "10stubborn",
                                           hanging_driver(ignore_term=True)))
    driver_pid, child_pid = recorded_pids(servo_root)
    assert outcome.problem is not None and outcome.problem.reason == "timeout"
    assert outcome.exit_code == -signal.SIGKILL
    assert 1.4 <= outcome.elapsed < 8, outcome.elapsed  # limit + the whole grace
    assert not alive(driver_pid)
    assert await wait_dead(child_pid), "the driver's child outlived it"


async def test_the_line_limit_applies_to_every_line_not_to_the_whole_call(
        servo_root: Path, tag: str) -> None:
    body = """
        import json, time
        for i in range(6):
            print(json.dumps({"progress": i * 10}), flush=True)
            time.sleep(0.3)
        print(json.dumps({"status": "ok"}))
        """
    seen: list[dict[str, Any]] = []
    sup = supervision(servo_root, tag, io_timeout=2)  # 1 s per line, ~1.8 s in all
    with trio.fail_after(30):
        outcome = await sup.call(spec(servo_root, "10steady", body), seen.append)
    assert outcome.problem is None, outcome.problem
    assert outcome.result == {"status": "ok"}
    assert [m["progress"] for m in seen] == [0, 10, 20, 30, 40, 50]
    assert outcome.exit_code == 0


async def test_a_grandchild_holding_stdout_open_does_not_delay_the_result(
        servo_root: Path, tag: str) -> None:
    body = """
        import json, os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open("pids", "w") as f:
            f.write(f"{child.pid}\\n")
        print(json.dumps({"status": "ok", "reason": "success"}), flush=True)
        os._exit(0)
        """
    sup = supervision(servo_root, tag, io_timeout=None)  # no line limit to fall back on
    with trio.fail_after(20):  # the grandchild would hold the pipes for 60 s
        outcome = await sup.call(spec(servo_root, "10leaves-child", body))
    (grandchild,) = recorded_pids(servo_root)
    assert outcome.problem is None, outcome.problem
    assert outcome.result == {"status": "ok", "reason": "success"}
    assert outcome.exit_code == 0
    assert outcome.elapsed < 15
    assert await wait_dead(grandchild), "what was left of the driver's group was not killed"


async def test_a_grandchild_in_its_own_session_does_not_delay_the_result(
        servo_root: Path, tag: str) -> None:
    body = """
        import json, os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 start_new_session=True)
        with open("pids", "w") as f:
            f.write(f"{child.pid}\\n")
        print(json.dumps({"status": "ok"}), flush=True)
        os._exit(0)
        """
    sup = supervision(servo_root, tag, io_timeout=None)
    try:
        with trio.fail_after(20):
            outcome = await sup.call(spec(servo_root, "10escapes", body))
        assert outcome.problem is None, outcome.problem
        assert outcome.result == {"status": "ok"}
        assert outcome.elapsed < 15
    finally:
        # Outside the group; the aggregator's orphan sweeper (not used here) kills it.
        for pid in recorded_pids(servo_root):
            os.kill(pid, signal.SIGKILL)


def json_line_of(size: int) -> bytes:
    """A valid JSON result line of exactly `size` bytes before its newline."""
    head, tail = b'{"status": "ok", "pad": "', b'"}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


async def test_a_line_over_1_mib_is_refused_as_bad_output(servo_root: Path, tag: str) -> None:
    (servo_root / "line").write_bytes(json_line_of(MAX_LINE_BYTES + 1) + b"\n")
    body = """
        import os, sys, time
        sys.stdout.buffer.write(open("line", "rb").read())
        sys.stdout.flush()
        time.sleep(60)
        """
    sup = supervision(servo_root, tag, io_timeout=None)
    with trio.fail_after(20):
        outcome = await sup.call(spec(servo_root, "10chatty", body))
    assert outcome.problem is not None
    assert outcome.problem.reason == "bad-output"
    assert f"longer than {MAX_LINE_BYTES} bytes" in outcome.problem.detail
    assert outcome.result is None
    assert outcome.exit_code == -signal.SIGTERM  # it was stopped, not waited for


async def test_a_line_of_exactly_1_mib_is_accepted(servo_root: Path, tag: str) -> None:
    (servo_root / "line").write_bytes(json_line_of(MAX_LINE_BYTES) + b"\n")
    body = """
        import sys
        sys.stdout.buffer.write(open("line", "rb").read())
        """
    sup = supervision(servo_root, tag, io_timeout=None)
    with trio.fail_after(20):
        outcome = await sup.call(spec(servo_root, "10big", body))
    assert outcome.problem is None, outcome.problem
    assert outcome.result is not None and outcome.result["status"] == "ok"
    assert len(outcome.result["pad"]) == MAX_LINE_BYTES - len(json_line_of(0))


async def test_a_large_request_does_not_deadlock(servo_root: Path, tag: str) -> None:
    # The driver answers every 64 KiB it reads with a 4 KiB progress line: 512 KiB of
    # stdout while it is still reading, far past what a pipe buffers. Writing the request
    # before reading would deadlock.
    body = """
        import json, os
        data = bytearray()
        while chunk := os.read(0, 65536):
            data += chunk
            print(json.dumps({"progress": 1, "message": "m" * 4096}), flush=True)
        request = json.loads(data)
        print(json.dumps({"status": "ok", "got": len(data),
                          "pad": len(request["pad"])}))
        """
    pad = "p" * (8 << 20)
    request = json.dumps({"application": {"components": {}}, "pad": pad}).encode() + b"\n"
    progress: list[dict[str, Any]] = []
    sup = supervision(servo_root, tag, io_timeout=None)
    with trio.fail_after(60):
        outcome = await sup.call(spec(servo_root, "10reader", body, stdin=request),
                                 progress.append)
    assert outcome.problem is None, outcome.problem
    assert outcome.result == {"status": "ok", "got": len(request), "pad": len(pad)}
    assert len(progress) >= 128


async def test_a_driver_that_never_reads_its_request_is_not_a_deadlock(
        servo_root: Path, tag: str) -> None:
    body = """
        import json
        print(json.dumps({"status": "ok"}))
        """
    sup = supervision(servo_root, tag, io_timeout=None)
    with trio.fail_after(20):
        outcome = await sup.call(spec(servo_root, "10deaf", body, stdin=b"x" * (4 << 20)))
    assert outcome.problem is None, outcome.problem
    assert outcome.result == {"status": "ok"}


ENV_REPORT = """
    import json, os
    print(json.dumps({"status": "ok", "pythonpath": os.environ.get("PYTHONPATH"),
                      "cwd": os.getcwd(), "pid": os.getpid(), "pgid": os.getpgid(0),
                      "sid": os.getsid(0)}))
    """


async def test_pythonpath_gets_the_servo_root_appended(servo_root: Path, tag: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["/opt/one", "/opt/two"])}
    with trio.fail_after(20):
        outcome = await supervision(servo_root, tag, env=env).call(
                                 spec(servo_root, "10env", ENV_REPORT))
    assert outcome.result is not None, outcome
    assert outcome.result["pythonpath"] == os.pathsep.join(
        ["/opt/one", "/opt/two", str(servo_root)])


async def test_pythonpath_is_the_servo_root_when_unset(servo_root: Path, tag: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with trio.fail_after(20):
        outcome = await supervision(servo_root, tag, env=env).call(
                                 spec(servo_root, "10env", ENV_REPORT))
    assert outcome.result is not None, outcome
    assert outcome.result["pythonpath"] == str(servo_root)


async def test_a_driver_can_import_a_shared_module_from_the_servo_root(
        servo_root: Path, tag: str) -> None:
    (servo_root / "adjust_shared.py").write_text("ANSWER = 42\n")
    body = """
        import json
        import adjust_shared
        print(json.dumps({"status": "ok", "answer": adjust_shared.ANSWER}))
        """
    with trio.fail_after(20):
        outcome = await supervision(servo_root, tag).call(
                                 spec(servo_root, "10shared", body))
    assert outcome.result == {"status": "ok", "answer": 42}, outcome.stderr.text()


async def test_cwd_is_the_servo_root_and_each_driver_leads_its_own_session(
        servo_root: Path, tag: str) -> None:
    with trio.fail_after(20):
        outcome = await supervision(servo_root, tag).call(
                                 spec(servo_root, "10env", ENV_REPORT))
    result = outcome.result
    assert result is not None, outcome
    assert same_directory(result["cwd"], servo_root)
    assert result["pgid"] == result["pid"]
    assert result["sid"] == result["pid"]
    assert result["pgid"] != os.getpgid(0)


async def test_arguments_reach_the_driver_and_stderr_is_captured(
        servo_root: Path, tag: str) -> None:
    body = """
        import json, sys
        print("warning: something", file=sys.stderr)
        print(json.dumps({"status": "ok", "argv": sys.argv[1:]}))
        """
    with trio.fail_after(20):
        outcome = await supervision(servo_root, tag).call(
                                 spec(servo_root, "10args", body, call="query",
                                      args=("--query", "my-app")))
    assert outcome.result == {"status": "ok", "argv": ["--query", "my-app"]}
    assert outcome.stderr.text() == "warning: something\n"
    assert outcome.spec.call == "query"
