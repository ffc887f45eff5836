"""The journal end to end, through ./adjust and ./measure as servo runs them: what each
run leaves, the run id as a driver sees it, two runs at once, rotation within the bound,
a journal that cannot be written, the readers, and the metrics file read back with
prometheus_client. (The record of a run servo canceled: test_signals.py's SIGUSR1 run;
of one servo left: test_servo_end_e2e.py's; of a refused run: test_stdio_e2e.py's closed
stdout, and in-process test_journal_store.py's.)"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from aggregator.entry.readers import read_journal
from aggregator.root.front_end import FrontEnd
from tests.fault_support import aggregator_pid, run_watched
from tests.measure_support import measure_driver, run_measure
from tests.support import (
    REPO,
    adjust_env,
    journal_records,
    run_adjust,
    simple_driver,
    write_driver,
)

pytestmark = pytest.mark.e2e

JOURNAL = Path(".servo-agg") / "journal.jsonl"
SETTING = {"value": 1, "min": 0, "max": 10}
REQUEST = json.dumps({"application": {"components": {"web": {"settings": {
    "cpu": {"value": 2}}}}}})


def id_logging_driver(component: str) -> str:
    """A well-behaved driver that appends `<SERVO_AGG_RUN_ID> <call>` to ids.log for each
    call. In Python, unlike simple_driver: the record's CPU time of its calls is asserted,
    and sh's start can take less than the clock's tick."""
    descriptor = {"application": {"components": {component: {"settings": {"cpu": SETTING}}}}}
    return f"""
        import json, os, sys
        call = sys.argv[1] if sys.argv[1].startswith("--") else "adjust"
        with open("ids.log", "a") as log:
            log.write(os.environ.get("SERVO_AGG_RUN_ID", "-") + " " + call + "\\n")
        if call == "--info":
            print(json.dumps({{"version": "1.0", "has_cancel": False}}))
        elif call == "--query":
            print(json.dumps({descriptor!r}))
        else:
            json.load(sys.stdin)
            for i in range(2):
                print(json.dumps({{"progress": (i + 1) * 33, "message": f"step {{i}}"}}),
                      flush=True)
            print(json.dumps({{"status": "ok", "reason": "success"}}))
        """


def failing_adjust(stderr_bytes: int = 100) -> str:
    """simple_driver's `adjust` that fails, with at least `stderr_bytes` of stderr."""
    line = "cannot reach the database"
    return f"yes '{line}' | head -n {stderr_bytes // (len(line) + 1) + 1} >&2\nexit 3"


async def test_each_run_leaves_one_record_with_the_id_its_drivers_saw(
        servo_root: Path, tag: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A run of each front-end. (Every command names itself in the record alike:
    test_launch.py; --info, --help and the readers add none: test_journal_store.py.)"""
    write_driver(servo_root, "10web", id_logging_driver("web"))
    measure_driver(servo_root, "10gen", {"requests": {"unit": "count"}})
    env = adjust_env(tag, OPTUNE_IO_TIMEOUT="30", API_TOKEN="s3cr3t")
    done = await run_adjust(servo_root, "app", tag=tag, stdin=REQUEST, env=env)
    assert done.returncode == 0, done.stderr
    assert (await run_measure(servo_root, "--describe", "app", tag=tag)).returncode == 0
    found = journal_records(servo_root)
    assert [(r["front_end"], r["command"], r["status"]) for r in found] == [
        ("adjust", "adjust", "ok"), ("measure", "describe", "ok")]
    adjust = found[0]
    assert adjust["io_timeout"] == "30" and adjust["app"] == "app"
    assert adjust["request"]["bytes"] == len(REQUEST)
    assert adjust["final"] == '{"status": "ok", "reason": "success"}'
    assert [(c["driver"], c["call"], c["end"], c["exit_code"]) for c in adjust["calls"]] == [
        ("10web", "query", "exited", 0), ("10web", "adjust", "exited", 0)]
    assert adjust["calls"][1]["progress"]["count"] == 2
    assert adjust["calls"][0]["resources"]["source"] == "rusage"
    assert adjust["calls"][0]["resources"]["user_cpu"] > 0
    assert "s3cr3t" not in (servo_root / JOURNAL).read_text()
    # The id each driver call saw is its run's: the query was a head start, forked
    # before the run went under trio, and the adjust was not.
    seen = [line.split() for line in (servo_root / "ids.log").read_text().splitlines()]
    assert seen == [[adjust["run"], "--query"], [adjust["run"], "adjust"]]
    assert found[0]["run"] != found[1]["run"]
    # Either front-end's readers show the runs of both, and say which ran. (They read the
    # journal before trio is loaded: here in this process; through ./adjust, and before
    # trio: the tests below.)
    monkeypatch.chdir(servo_root)
    assert read_journal(["--history"], FrontEnd.MEASURE) == 0
    history = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0:1] for line in history] == [
        [r["started"][:19] + "Z"] for r in found]
    assert "./adjust app" in history[0]
    assert "./measure --describe app" in history[1]
    assert journal_records(servo_root) == found  # reading added nothing


async def test_the_operator_s_commands_are_recorded_too_two_at_once_and_json_gives_them(
        servo_root: Path, tag: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--check and --dry-run, run at the same time: two whole records."""
    write_driver(servo_root, "10web", simple_driver("web", {"cpu": SETTING}))
    runs = []

    async def run(*args: str) -> None:
        runs.append(await run_adjust(servo_root, *args, tag=tag, stdin=REQUEST))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "--check")
        nursery.start_soon(run, "--dry-run", "app")
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    found = journal_records(servo_root)
    assert sorted((r["command"], [c["call"] for c in r["calls"]]) for r in found) == [
        ("check", ["info", "query"]), ("dry-run", ["query"])]
    assert found[0]["run"] != found[1]["run"]
    [check] = [r for r in found if r["command"] == "check"]
    assert check["final"].startswith("result: servo would work with this root")
    monkeypatch.chdir(servo_root)  # the reader, in this process (as above)
    assert read_journal(["--last", "2", "--json"], FrontEnd.ADJUST) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == found


