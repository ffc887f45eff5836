"""Entry point: `--info` answered at once, everything else handed to the trio app.

This module imports nothing heavy, so `adjust --info` stays as cheap as Python's start.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--info"]:
        from .info import print_info

        return print_info()
    from .app import run

    return run(args)


def console_main() -> None:
    sys.exit(main())
