"""The servo root's layout as plain values: which front-end a program name asks for, and
which files of a drivers directory are drivers, in what order.

The one place these rules live. `--info` answers from here, so this module imports only
os and stat (both loaded by Python's own start): no dataclasses, pathlib, re or enum,
each of which costs --info milliseconds on every servo command. `front_end.py` builds its
enum and `discovery.py` its types on top.
"""

from __future__ import annotations

import os
import stat

from aggregator.protocol.errors import AggregatorError

ADJUST = "adjust"
MEASURE = "measure"
FRONT_ENDS = (ADJUST, MEASURE)

#: Suffixes left behind by editors, patch and package managers: never drivers.
BACKUP_SUFFIXES = (".bak", ".orig", ".rej", ".swp", ".rpmnew", ".rpmsave")
#: Why a regular file without the execute bit is not a driver: it is data for them.
NOT_EXECUTABLE = "not executable (data for the drivers)"
#: How the files the kernel runs begin (a script's #! line, an ELF binary's header), and
#: what that looks like to an operator: such a file without the execute bit is most likely
#: a driver that lost it (a copy, an unpacked archive, a chmod -x), not data.
PROGRAM_MAGIC = ((b"#!", "it starts with #!"), (b"\x7fELF", "it is an ELF executable"))


def front_end_name(program: str, args: list[str]) -> tuple[str, list[str]]:
    """The front-end and its arguments: `measure ...` and `adjust ...` by the program's
    name (a copy or a symlink in the servo root), `servo-agg measure ...` by subcommand;
    anything else is adjust, as servo-agg always was."""
    name = os.path.basename(program)
    if name in FRONT_ENDS:
        return name, args
    if args and args[0] in FRONT_ENDS:
        return args[0], args[1:]
    return ADJUST, args


def classify(entry: os.DirEntry[str]) -> tuple[bool, str]:
    """Whether a directory entry is a driver, and why (for `--check`)."""
    name = entry.name
    if name.startswith("."):
        return False, "hidden file (name starts with '.')"
    if name.endswith("~"):
        return False, "editor backup (name ends with '~')"
    if name.endswith(BACKUP_SUFFIXES) or ".dpkg-" in name:
        return False, "backup or package-manager leftover"
    try:
        st = os.stat(entry.path)  # follows symlinks: a link to a driver is a driver
    except OSError as exc:
        return False, f"cannot stat ({exc.strerror}; broken symlink?)"
    if stat.S_ISDIR(st.st_mode):
        return False, "directory"
    if not stat.S_ISREG(st.st_mode):
        return False, "not a regular file"
    if not os.access(entry.path, os.X_OK):
        return False, NOT_EXECUTABLE
    return True, "executable regular file"


def file_head(path: str | os.PathLike[str], size: int) -> bytes | None:
    """The first `size` bytes (or fewer) of a regular file; None for anything else.

    The one way the root's files are looked into: it never blocks (a FIFO or a device
    swapped in is not read), follows no terminal, reads no more than asked, and never
    fails: what cannot be read is None.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError):  # ValueError: a NUL in the path
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def program_look(path: str | os.PathLike[str]) -> str | None:
    """Why a file looks like a program (see PROGRAM_MAGIC), or None for anything else:
    its first four bytes and no more. Not used by --info."""
    head = file_head(path, 4)
    if head is None:
        return None
    return next((why for magic, why in PROGRAM_MAGIC if head.startswith(magic)), None)


def listing(drivers_dir: str | os.PathLike[str]) -> list[tuple[str, str, bool, str]]:
    """Every entry of `drivers_dir` as (name, path, is_driver, why), in bytewise name
    order; a missing or unreadable directory is an error that says what to do."""
    shown = repr(os.fspath(drivers_dir))
    try:
        with os.scandir(drivers_dir) as entries:
            found = [(e.name, e.path, *classify(e)) for e in entries]
    except FileNotFoundError:
        raise AggregatorError(
            "no-drivers-dir",
            f"drivers directory {shown} does not exist; create it and put "
            "the drivers to aggregate in it (run from the servo root)",
        ) from None
    except NotADirectoryError:
        raise AggregatorError("no-drivers-dir", f"{shown} is not a directory") from None
    except PermissionError:
        raise AggregatorError("no-drivers-dir",
                              f"drivers directory {shown} cannot be read") from None
    found.sort(key=lambda item: os.fsencode(item[0]))
    return found


def driver_names(drivers_dir: str | os.PathLike[str],
                 disabled: frozenset[str] = frozenset()) -> list[str]:
    """The drivers to run, by file name in bytewise order, leaving out disabled ones."""
    return [name for name, _, is_driver, _ in listing(drivers_dir)
            if is_driver and name not in disabled]
