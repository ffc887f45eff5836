"""Text as servo and people receive it: messages cut where servo would cut them, and user
data shown bounded and on one line. Pure, stdlib only (--info uses it)."""

from __future__ import annotations

import reprlib
from typing import Any

from aggregator.limits import MAX_MESSAGE_BYTES, MAX_SHOWN_CHARS

_ELLIPSIS = "..."


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """`text`, cut to `limit` characters (marked) when longer."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(_ELLIPSIS))] + _ELLIPSIS


class _BoundedRepr(reprlib.Repr):
    """reprlib stops walking a value early: a huge or alias-shared YAML structure (whose
    full repr can be gigabytes) costs a few hundred characters, never its whole size."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 8
        self.maxstring = self.maxother = self.maxlong = MAX_SHOWN_CHARS


_repr = _BoundedRepr().repr


def brief(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """repr(value) for a message: cut to `limit` characters, computed without walking
    more of `value` than that needs (and never failing: this runs while reporting)."""
    try:
        shown = _repr(value)
    except Exception:  # e.g. an int too long to convert to text
        shown = f"<{type(value).__name__}>"
    return clip(shown, limit)


def one_line(text: str) -> str:
    """`text` with every line break (any that str.splitlines knows) turned into a space,
    so what a driver reports cannot add lines to a one-line answer."""
    parts = text.splitlines()
    if len(parts) <= 1:
        return parts[0] if parts else ""
    return " ".join(part.strip() for part in parts)


def scrub(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so that it is valid UTF-8: a
    driver's "\\ud800" escape and a file name that is not UTF-8 (os.listdir gives it
    surrogate-escaped) can neither be encoded nor shown as they are."""
    if text.isascii():  # O(1) in CPython: the usual case costs nothing
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 keeps lone surrogates as code units; decoding replaces each one (and
        # joins a high and a low one that ended up side by side into one character).
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clip_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """Cut a message as servo does, on a character boundary (lone surrogates replaced)."""
    message = scrub(message)
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message
    marker = "\n[... cut at 2 MiB ...]"
    return encoded[: limit - len(marker)].decode("utf-8", "ignore") + marker


def version_line(drivers: list[str]) -> str:
    """`--version`'s one line: servo-agg's version, then in parentheses each driver's,
    as its file name and version (`10-web 1.0.0, 20-cache: failing`), or why none."""
    from aggregator import PRODUCT, __version__

    return f"{PRODUCT} {__version__} ({', '.join(drivers) or 'no drivers'})"
