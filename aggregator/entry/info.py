"""`adjust --info`: instant, never hangs, never starts a driver, imports neither trio nor yaml.

servo calls it before every command with no timeout of its own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from aggregator import PRODUCT, __version__
from aggregator.root.config_probe import may_move_or_disable_drivers, read_config_text


def _drivers_dir_and_disabled(root: Path) -> tuple[Path, frozenset[str]]:
    """The drivers directory; config.yaml is parsed only if it could change the answer."""
    if not may_move_or_disable_drivers(read_config_text(root)):
        return root / "adjust.d", frozenset()
    from aggregator.root.config import load_config

    config = load_config(root)
    return root / config.drivers_dir, config.disabled


def info_version(root: Path) -> str:
    try:
        from aggregator.root.discovery import find_drivers

        drivers_dir, disabled = _drivers_dir_and_disabled(root)
        names = [d.name for d in find_drivers(drivers_dir, disabled)]
        found = ", ".join(names) if names else "no drivers"
    except Exception as exc:  # --info must answer whatever is wrong; the command will say
        found = f"drivers unknown: {exc}"
    return f"{PRODUCT} {__version__} [{found}]"


def print_info() -> int:
    line = json.dumps({"version": info_version(Path(os.getcwd())), "has_cancel": True})
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0
