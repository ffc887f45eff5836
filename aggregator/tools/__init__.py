"""Layer: operator tools (`--check`). Imports any layer below the entry points (the
journal for where runs are recorded)."""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("env_line",)