async def test_the_journal_rotates_within_its_bound_and_cuts_a_record_too_large(
        servo_root: Path, tag: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """64 KiB: four files of 16 KiB. Three are full already; the run's record (a driver's
    64 KiB of stderr) is cut to fit one file, and the files move down by one."""
    (servo_root / "config.yaml").write_text("aggregator:\n  journal: {max_bytes: 65536}\n")
    journal = servo_root / ".servo-agg"
    journal.mkdir()
    old = {"schema": 1, "run": "old", "started": "2026-01-01T00:00:00Z", "status": "ok"}
    for name, count in (("journal.jsonl", 15), ("journal.jsonl.1", 16),
                        ("journal.jsonl.2", 16), ("journal.jsonl.3", 16)):
        (journal / name).write_text("".join(
            json.dumps({**old, "run": f"{name}-{i}", "pad": "x" * 900}) + "\n"
            for i in range(count)))
    for n in range(4):  # four tails of stderr: more than one file holds
        write_driver(servo_root, f"2{n}db", simple_driver(
            f"db{n}", {"size": SETTING}, adjust=failing_adjust(stderr_bytes=64 * 1024)))
    request = json.dumps({"application": {"components": {
        f"db{n}": {"settings": {"size": {"value": 2}}} for n in range(4)}}})
    done = await run_adjust(servo_root, "app", tag=tag, stdin=request)
    assert done.returncode == 1
    sizes = {p.name: p.stat().st_size for p in journal.glob("journal.jsonl*")}
    assert sum(sizes.values()) <= 65536 and max(sizes.values()) <= 16384
    newest = journal_records(servo_root)
    assert len(newest) == 1 and newest[0]["cut"]
    assert len(newest[0]["calls"]) == 8  # each query and each adjust, bounded parts cut
    failed = newest[0]["calls"][-1]
    assert failed["stderr"]["bytes"] > 64 * 1024
    assert failed["stderr"]["tail"].endswith("cannot reach the database\n")
    assert journal_records(servo_root, "journal.jsonl.1")[0]["run"] == "journal.jsonl-0"
    assert journal_records(servo_root, "journal.jsonl.3")[0]["run"] == "journal.jsonl.2-0"
    monkeypatch.chdir(servo_root)  # the reader, in this process (as above)
    assert read_journal(["--last"], FrontEnd.ADJUST) == 0
    last = capsys.readouterr().out
    assert last.splitlines()[0].endswith(f"[run {newest[0]['run']}]")
    assert "cut to fit the journal's bound" in last


async def test_a_journal_that_cannot_be_written_costs_one_note_and_nothing_else(
        servo_root: Path, tag: str) -> None:
    write_driver(servo_root, "10web", simple_driver("web", {"cpu": SETTING}))
    (servo_root / ".servo-agg").write_text("a file where the journal's directory goes\n")
    done = await run_adjust(servo_root, "app", tag=tag, stdin=REQUEST)
    assert done.returncode == 0
    assert done.final == {"status": "ok", "reason": "success"}
    assert done.stderr == ("servo-agg: this run was not recorded: the journal "
                           ".servo-agg/journal.jsonl cannot be written (not a directory); "
                           "the run's outcome stands as reported\n")


async def test_the_metrics_file_reads_back_with_prometheus_client(servo_root: Path,
                                                                   tag: str) -> None:
    (servo_root / "config.yaml").write_text("aggregator:\n  metrics_file: servo_agg.prom\n")
    write_driver(servo_root, "10web", simple_driver("web", {"cpu": SETTING}))
    write_driver(servo_root, "20db", simple_driver("db", {"size": SETTING},
                                                   adjust=failing_adjust()))
    request = json.dumps({"application": {"components": {"db": {"settings": {
        "size": {"value": 2}}}}}})
    # (a second run reading the file and counting on, and every value: test_journal_metrics.py)
    assert (await run_adjust(servo_root, "app", tag=tag, stdin=request)).returncode == 1
    samples = {}
    for family in text_string_to_metric_families((servo_root / "servo_agg.prom").read_text()):
        for sample in family.samples:
            assert sample.timestamp is None
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    adjust = (("command", "adjust"), ("front_end", "adjust"))
    assert samples[("servo_agg_runs_total", (*adjust, ("status", "failed")))] == 1
    assert samples[("servo_agg_driver_failures_total", (
        ("driver", "20db"), ("front_end", "adjust"), ("reason", "driver-failed")))] == 1
    assert ("servo_agg_last_success_time_seconds", adjust) not in samples
    assert samples[("servo_agg_last_run_end_time_seconds", adjust)] > 1.7e9  # a real time
    assert samples[("servo_agg_last_run_duration_seconds", adjust)] > 0
    assert sorted(name for name in os.listdir(servo_root) if "prom" in name) == [
        ".servo_agg.prom.lock", "servo_agg.prom"]  # no temporary file left


READER_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from aggregator.entry.cli import main
code = main(sys.argv[2:], program="adjust")
sys.stdout.flush()
print(" ".join(m for m in ("trio", "yaml") if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("argv", [["--last"], ["--history", "--failed", "--since", "1d"],
                                  ["--show", "2"], ["--last", "--json"]])
def test_the_readers_answer_before_trio_and_without_a_config(
        tmp_path: Path, tag: str, argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", READER_PROBE, str(REPO), *argv],
                          cwd=tmp_path, env=adjust_env(tag), capture_output=True, text=True,
                          timeout=30, check=False)
    *notes, loaded = done.stderr.splitlines()
    assert loaded == ""  # neither trio nor yaml
    if argv[0] == "--show":
        assert done.returncode == 1
        assert json.loads(done.stdout)["reason"] == "bad-usage"
    else:
        assert done.returncode == 0 and done.stdout == ""
        assert notes == ["servo-agg: no runs recorded yet: .servo-agg/journal.jsonl does "
                         "not exist (each run of ./adjust and ./measure, but --info, --help "
                         "and these readers, adds one)"]
    assert not (tmp_path / ".servo-agg").exists()


def waits_for_a_lock(tag: str) -> bool:
    """The aggregator is blocked on a flock (in /proc/locks, a waiter is `N: -> FLOCK ...
    PID ...`)."""
    pid = aggregator_pid(tag)
    if pid is None:
        return False
    waiting = [line.split() for line in Path("/proc/locks").read_text().splitlines()]
    return any(fields[1:2] == ["->"] and fields[5:6] == [str(pid)] for fields in waiting)


async def test_a_stop_once_servo_has_the_final_line_ends_the_run_at_once(
        servo_root: Path, tag: str) -> None:
    """Writing the record (here: waiting for the journal's lock, which a stuck run holds)
    ignored SIGTERM, which was only noted: with a FIFO at metrics_file, for good (review
    1.2). Servo has its line by then: a stop ends the process."""
    (servo_root / ".servo-agg").mkdir(mode=0o700)
    holder = os.open(servo_root / ".servo-agg" / "journal.lock", os.O_RDWR | os.O_CREAT,
                     0o600)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        done, _ = await run_watched(servo_root, "--bogus", tag=tag, env=adjust_env(tag),
                                    signals_after_start=(signal.SIGTERM,),
                                    signal_when=lambda: waits_for_a_lock(tag))
    finally:
        os.close(holder)
    assert done.final is not None and done.final["reason"] == "bad-usage"  # servo had it
    assert done.returncode == -signal.SIGTERM  # not 1, after the lock's 2 s
