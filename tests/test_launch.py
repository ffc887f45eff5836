"""The entry point before trio, without a process: the command named once, and a stop
while the request is read ending as every stopped run does."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import pytest

from aggregator.entry import launch
from aggregator.root.front_end import FrontEnd
from aggregator.supervision.facts import RunFacts
from aggregator.supervision.output import Output
from aggregator.supervision.signals import EarlySignals, StoppedEarly

pytestmark = pytest.mark.unit


def run_before_trio(root: Path, argv: list[str], front: FrontEnd,
                    request: bytes | StoppedEarly) -> tuple[int, list[str], str, RunFacts]:
    """launch._run until its job is built (no Run starts): its exit code when it ends
    before (-1 once the job is built), stdout's lines, stderr, and the facts kept."""
    (root / "adjust.d").mkdir(exist_ok=True)
    (root / "measure.d").mkdir(exist_ok=True)
    out_path = root / "stdout"
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT)
    err = io.StringIO()
    output = Output(fd, err)
    facts = RunFacts()

    def read_request(*_: object, **__: object) -> bytes:
        if isinstance(request, StoppedEarly):
            raise request
        return request

    class Started(Exception):
        """The job was built: the Run would start now."""

    real_job = launch._job

    def job_then_stop(*args: object, **kwargs: object) -> tuple[launch.Job, object]:
        job, _ = real_job(*args, **kwargs)  # type: ignore[arg-type]
        raise Started(job.command)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(launch, "read_request", read_request)
        patch.setattr(launch, "_job", job_then_stop)
        try:
            code, _ = launch._run(argv, front, EarlySignals(), output, False, facts, root)
        except Started as started:
            code, job_command = -1, str(started)
            assert job_command == facts.command  # the record names the job's command
        finally:
            os.close(fd)
    return code, out_path.read_text().splitlines(), err.getvalue(), facts


def test_a_stop_while_the_request_is_read_is_written_as_any_stopped_run(
        tmp_path: Path) -> None:
    code, lines, said, _ = run_before_trio(tmp_path, ["app"], FrontEnd.ADJUST,
                                           StoppedEarly(signal.SIGTERM))
    assert code == 128 + signal.SIGTERM
    [line] = lines
    assert json.loads(line) == {
        "status": "aborted", "reason": "terminated",
        "message": "servo-agg received SIGTERM while reading the request; no driver was "
                   "started"}
    # and its line for people, as Output.failure writes every failed final line
    assert said == ("servo-agg: aborted: servo-agg received SIGTERM while reading the "
                    "request; no driver was started\n")


REQUESTS = {FrontEnd.ADJUST: b'{"application": {"components": {}}}',
            FrontEnd.MEASURE: b'{"metrics": [], "control": {}}'}


@pytest.mark.parametrize(("front", "argv", "command"), [
    (FrontEnd.ADJUST, ["app"], "adjust"),
    (FrontEnd.ADJUST, ["--query", "app"], "query"),
    (FrontEnd.ADJUST, ["--version"], "version"),
    (FrontEnd.ADJUST, ["--dry-run", "app"], "dry-run"),
    (FrontEnd.MEASURE, ["app"], "measure"),
    (FrontEnd.MEASURE, ["--describe", "app"], "describe"),
    (FrontEnd.MEASURE, ["--version"], "version"),
    (FrontEnd.MEASURE, ["--dry-run", "app"], "dry-run"),
])
def test_the_job_runs_the_command_the_record_names(tmp_path: Path, front: FrontEnd,
                                                    argv: list[str], command: str) -> None:
    code, _, said, facts = run_before_trio(tmp_path, argv, front, REQUESTS[front])
    assert code == -1, said  # the job was built, and its command checked against the facts
    assert facts.command == command


@pytest.mark.parametrize(("argv", "says"), [
    (["--failed"], "--failed and --since go with --history or --last"),
    (["--since", "5m"], "--failed and --since go with --history or --last"),
    (["--hist"], "--last, --show and --history are spelled out in full"),
])
def test_a_reader_option_without_its_reader_says_what_it_goes_with(
        tmp_path: Path, argv: list[str], says: str) -> None:
    code, lines, _, _ = run_before_trio(tmp_path, argv, FrontEnd.ADJUST, b"")
    assert code == 1
    [line] = lines
    error = json.loads(line)
    assert error["reason"] == "bad-usage" and error["message"].startswith(says)
