"""Layer: the servo root's files: which drivers are in a drivers directory, and the
aggregator's own section of config.yaml. Imports protocol only; trio-free, and yaml is
imported only when config.yaml has an aggregator section to read.
"""

#: Modules that import neither trio nor yaml (tests/test_layers.py holds them to it).
TRIO_FREE: tuple[str, ...] = ("config", "config_probe", "discovery", "front_end", "layout")
