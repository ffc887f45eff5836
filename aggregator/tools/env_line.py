"""What a `#!/usr/bin/env ...` line runs, read as Linux and GNU env read it.

Linux gives the interpreter named on a #! line everything after it as ONE argument, then
the script's path. So `#!/usr/bin/env -u NAME python3` makes env unset a variable named
" NAME python3" and run the script itself again (endlessly), and `#!/usr/bin/env
python3 -u` makes it look for a program named "python3 -u"; only `-S` (coreutils 8.30)
splits the argument into words. Pure: no process is started, nothing is imported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

#: GNU env's options (coreutils 8.30 and later: -S), as its getopt reads them.
_FLAGS = ("i", "v", "0")  # short options without an argument
_WITH_ARGUMENT = ("u", "C", "S")  # short options that take one (the word's rest, or the next)
_LONG = {"ignore-environment": "i", "null": "0", "debug": "v", "unset": "u", "chdir": "C",
         "split-string": "S", "default-signal": "", "ignore-signal": "",
         "block-signal": "", "list-signal-handling": "", "help": "help",
         "version": "help"}
BLANKS = " \t\n\v\f\r"
_ESCAPES = {"f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "#": "#", "$": "$",
            '"': '"', "'": "'", "\\": "\\"}
#: Stands for the script's own path, which the kernel gives env after the #! argument
#: (a NUL cannot be in a real argument).
_SCRIPT = "\0script"


class EnvRefusal(Exception):
    """Why env runs no program from a #! line (its own words where it has them)."""


class EnvLine(NamedTuple):
    """What `#!/usr/bin/env ARGUMENT` makes env run: a program looked up on a PATH."""

    name: str
    #: the PATH it is looked up on when the line sets or clears it; None: the driver's
    search_path: str | None = None
    #: how the line changed the PATH, in words (for the report)
    path_from: str = ""


def split_string(text: str, environ: Mapping[str, str]) -> list[str]:
    """`env -S TEXT` split into words as GNU env splits it: blanks separate, quotes,
    backslash escapes (\\_ a blank), `${NAME}` from the environment, `#` a comment."""
    words: list[str] = []
    word: str | None = None  # None: between words
    quote = ""
    i = 0
    while i < len(text):
        char = text[i]
        if quote == "'":
            if char == "'":
                quote = ""
            elif char == "\\" and text[i + 1:i + 2] in ("\\", "'"):
                word = (word or "") + text[i + 1]
                i += 1
            else:
                word = (word or "") + char
            i += 1
            continue
        if not quote and char in BLANKS:
            if word is not None:
                words.append(word)
            word = None
        elif not quote and char == "#" and word is None:
            break  # a comment to the end
        elif char == "'" and not quote:
            quote, word = char, word or ""
        elif char == '"':
            quote, word = ("" if quote else char), word or ""
        elif char == "\\":
            escaped = text[i + 1:i + 2]
            if escaped == "c":
                if quote:
                    raise EnvRefusal("'\\c' must not appear in double-quoted -S string")
                break  # the rest is ignored
            if escaped == "_" and not quote:
                if word is not None:
                    words.append(word)
                word = None
            elif escaped == "_":
                word = (word or "") + " "
            elif escaped in _ESCAPES:
                word = (word or "") + _ESCAPES[escaped]
            else:
                raise EnvRefusal(f"invalid backslash at offset {i} in -S string")
            i += 1
        elif char == "$":
            end = text.find("}", i)
            name = text[i + 2:end] if text[i + 1:i + 2] == "{" and end > i else ""
            if not name.isidentifier() or not name.isascii():
                raise EnvRefusal("only ${VARNAME} expansion is supported")
            word = (word or "") + environ.get(name, "")
            i = end
        else:
            word = (word or "") + char
        i += 1
    if quote:
        raise EnvRefusal(f"no terminating quote in -S string ({quote})")
    if word is not None:
        words.append(word)
    return words


