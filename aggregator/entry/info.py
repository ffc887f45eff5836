"""`adjust --info` and `measure --info`: instant, never hangs, never starts a driver.

servo calls it before every command with no timeout of its own, so it costs no more than
Python's own start: in the usual servo root (no config.yaml, or one without an
`aggregator:` section that moves or disables drivers) it imports only the package's
plain-value modules (`root/layout`, `root/config_probe`, `protocol/errors`, `limits`)
and os and stat, which Python's start has loaded already. No trio, yaml, json (it loads
re), dataclasses, pathlib or enum: each costs milliseconds, on every servo command.
"""

from __future__ import annotations

import os
import sys

from aggregator import PRODUCT, __version__
from aggregator.limits import MAX_INFO_CONFIG_BYTES
from aggregator.protocol.errors import AggregatorError
from aggregator.root.config_probe import (
    CONFIG_FILE,
    may_move_or_disable_drivers,
    read_config_text,
)
from aggregator.root.layout import ADJUST, driver_names

#: How json.dumps (ensure_ascii) writes the characters it does not write as themselves.
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                  "\r": "\\r", "\t": "\\t"}


def json_string(text: str) -> str:
    """`text` as a JSON string, exactly as every stdout line is written
    (protocol/strict_json.json_string: json.dumps's ASCII escapes, each lone surrogate
    replaced by U+FFFD), without loading json (which loads re)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the usual case: nothing to escape
    if not text.isascii():
        from aggregator.protocol.text import scrub  # rare: a name that is not ASCII

        text = scrub(text)
    out = []
    for char in text:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}")
    return '"' + "".join(out) + '"'


def _drivers_dir_and_disabled(root: str | os.PathLike[str],
                              front: str) -> tuple[str, frozenset[str]]:
    """The drivers directory; config.yaml is parsed only if it could change the answer,
    and only when it is small enough to parse at once."""
    text = read_config_text(root)  # bounded, never blocks; an unusable file raises
    if not may_move_or_disable_drivers(text):
        return os.path.join(root, f"{front}.d"), frozenset()
    assert text is not None
    if len(text) > MAX_INFO_CONFIG_BYTES:
        raise AggregatorError("bad-config", f"{CONFIG_FILE} is over the "
                              f"{MAX_INFO_CONFIG_BYTES // 1024} KiB --info parses")
    # The rare root that moves or disables drivers: yaml (and the config's types) it is.
    from pathlib import Path

    from aggregator.root.config import config_from_text
    from aggregator.root.front_end import drivers_of

    config = config_from_text(Path(root), text)
    drivers_dir, disabled = drivers_of(config, front)
    return str(Path(root) / drivers_dir), disabled


def info_version(root: str | os.PathLike[str], front: str = ADJUST) -> str:
    try:
        drivers_dir, disabled = _drivers_dir_and_disabled(root, front)
        names = driver_names(drivers_dir, disabled)
        found = ", ".join(names) if names else "no drivers"
    except Exception as exc:  # --info must answer whatever is wrong; the command will say
        from aggregator.protocol.text import clip, one_line

        found = f"drivers unknown: {clip(one_line(str(exc)), 300)}"
    return f"{PRODUCT} {__version__} [{found}]"


def info_line(root: str | os.PathLike[str], front: str = ADJUST) -> str:
    """The one line, as json.dumps would write {"version": ..., "has_cancel": true}."""
    return f'{{"version": {json_string(info_version(root, front))}, "has_cancel": true}}'


def print_info(front: str = ADJUST) -> int:
    try:
        sys.stdout.write(info_line(os.getcwd(), front) + "\n")
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
