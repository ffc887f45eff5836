"""Text as servo and people receive it: messages cut where servo would cut them, user
data shown bounded and on one line, and driver text made safe for a terminal. Pure,
stdlib only (--info uses it)."""

from __future__ import annotations

import reprlib
import signal
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


#: Control characters but tab and newline, shown as escapes (\x1b, not the escape).
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
            if code not in (0x09, 0x0A)}
#: The same and newline too, for what must stay one line.
_LINE_ESCAPES = {**_ESCAPES, 0x0A: "\\x0a"}


def visible(text: str, *, newlines: bool = True) -> str:
    """`text` with every control character but tab (and newline, unless `newlines` is
    false: a line of a report stays one line) escaped: what a driver wrote, shown on a
    terminal (the journal's readers, the live display, -v, every note on stderr, the text
    reports), cannot move the cursor or change the terminal."""
    return text.translate(_ESCAPES if newlines else _LINE_ESCAPES)


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


def shown_name(name: str) -> str:
    """A name in a message, bounded, each lone surrogate shown as its escape (`a\\udc80`):
    two names that differ only there must read differently, which scrub() would undo."""
    return clip(name.encode("utf-8", "backslashreplace").decode("utf-8"))


class DistinctNames:
    """Names on their way to servo, which gets each one scrubbed: two that differ only in
    lone surrogates would become one there, and the second would silently overwrite the
    first. `clash` finds the name a new one would be merged with.

    A name is a tuple of parts (a setting is its component and its own name)."""

    def __init__(self) -> None:
        self._first: dict[tuple[str, ...], tuple[tuple[str, ...], str]] = {}

    def clash(self, name: tuple[str, ...], owner: str) -> tuple[tuple[str, ...], str] | None:
        """The earlier (name, owner) that `name` would become one with at servo; None when
        there is none (the same name again is not a clash: duplicates are the caller's)."""
        first = self._first.setdefault(tuple(map(scrub, name)), (name, owner))
        return first if first[0] != name else None


def clash_message(kind: str, first: tuple[tuple[str, ...], str], name: tuple[str, ...],
                  owner: str) -> str:
    """Why two names (and whose) cannot both reach servo: they differ only in bytes that
    are not valid UTF-8, which servo-agg must replace (U+FFFD) to write JSON."""
    def shown(parts: tuple[str, ...]) -> str:
        return shown_name(".".join(parts))

    return (f"{kind} {shown(first[0])} of {first[1]} and {kind} {shown(name)} of {owner} "
            f"would reach servo as the same name, {clip(scrub('.'.join(name)))}: they differ "
            "only in bytes that are not valid UTF-8, which are replaced on the way; each "
            f"{kind} must reach servo under a name of its own")


def clip_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """Cut a message as servo does, on a character boundary (lone surrogates replaced)."""
    message = scrub(message)
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message
    marker = "\n[... cut at 2 MiB ...]"
    return encoded[: limit - len(marker)].decode("utf-8", "ignore") + marker


def signal_name(number: int) -> str:
    """A signal by its name (SIGKILL); one the system does not name, by its number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_BINARY_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def show_bytes(size: int) -> str:
    """A size in binary units, to one decimal at most: 64 MiB, 12.3 MiB, 1.5 GiB."""
    for unit, scale in _BINARY_UNITS:
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def version_line(drivers: list[str]) -> str:
    """`--version`'s one line: servo-agg's version, then in parentheses each driver's,
    as its file name and version (`10-web 1.0.0, 20-cache: failing`), or why none."""
    from aggregator import PRODUCT, __version__

    return f"{PRODUCT} {__version__} ({', '.join(drivers) or 'no drivers'})"
