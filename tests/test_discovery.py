"""Which files in adjust.d are drivers, and in what order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aggregator.protocol.errors import AggregatorError
from aggregator.root.discovery import find_drivers, scan

pytestmark = pytest.mark.unit


def _file(directory: Path, name: str, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def _names(directory: Path) -> list[str]:
    return [d.name for d in find_drivers(directory)]


def test_executable_regular_files_are_drivers(tmp_path: Path) -> None:
    _file(tmp_path, "01web")
    _file(tmp_path, "02cache", 0o700)
    _file(tmp_path, "03other", 0o711)
    drivers = find_drivers(tmp_path)
    assert [d.name for d in drivers] == ["01web", "02cache", "03other"]
    assert drivers[0].path == tmp_path / "01web"


def test_non_executable_files_are_driver_data(tmp_path: Path) -> None:
    _file(tmp_path, "web.yaml", 0o644)
    _file(tmp_path, "secret", 0o600)
    _file(tmp_path, "web")
    assert _names(tmp_path) == ["web"]
    why = {c.name: (c.is_driver, c.why) for c in scan(tmp_path)}
    assert why["web.yaml"] == (False, "not executable (data for the drivers)")


def test_directories_are_skipped_even_when_executable(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir(mode=0o755)
    _file(tmp_path, "web")
    assert _names(tmp_path) == ["web"]
    assert [c.why for c in scan(tmp_path) if c.name == "lib"] == ["directory"]


def test_symlink_to_an_executable_file_counts(tmp_path: Path) -> None:
    target = _file(tmp_path, "real-driver-elsewhere")
    drivers = tmp_path / "adjust.d"
    drivers.mkdir()
    (drivers / "10link").symlink_to(target)
    assert _names(drivers) == ["10link"]
    assert find_drivers(drivers)[0].path == drivers / "10link"  # run by its own name


def test_symlinks_that_are_not_drivers_are_skipped(tmp_path: Path) -> None:
    drivers = tmp_path / "adjust.d"
    drivers.mkdir()
    data = _file(tmp_path, "data", 0o644)
    subdir = tmp_path / "sub"
    subdir.mkdir()
    (drivers / "to-data").symlink_to(data)
    (drivers / "to-dir").symlink_to(subdir)
    (drivers / "broken").symlink_to(tmp_path / "missing")
    assert _names(drivers) == []
    why = {c.name: c.why for c in scan(drivers)}
    assert why["broken"].startswith("cannot stat")
    assert why["to-dir"] == "directory"


def test_fifo_is_not_a_driver(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe", 0o755)
    assert _names(tmp_path) == []
    assert [c.why for c in scan(tmp_path)] == ["not a regular file"]


@pytest.mark.parametrize("name", [
    ".hidden", ".01web", "web~", "web.bak", "web.orig", "web.rej", "web.swp", ".web.swp",
    "web.dpkg-old", "web.dpkg-dist", "web.dpkg-new", "web.dpkg-tmp", "web.rpmnew",
    "web.rpmsave",
])
def test_hidden_and_backup_files_are_skipped_even_when_executable(
        tmp_path: Path, name: str) -> None:
    _file(tmp_path, name)
    _file(tmp_path, "web")
    assert _names(tmp_path) == ["web"]
    (skipped,) = [c for c in scan(tmp_path) if c.name == name]
    assert not skipped.is_driver


@pytest.mark.parametrize("name", ["web.sh", "web.py", "backup-web", "bak", "web.bak2",
                                  "rej", "web-orig", "swp"])
def test_names_that_merely_resemble_backups_are_drivers(tmp_path: Path, name: str) -> None:
    _file(tmp_path, name)
    assert _names(tmp_path) == [name]


def test_order_is_bytewise_by_file_name(tmp_path: Path) -> None:
    names = ["b", "B", "a", "_x", "10web", "2cache", "Zed", "é-accent", "a-b", "a.b", "ab"]
    for name in names:
        _file(tmp_path, name)
    expected = sorted(names, key=lambda n: n.encode())
    assert _names(tmp_path) == expected
    # Spelled out, so the rule is visible: digits, then upper case, '_', lower, non-ASCII.
    assert expected == ["10web", "2cache", "B", "Zed", "_x", "a", "a-b", "a.b", "ab", "b",
                        "é-accent"]


def test_scan_lists_every_entry_in_the_same_order(tmp_path: Path) -> None:
    for name in ["c", "a.bak", "b"]:
        _file(tmp_path, name)
    (tmp_path / "d").mkdir()
    assert [c.name for c in scan(tmp_path)] == ["a.bak", "b", "c", "d"]
    assert [c.is_driver for c in scan(tmp_path)] == [False, True, True, False]


def test_disabled_drivers_are_left_out(tmp_path: Path) -> None:
    for name in ["a", "b", "c"]:
        _file(tmp_path, name)
    assert [d.name for d in find_drivers(tmp_path, frozenset({"b"}))] == ["a", "c"]


@pytest.mark.parametrize(("folder", "other"), [("adjust.d", "measure"), ("measure.d", "adjust")])
def test_missing_directory_is_a_no_drivers_dir_error(tmp_path: Path, folder: str,
                                                     other: str) -> None:
    with pytest.raises(AggregatorError) as caught:
        find_drivers(tmp_path / folder)
    assert caught.value.reason == "no-drivers-dir"
    assert folder in caught.value.message
    assert "does not exist" in caught.value.message
    assert other not in caught.value.message  # not "the measure drivers" for adjust.d


def test_a_file_where_the_directory_should_be_is_a_no_drivers_dir_error(
        tmp_path: Path) -> None:
    (tmp_path / "adjust.d").write_text("")
    with pytest.raises(AggregatorError) as caught:
        find_drivers(tmp_path / "adjust.d")
    assert caught.value.reason == "no-drivers-dir"
    assert "not a directory" in caught.value.message


def test_empty_directory_is_zero_drivers(tmp_path: Path) -> None:
    assert find_drivers(tmp_path) == []
    assert scan(tmp_path) == []


# -- a program without its execute bit (#16 point 1) --------------------------------------

def test_a_program_without_its_execute_bit_is_told_from_data(tmp_path: Path) -> None:
    _file(tmp_path, "20-prom", 0o644)  # #!/bin/sh, chmod -x
    (tmp_path / "30-bin").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(64))
    (tmp_path / "settings.yaml").write_text("#  comment, then data\nkey: 1\n")
    (tmp_path / "empty").write_text("")
    (tmp_path / "short").write_bytes(b"#")
    seen = {c.name: c.program for c in scan(tmp_path)}
    assert seen == {"20-prom": "it starts with #!", "30-bin": "it is an ELF executable",
                    "settings.yaml": None, "empty": None, "short": None}
    assert find_drivers(tmp_path) == []  # still not run: only named


def test_drivers_and_skipped_files_are_not_looked_into(tmp_path: Path) -> None:
    _file(tmp_path, "10-web")  # executable: a driver, whatever it starts with
    _file(tmp_path, "10-web.bak", 0o644)  # a backup starting with #!: never a driver
    _file(tmp_path, ".hidden", 0o644)
    assert [(c.name, c.program) for c in scan(tmp_path)] == [
        (".hidden", None), ("10-web", None), ("10-web.bak", None)]


def test_a_files_head_is_read_boundedly_and_never_blocks(tmp_path: Path) -> None:
    from aggregator.root.layout import file_head

    os.mkfifo(tmp_path / "fifo")  # no writer: a blocking open would wait forever
    huge = tmp_path / "huge"
    with huge.open("wb") as f:
        f.write(b"#!/bin/sh\n")
        f.truncate(1 << 40)  # sparse: 1 TiB, read no further than its start
    assert file_head(huge, 4) == b"#!/b"
    assert file_head(huge, 256) == b"#!/bin/sh\n" + bytes(246)
    assert file_head(tmp_path / "fifo", 4) is None
    assert file_head(tmp_path, 4) is None  # a directory
    assert file_head(tmp_path / "missing", 4) is None
    assert file_head(f"{tmp_path}/nul\0byte", 4) is None  # never raises


def test_the_look_and_the_shebang_share_one_reader(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """program_look (4 bytes) and shebang_of (the kernel's 256) read through file_head."""
    from aggregator.root import layout, shebang

    read: list[int] = []

    def recorded(path: str | os.PathLike[str], size: int) -> bytes | None:
        read.append(size)
        return b"#!/bin/sh -e\n"[:size]

    monkeypatch.setattr(layout, "file_head", recorded)
    monkeypatch.setattr(shebang, "file_head", recorded)
    assert layout.program_look(tmp_path / "x") == "it starts with #!"
    assert shebang.shebang_of(tmp_path / "x") == ("/bin/sh", "-e")
    assert read == [4, shebang.SHEBANG_BYTES]


def test_the_warning_names_the_file_and_the_fix(tmp_path: Path) -> None:
    from aggregator.root.discovery import unrun_programs

    _file(tmp_path, "20-prom", 0o644)
    (tmp_path / "notes.txt").write_text("data\n")
    (warning,) = unrun_programs("measure.d", scan(tmp_path))
    assert warning.startswith("measure.d/20-prom is not executable, though it starts with #!")
    assert "chmod +x measure.d/20-prom" in warning
