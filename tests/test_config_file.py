"""config.yaml cannot take --info or any command down: what is read, how much, and what
YAML may cost (FIFOs, devices, huge files, alias bombs, values Python cannot build)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from aggregator.entry.info import info_version
from aggregator.limits import (
    MAX_CONFIG_ALIAS_NODES,
    MAX_CONFIG_BYTES,
    MAX_INFO_CONFIG_BYTES,
)
from aggregator.protocol.errors import AggregatorError
from aggregator.root import safe_yaml
from aggregator.root.config import AggregatorConfig, load_config, load_document
from aggregator.root.config_probe import read_config_text
from aggregator.root.safe_yaml import AliasExpansionError, check_alias_expansion
from tests.support import launch_before_trio, run_adjust, write_driver


@contextlib.contextmanager
def fails_after(seconds: float) -> Iterator[None]:
    """Turn a hang (a blocking open of a FIFO) into a failing test instead of a stuck run."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def bomb(levels: int) -> str:
    """A "billion laughs": each level is nine aliases of the one before (9**levels nodes),
    the last one given as the aggregator's drivers_dir."""
    names = "abcdefghi"
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]\n"]
    for i in range(1, levels):
        lines.append(f"{names[i]}: &{names[i]} [{','.join([f'*{names[i - 1]}'] * 9)}]\n")
    return "".join(lines) + f"aggregator:\n  drivers_dir: *{names[levels - 1]}\n  drivers: {{}}\n"


def config_error(root: Path, *, whole_path: bool = True) -> str:
    """The bad-config message of load_config; it names the file (by its whole path when
    the file itself is the problem) and stays short."""
    with pytest.raises(AggregatorError) as caught:
        load_config(root)
    assert caught.value.reason == "bad-config"
    message = caught.value.message
    assert (str(root / "config.yaml") if whole_path else "config.yaml: ") in message
    assert len(message) < 1000
    return message


# -- what is read ---------------------------------------------------------------------------

@pytest.mark.unit
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.yaml")  # no writer: a plain open() blocks forever
    with fails_after(5):
        message = config_error(tmp_path)
    assert "is a FIFO (named pipe), not a regular file" in message


@pytest.mark.unit
def test_a_symlink_to_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").symlink_to("/dev/zero")
    with fails_after(5):
        message = config_error(tmp_path)
    assert "is a character device, not a regular file" in message


@pytest.mark.unit
def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").mkdir()
    assert "is a directory, not a regular file" in config_error(tmp_path)


@pytest.mark.unit
def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap's config.yaml as a symlink: that must keep working."""
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "config.yaml").write_text("aggregator:\n  on_failure: stop\n")
    (tmp_path / "config.yaml").symlink_to("..data/config.yaml")
    assert load_config(tmp_path).on_failure == "stop"


@pytest.mark.unit
def test_a_file_over_the_cap_is_refused_without_reading_it(tmp_path: Path) -> None:
    with (tmp_path / "config.yaml").open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB that costs nothing to make
    started = time.monotonic()
    message = config_error(tmp_path)
    assert time.monotonic() - started < 0.5
    assert "is 52,428,800 bytes, over the 1 MiB servo-agg reads" in message


@pytest.mark.unit
def test_a_file_at_the_cap_is_read(tmp_path: Path) -> None:
    head = "aggregator:\n  on_failure: stop\n"
    text = head + "#" * (MAX_CONFIG_BYTES - len(head) - 1) + "\n"
    (tmp_path / "config.yaml").write_text(text)
    assert read_config_text(tmp_path) == text
    (tmp_path / "config.yaml").write_text(text + "\n")
    assert "over the 1 MiB" in config_error(tmp_path)


