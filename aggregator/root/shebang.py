"""Why a driver could not be started, in words (stdlib only).

The kernel answers exec() of a script whose `#!` interpreter is missing with ENOENT, the
same error as for a missing file, so the bare message names the driver, which is there.
This reads the `#!` line as the kernel does and names the interpreter instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from aggregator.protocol.text import brief
from aggregator.root.layout import file_head

#: The kernel looks for the #! line in this much of a script (BINPRM_BUF_SIZE, Linux 5.1+).
SHEBANG_BYTES = 256


def interpreter_of(path: Path) -> str | None:
    """The interpreter a script's `#!` line names, exactly as the kernel reads it (after
    `#!` and any spaces or tabs, up to the next space, tab or newline: a `\\r` from
    Windows line endings is part of the name); None without one."""
    found = shebang_of(path)
    return None if found is None else found[0]


def shebang_of(path: Path) -> tuple[str, str] | None:
    """A script's `#!` line as the kernel reads it: the interpreter and the one argument
    it is given (the rest of the line, stripped; "" for none); None without one."""
    head = file_head(path, SHEBANG_BYTES)
    if head is None:
        return None
    if not head.startswith(b"#!"):
        return None
    line = head[2:].split(b"\n", 1)[0].lstrip(b" \t").replace(b"\t", b" ")
    name, _, argument = line.partition(b" ")
    return (os.fsdecode(name), os.fsdecode(argument.strip(b" "))) if name else None


def spawn_failure(path: Path, exc: OSError, cwd: Path) -> str:
    """The detail for a driver whose exec failed with `exc`: its missing or unusable `#!`
    interpreter named when that is the cause, otherwise the system's own words.

    `cwd` is where the driver is started: a relative interpreter is looked for there.
    """
    plain = f"could not be started: {exc}"
    if exc.errno not in (errno.ENOENT, errno.EACCES) or not path.is_file():
        return plain  # e.g. the driver itself vanished since it was found
    interpreter = interpreter_of(path)
    if interpreter is None:
        return plain
    where = cwd / interpreter  # an absolute interpreter stays what it is
    named = f"its #! line names the interpreter {brief(interpreter)}"
    if not os.path.exists(where):
        hint = (" (the line ends in a carriage return: the file has Windows line endings)"
                if interpreter.endswith("\r") else "")
        return f"could not be started: {named}, which does not exist{hint}"
    if exc.errno == errno.EACCES and (not os.path.isfile(where)
                                      or not os.access(where, os.X_OK)):
        return f"could not be started: {named}, which is not an executable file"
    return plain