def _long_option(name: str) -> str:
    """GNU env's long option `name` (a unique prefix is enough), as its short letter."""
    if name in _LONG:
        return name
    found = [option for option in _LONG if option.startswith(name)]
    if len(found) != 1:
        raise EnvRefusal(f"option '--{name}' is " + ("ambiguous" if found
                                                      else "unrecognized"))
    return found[0]


def _next_argument(args: list[str], at: int, option: str) -> str:
    """The word after an option that takes one; the script's path is no argument to
    count on (env would take it, and then run nothing or the script again)."""
    if at == len(args) or args[at] == _SCRIPT:
        raise EnvRefusal(f"{option} has no argument on the line, so env would take the "
                         "driver's own path for it")
    return args[at]


def env_line(argument: str, environ: Mapping[str, str]) -> EnvLine:
    """The program `#!/usr/bin/env ARGUMENT` runs, as Linux and GNU env make it: the kernel
    gives env the whole ARGUMENT as one word, then the script's path; env reads options
    (-S splits its argument into more words), then NAME=VALUE words, then the program.
    Raises EnvRefusal when env runs none, or the script itself again (endlessly).
    `environ` is what `${NAME}` in a -S string expands from. A -C directory must exist
    (relative to the servo root, where drivers start); a lookup after it is not
    followed there."""
    args = ([argument] if argument else []) + [_SCRIPT]
    split = False
    path: str | None = None
    path_from = ""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        word = args[i]
        if word in ("-", "--"):
            if word == "-":  # as -i
                path, path_from = os.confstr("CS_PATH") or os.defpath, "-"
            i += 1
            break
        options: list[tuple[str, str | None]] = []
        end = i + 1
        if word.startswith("--"):
            name, equals, value = word[2:].partition("=")
            option = _long_option(name)
            letter = _LONG[option]
            if letter in _WITH_ARGUMENT and not equals:
                value, end = _next_argument(args, end, f"--{option}"), end + 1
            elif equals and letter in _FLAGS:
                raise EnvRefusal(f"option '--{option}' doesn't allow an argument")
            options.append((letter, value if letter in _WITH_ARGUMENT else None))
        else:
            for at, letter in enumerate(word[1:], 2):
                if letter in _FLAGS:
                    options.append((letter, None))
                    continue
                if letter not in _WITH_ARGUMENT:
                    raise EnvRefusal(f"invalid option -- '{letter}'")
                value = word[at:]
                if not value:
                    value, end = _next_argument(args, end, f"-{letter}"), end + 1
                options.append((letter, value))
                break
        words: list[str] = []
        for letter, given in options:
            if letter == "help":
                raise EnvRefusal("it prints its own help or version and runs nothing")
            if letter == "0":
                raise EnvRefusal("cannot specify --null (-0) with command")
            if letter == "i" or (letter == "u" and given == "PATH"):
                path, path_from = os.confstr("CS_PATH") or os.defpath, f"-{letter}"
            elif letter == "u" and given is not None and ("=" in given or not given):
                raise EnvRefusal(f"cannot unset {given!r}: Invalid argument")
            elif letter == "C" and given is not None and not os.path.isdir(given):
                raise EnvRefusal(f"cannot change directory to {given!r}")
            elif letter == "S" and given is not None:
                words, split = split_string(given, environ), True
        args[i:end] = words  # -S: its words are read next, as options or not
    while i < len(args) and args[i] != _SCRIPT and "=" in args[i]:
        name, _, value = args[i].partition("=")
        if name == "PATH":
            path, path_from = value, "PATH="
        i += 1
    if i == len(args) or args[i] == _SCRIPT:
        raise EnvRefusal("it names no program, so env runs the driver itself again: the "
                         "driver starts over and over, endlessly")
    name = args[i]
    if not split and any(blank in name for blank in BLANKS):
        raise EnvRefusal(f"env looks for a program named {name!r}")
    return EnvLine(name, path, path_from)