@pytest.mark.unit
def test_reading_stops_at_the_cap_whatever_the_size_claims(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that grows between fstat and read (or claims a size it does not have)."""
    (tmp_path / "config.yaml").write_bytes(b"#" * (2 * MAX_CONFIG_BYTES))
    real_fstat = os.fstat

    def small_fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, *st[1:6], 10, *st[7:]))

    monkeypatch.setattr(os, "fstat", small_fstat)
    read: list[int] = []
    real_read = os.read

    def counted_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counted_read)
    assert "over 1,048,576 bytes" in config_error(tmp_path)
    assert sum(read) == MAX_CONFIG_BYTES + 1


@pytest.mark.unit
def test_absent_or_dangling_symlink_is_no_config(tmp_path: Path) -> None:
    assert read_config_text(tmp_path) is None
    (tmp_path / "config.yaml").symlink_to("nowhere.yaml")
    assert read_config_text(tmp_path) is None
    assert load_config(tmp_path) == AggregatorConfig()


# -- what YAML may cost ---------------------------------------------------------------------

@pytest.mark.unit
def test_an_alias_bomb_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    # 9**7 (4.8 million) nodes: before the fix this loaded and its repr made the message
    # tens of megabytes; the real 430-byte bomb (9**9) took a minute and gigabytes.
    (tmp_path / "config.yaml").write_text(bomb(7))
    started = time.monotonic()
    message = config_error(tmp_path)
    assert time.monotonic() - started < 1.0
    assert "refused: its aliases stand for" in message
    assert f"at most {MAX_CONFIG_ALIAS_NODES:,} are allowed" in message


@pytest.mark.unit
def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("aggregator:\n  drivers_dir: x\nweb: &w [1, *w]\n")
    message = config_error(tmp_path)
    assert "line 3" in message and "recursive" in message


@pytest.mark.unit
def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "base: &base {region: us-east-1, retries: 3}\n"
        "web: {<<: *base, replicas: 2}\n"
        "cache: {<<: *base, size: 64}\n"
        "aggregator:\n  drivers: {10-web: &heavy {weight: 3}, 20-db: *heavy}\n")
    document = load_document(tmp_path)
    assert document is not None
    assert document["cache"] == {"region": "us-east-1", "retries": 3, "size": 64}
    config = load_config(tmp_path)
    assert config.policy("20-db").weight == 3.0


@pytest.mark.unit
def test_the_expansion_bound_is_exact() -> None:
    # Ten uses of *a (a 3-node list) where the list is written once: 30 nodes more.
    text = "a: &a [1, 2]\nb: [" + ", ".join(["*a"] * 10) + "]\n"
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    assert node is not None
    check_alias_expansion(node, limit=30)
    with pytest.raises(AliasExpansionError):
        check_alias_expansion(node, limit=29)


@pytest.mark.unit
def test_the_pure_python_loader_is_bounded_too(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML without libyaml: the same bound, and deep nesting is an error, not a
    RecursionError traceback."""
    monkeypatch.delattr(yaml, "CSafeLoader")
    safe_yaml.bounded_loader.cache_clear()
    try:
        assert yaml.SafeLoader in safe_yaml.bounded_loader().__mro__
        (tmp_path / "config.yaml").write_text(bomb(7))
        assert "refused: its aliases stand for" in config_error(tmp_path)
        (tmp_path / "config.yaml").write_text("aggregator: " + "[" * 5000 + "]" * 5000 + "\n")
        assert "nested too deeply" in config_error(tmp_path)
    finally:
        monkeypatch.undo()
        safe_yaml.bounded_loader.cache_clear()
    assert yaml.CSafeLoader in safe_yaml.bounded_loader().__mro__


@pytest.mark.unit
@pytest.mark.parametrize(("text", "says"), [
    ("web:\n  when: 2001-13-01\n", "month must be in 1..12"),
    (f"web:\n  big: {'9' * 5000}\n", "Exceeds the limit (4300 digits)"),
])
def test_values_python_cannot_build_are_a_bad_config_error(tmp_path: Path, text: str,
                                                           says: str) -> None:
    """Valid YAML whose values raise ValueError in PyYAML (a traceback before the fix),
    in any driver's section."""
    (tmp_path / "config.yaml").write_text("aggregator:\n  on_failure: stop\n" + text)
    message = config_error(tmp_path)
    assert "a value cannot be loaded" in message and says in message


@pytest.mark.unit
def test_a_huge_bad_value_is_shown_clipped(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(f"aggregator:\n  drivers_dir: [{'x' * 100_000}]\n")
    message = config_error(tmp_path, whole_path=False)
    assert "drivers_dir: must be a non-empty path, not ['xxx" in message
    (tmp_path / "config.yaml").write_text(f"aggregator:\n  ? {'k' * 100_000}\n  : 1\n")
    message = config_error(tmp_path, whole_path=False)
    assert "aggregator.kkk" in message and "...: unknown key" in message


# -- --info stays instant -------------------------------------------------------------------

@pytest.mark.unit
def test_info_parses_only_a_small_config(servo_root: Path) -> None:
    write_driver(servo_root, "10web", "")
    padding = "#" * MAX_INFO_CONFIG_BYTES + "\n"
    (servo_root / "config.yaml").write_text("aggregator:\n  drivers: {}\n" + padding)
    version = info_version(servo_root)
    assert "drivers unknown: config.yaml is over the 64 KiB --info parses" in version
    (servo_root / "config.yaml").write_text("web:\n  replicas: 2\n" + padding)
    assert info_version(servo_root).endswith("[10web]")  # nothing for --info to parse


HOSTILE = ["fifo", "dev-zero", "bomb", "50MB"]


def make_hostile(root: Path, kind: str) -> None:
    path = root / "config.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "bomb":
        path.write_text(bomb(9))  # the 430-byte original: 9**9 nodes
        assert len(path.read_bytes()) <= 430
    else:  # sparse: what is refused by its size costs no writing
        path.write_bytes(b"aggregator:\n  drivers: {}\n")
        os.truncate(path, 50_000_026)


#: What --info and every command say of each: the file, and what is wrong with it.
SAYS = {"fifo": "is a FIFO", "dev-zero": "is a character device", "bomb": "an alias bomb",
        "50MB": "over the 1 MiB servo-agg reads"}


@pytest.mark.unit
@pytest.mark.parametrize("kind", HOSTILE)
def test_info_answers_whatever_config_yaml_is(servo_root: Path, kind: str) -> None:
    write_driver(servo_root, "10web", "")
    make_hostile(servo_root, kind)
    with fails_after(5):
        version = info_version(servo_root)
    assert "drivers unknown:" in version and SAYS[kind] in version
    assert len(version) < 500


@pytest.mark.unit
@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("argv", [["--query", "app"], ["--version"], ["app"]])
def test_every_command_says_what_is_wrong_without_blocking(
        servo_root: Path, kind: str, argv: list[str]) -> None:
    """Every command loads config.yaml in one place (the launch), before it reads a
    request: each kind refused by each command, without blocking on the FIFO (which
    would block whichever opened it)."""
    make_hostile(servo_root, kind)
    with fails_after(5):
        launched = launch_before_trio(servo_root, argv,
                                      request=b'{"application": {"components": {}}}')
    assert launched.code == 1
    error = launched.error
    assert (error["status"], error["reason"]) == ("failed", "bad-config")
    assert "config.yaml" in error["message"] and SAYS[kind] in error["message"]
    assert "servo-agg: error (bad-config): " in launched.stderr
    assert launched.reads == []  # refused before the request was read


@pytest.mark.e2e
async def test_info_is_instant_with_a_fifo_at_config_yaml(servo_root: Path, tag: str) -> None:
    """A FIFO at config.yaml, which would block whichever opened it: through ./adjust,
    the way servo's --info comes before every command (every kind, and every command's
    refusal, in the launch: the unit tests above; a refused config.yaml through ./adjust,
    as servo sees it: test_config.py's test_adjust_refuses_a_bad_section_with_a_json_error)."""
    write_driver(servo_root, "01web", "exit 3\n", shebang="#!/bin/sh")
    make_hostile(servo_root, "fifo")
    run = await run_adjust(servo_root, "--info", "app", tag=tag, timeout=15)
    assert run.returncode == 0, run.stderr
    assert run.elapsed < 2.0
    assert len(run.lines) == 1
    assert run.final["has_cancel"] is True
    assert "drivers unknown:" in run.final["version"] and SAYS["fifo"] in run.final["version"]
