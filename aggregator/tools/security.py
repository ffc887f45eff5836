"""Who besides servo's own user could change what servo runs (for `--check`; stdlib only).

Anyone who can write the servo root, the drivers directory, a driver or config.yaml runs
code as servo. These are warnings, not failures: servo-agg itself does not refuse such a
root, because servo images commonly run as root with odd umasks and a refusal would take
servo down for a deployment that works; `--check` is where it is reported.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Sequence
from pathlib import Path

from aggregator.root.config_probe import CONFIG_FILE
from aggregator.root.discovery import Driver


def owner(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def permission_problems(what: str, st: os.stat_result, euid: int) -> list[str]:
    """Why `what` lets someone other than root and servo's own user (`euid`) change what
    servo runs: writable by group or others, or owned by another non-root user. A
    directory's sticky bit does not help: others can still add files (a new driver)."""
    problems: list[str] = []
    writers = [who for bit, who in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "others"))
               if st.st_mode & bit]
    if writers:
        problems.append(f"{what} is writable by {' and '.join(writers)} "
                        f"({stat.filemode(st.st_mode)})")
    if st.st_uid not in (0, euid):
        problems.append(f"{what} is owned by {owner(st.st_uid)}, neither root nor the "
                        f"user servo-agg runs as ({owner(euid)})")
    return problems


def security_warnings(root: Path, drivers_dir: str, drivers: Sequence[Driver],
                      euid: int) -> list[str]:
    """Every way someone else could change what servo runs from `root`, one line each.

    Symlinks are followed: a symlink's own mode means nothing, and replacing it takes
    write access to its directory, which is checked itself.
    """
    found: list[str] = []
    paths = [("the servo root", root), (f"{drivers_dir}/", root / drivers_dir),
             (CONFIG_FILE, root / CONFIG_FILE)]
    paths += [(f"driver {d.name}", d.path) for d in drivers]
    for what, path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue  # absent or unreadable: reported where it matters
        found += [f"{problem}: whoever can change it runs code as servo"
                  for problem in permission_problems(what, st, euid)]
    try:
        resolved, real_root = (root / drivers_dir).resolve(), root.resolve()
    except (OSError, RuntimeError):  # a symlink loop: scan() reports the directory
        resolved = real_root = root
    if not resolved.is_relative_to(real_root):
        named = drivers_dir + ("" if str(resolved) == drivers_dir
                               else f" (that is, {resolved})")
        found.append(f"drivers_dir {named} is outside the servo root {real_root}: "
                     "whoever controls it decides what servo runs")
    return found


def nobody_else(drivers_dir: str, euid: int) -> str:
    """The line for a root where no one else can change anything."""
    who = "root" if euid == 0 else f"root and {owner(euid)}"
    return f"only {who} can change the servo root, {drivers_dir}/, {CONFIG_FILE} and the drivers"
