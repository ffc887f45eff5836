"""JSON and text as servo-agg writes them to stdout, and JSON as it reads it: strict.

Python's json module writes and reads NaN, Infinity and -Infinity, which are not JSON
(servo's parser or the optimizer's may refuse them), and lets a lone surrogate through
(a driver's "\\ud800" escape, or a file name that is not UTF-8, which os.listdir hands
over surrogate-escaped): such text cannot be encoded as UTF-8 at all. So every stdout
line is made here: JSON without non-finite numbers, ASCII only, and text with each lone
surrogate replaced by U+FFFD. Reading, NaN and the infinities are refused like any other
token that is not JSON. Pure, stdlib only (--info uses it).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import Any, NoReturn

from aggregator.protocol.text import clip, scrub

#: Writes strict JSON, ASCII only: the bytes stay the same whatever reads them.
_STRICT = json.JSONEncoder(allow_nan=False)
#: The same without the ASCII escapes, so that a lone surrogate is seen (and replaced).
_RAW = json.JSONEncoder(allow_nan=False, ensure_ascii=False)
#: Python's own dialect: only to find the non-finite numbers the strict one refuses.
_LAX = json.JSONEncoder()

#: In ASCII JSON, a surrogate (paired or lone) can only appear as this escape.
_SURROGATE_ESCAPE = "\\ud"


class NotStrictJson(ValueError):
    """A NaN, Infinity or -Infinity token (Python's json reads them, JSON has none), or a
    number that reads as infinity."""

    def __init__(self, token: str, why: str = "is not a JSON value") -> None:
        self.token = clip(token, 40)
        super().__init__(f"{self.token} {why}")


def _refuse(token: str) -> NoReturn:
    raise NotStrictJson(token)


def _as_null(token: str) -> None:
    return None


def _finite_float(text: str) -> float:
    """A JSON number too large for a float (1e400) reads as infinity: refused too."""
    value = float(text)
    if value - value != 0.0:
        raise NotStrictJson(text, "is out of range: it reads as infinity")
    return value


class LineDecoder:
    """Decodes one JSON value at a time (raw_decode: no whitespace passes), refusing NaN
    and the infinities; `overflowed` says whether the last value held a number that reads
    as infinity (1e400). That is judged where it matters (a result, not a progress value,
    which is clamped), and noticed as the value is built: walking a value of tens of MB
    again, or encoding it, would cost as much memory as the value's text."""

    def __init__(self) -> None:
        self.overflowed = False
        self._decode = json.JSONDecoder(parse_constant=_refuse,
                                        parse_float=self._float).raw_decode

    def _float(self, text: str) -> float:
        value = float(text)
        if value - value != 0.0:
            self.overflowed = True
        return value

    def decode(self, text: str) -> tuple[Any, int]:
        """The value at the start of `text`, and where it ends."""
        self.overflowed = False
        value, end = self._decode(text)
        return value, end


def loads_strict(data: str | bytes, **hooks: Any) -> Any:
    """json.loads, refusing NaN, the infinities and numbers that overflow a float."""
    return json.loads(data, parse_constant=_refuse, parse_float=_finite_float, **hooks)


def utf8(text: str) -> bytes:
    """`text` as UTF-8, lone surrogates replaced: encoding can never fail."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return scrub(text).encode("utf-8")


def dumps(value: Any) -> str:
    """`value` as one line of strict JSON, ASCII only, without lone surrogates.

    Non-finite numbers are refused where they come in (drivers, the request); should one
    still get here, it is written as null rather than as a token that is not JSON.
    """
    try:
        text = _STRICT.encode(value)
    except ValueError:
        value = json.loads(_LAX.encode(value), parse_constant=_as_null)
        text = _STRICT.encode(value)
    if _SURROGATE_ESCAPE in text:  # rare: a surrogate, or an astral character (emoji)
        text = _STRICT.encode(json.loads(scrub(_RAW.encode(value))))
    return text


def json_string(text: str) -> str:
    """`text` as a JSON string literal, the bytes dumps() would write for it."""
    quoted: str = encode_basestring_ascii(text)
    if _SURROGATE_ESCAPE in quoted:
        quoted = encode_basestring_ascii(scrub(text))
    return quoted
