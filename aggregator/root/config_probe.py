"""Reading config.yaml safely, and a cheap look at it before paying for PyYAML (used by
--info: it imports only os and stat, which Python's start has loaded already).

Most servo roots have no `aggregator:` section; for them, importing yaml and parsing
every driver's section would cost --info and every command ~12-25 ms for nothing.
"""

from __future__ import annotations

import os
import stat

from aggregator.limits import MAX_CONFIG_BYTES
from aggregator.protocol.errors import AggregatorError

CONFIG_FILE = "config.yaml"

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _unusable(path: str, problem: str) -> AggregatorError:
    return AggregatorError("bad-config", f"{path}: {problem}")


def _not_regular(path: str, mode: int) -> AggregatorError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return _unusable(path, f"is {kind}, not a regular file (servo-agg reads config.yaml "
                           "only from a regular file)")


def _too_big(path: str, size: str) -> AggregatorError:
    return _unusable(path, f"is {size}, over the {MAX_CONFIG_BYTES / 2**20:g} MiB "
                           "servo-agg reads")


def read_config_text(servo_root: str | os.PathLike[str]) -> str | None:
    """The text of config.yaml, or None when there is none.

    Anything else that cannot be used is a bad-config error naming file and problem: not
    a regular file, over MAX_CONFIG_BYTES, unreadable, not UTF-8. A FIFO named
    config.yaml would block a plain open forever and a symlink to /dev/zero would be read
    until memory runs out: the path is stat'ed first (no device is even opened), then
    opened non-blocking and the opened file checked again (it may have been swapped), and
    never more than the cap plus one byte is read, whatever its size claims.
    """
    path = os.path.join(servo_root, CONFIG_FILE)
    try:
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            raise _not_regular(path, mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unusable(path, f"cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        if st.st_size > MAX_CONFIG_BYTES:
            raise _too_big(path, f"{st.st_size:,} bytes")
        chunks: list[bytes] = []
        left = MAX_CONFIG_BYTES + 1  # one more: a file growing past the cap is seen
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 16))):
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise _unusable(path, f"cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if left <= 0:
        raise _too_big(path, f"over {MAX_CONFIG_BYTES:,} bytes")
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unusable(path, f"cannot be read as UTF-8 text (byte {exc.start} is "
                              f"{data[exc.start]:#04x})") from None


def mentions(text: str, word: str) -> bool:
    """`word` on some line before any `#`: a mention outside a comment, in any YAML style
    (block, quoted, flow), after which the text is parsed for real. Plain string search,
    not a regex: --info must not pay for importing re."""
    if word not in text:  # the usual answer, at the cost of one scan
        return False
    return any(word in line.partition("#")[0] for line in text.split("\n"))


def top_level_names(text: str) -> list[str]:
    """The names of config.yaml's top-level sections as block-style YAML writes them
    (`name:` at the start of a line, quoted or not): a cheap look, no YAML parse."""
    names = []
    for line in text.split("\n"):
        if not line or line[0] in " \t#-.{[!&*|>%@`\r":
            continue
        name, colon, _ = line.partition(":")
        name = name.strip()
        if colon and name:
            names.append(name[1:-1] if len(name) > 1 and name[0] == name[-1]
                         and name[0] in "'\"" else name)
    return names


def _distance(a: str, b: str, most: int) -> int:
    """Edits (insert, delete, replace, swap two neighbours) from `a` to `b`, counted up
    to most + 1."""
    if abs(len(a) - len(b)) > most:
        return most + 1
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                current[j] = min(current[j], before[j - 2] + 1)
        before, row = row, current
    return min(row[-1], most + 1)


def misspelled_sections(text: str | None, section: str = "aggregator") -> list[str]:
    """Top-level names that are most likely `section` mistyped: the same but for case, or
    one or two edits away. servo-agg would ignore what is under them without a word."""
    if text is None:
        return []
    return [name for name in top_level_names(text) if name != section
            and _distance(name.lower(), section, 2) <= 2]


def may_configure_aggregator(text: str | None) -> bool:
    """False when config.yaml is absent or cannot mention the aggregator."""
    return text is not None and mentions(text, "aggregator")


def may_move_or_disable_drivers(text: str | None) -> bool:
    """Only drivers_dir and drivers.<name>.enabled change what --info reports."""
    return text is not None and mentions(text, "aggregator") and mentions(text, "drivers")
