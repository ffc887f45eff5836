"""Layer: the adjust front-end (`./adjust`): plan, run, rollback, version and query,
dry run. Imports supervision and the layers below it; calls.py is trio-free, so the
entry point can declare the first calls before trio is loaded, and so is groups.py, the
pure rule of which drivers run together.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("calls", "groups")
