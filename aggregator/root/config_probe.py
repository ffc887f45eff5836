"""A cheap look at config.yaml before paying for PyYAML (stdlib only, used by --info).

Most servo roots have no `aggregator:` section; for them, importing yaml and parsing
every driver's section would cost --info and every command ~12-25 ms for nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

CONFIG_FILE = "config.yaml"

# A mention outside a comment, in any YAML style (block, quoted, flow): then parse for real.
_AGGREGATOR = re.compile(r"^[^#\n]*aggregator", re.MULTILINE)
_DRIVERS = re.compile(r"^[^#\n]*drivers", re.MULTILINE)


def read_config_text(servo_root: Path) -> str | None:
    """The text of config.yaml, or None when there is none (unreadable is the parser's call)."""
    try:
        return (servo_root / CONFIG_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return ""  # let the real loader report it


def may_configure_aggregator(text: str | None) -> bool:
    """False when config.yaml is absent or cannot mention the aggregator ("" = unreadable:
    the real loader must report it)."""
    if text is None:
        return False
    return text == "" or bool(_AGGREGATOR.search(text))


def may_move_or_disable_drivers(text: str | None) -> bool:
    """Only drivers_dir and drivers.<name>.enabled change what --info reports."""
    return text is not None and bool(_AGGREGATOR.search(text)) and bool(_DRIVERS.search(text))
