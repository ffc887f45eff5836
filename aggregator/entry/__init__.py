"""Layer: the entry points (cli, command line, launch, --info, the journal's readers).
The top: imports any layer, and nothing imports it. cli and info are trio-free and
yaml-free, so that `--info`, which servo runs before every command, costs little more
than Python's start; the readers (`--last`, `--show`, `--history`) are trio-free too.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("cli", "cmdline", "info", "launch", "readers")
