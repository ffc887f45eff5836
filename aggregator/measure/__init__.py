"""Layer: the measure front-end (`./measure`): every measure driver run together, in one
measurement window. Imports supervision and the layers below it, never the adjust
front-end; calls.py is trio-free, so the entry point can declare the first calls before
trio is loaded.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("calls",)
