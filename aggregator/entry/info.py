"""`adjust --info` and `measure --info`: instant, never hangs, never starts a driver,
imports neither trio nor yaml.

servo calls it before every command with no timeout of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aggregator import PRODUCT, __version__
from aggregator.limits import MAX_INFO_CONFIG_BYTES
from aggregator.protocol.errors import AggregatorError
from aggregator.protocol.strict_json import dumps
from aggregator.root.config_probe import (
    CONFIG_FILE,
    may_move_or_disable_drivers,
    read_config_text,
)
from aggregator.root.front_end import FrontEnd, drivers_of


def _drivers_dir_and_disabled(root: Path, front: FrontEnd) -> tuple[Path, frozenset[str]]:
    """The drivers directory; config.yaml is parsed only if it could change the answer,
    and only when it is small enough to parse at once."""
    text = read_config_text(root)  # bounded, never blocks; an unusable file raises
    if not may_move_or_disable_drivers(text):
        return root / f"{front}.d", frozenset()
    assert text is not None
    if len(text) > MAX_INFO_CONFIG_BYTES:
        raise AggregatorError("bad-config", f"{CONFIG_FILE} is over the "
                              f"{MAX_INFO_CONFIG_BYTES // 1024} KiB --info parses")
    from aggregator.root.config import config_from_text

    config = config_from_text(root, text)
    drivers_dir, disabled = drivers_of(config, front)
    return root / drivers_dir, disabled


def info_version(root: Path, front: FrontEnd = FrontEnd.ADJUST) -> str:
    try:
        from aggregator.root.discovery import find_drivers

        drivers_dir, disabled = _drivers_dir_and_disabled(root, front)
        names = [d.name for d in find_drivers(drivers_dir, disabled)]
        found = ", ".join(names) if names else "no drivers"
    except Exception as exc:  # --info must answer whatever is wrong; the command will say
        from aggregator.protocol.text import clip, one_line

        found = f"drivers unknown: {clip(one_line(str(exc)), 300)}"
    return f"{PRODUCT} {__version__} [{found}]"


def print_info(front: FrontEnd = FrontEnd.ADJUST) -> int:
    line = dumps({"version": info_version(Path(os.getcwd()), front), "has_cancel": True})
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except OSError as exc:  # EPIPE, /dev/full: servo cannot have the answer
        try:
            sys.stderr.write(f"servo-agg: error (bad-stdio): writing to stdout failed "
                             f"({exc.strerror})\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        return 1
    return 0
